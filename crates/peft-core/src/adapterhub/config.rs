//! `adapter_config.json` of AdapterHub (`adapters` 1.3.0) <-> [`AdapterConfig`].
//!
//! The file is `{"config": {<BnConfig fields>}, "hidden_size", "model_class", "model_name",
//! "model_type", "name", "version"}`. Every bottleneck field of adapters 1.3.0's `BnConfig` is
//! mapped (table in `docs/adapterhub.md`); a field whose value we cannot reproduce (`phm_layer:
//! true`, `use_gating: true`, `residual_before_ln: "post_add"`, …) is a
//! [`PeftError::HubUnsupported`] naming it; keys we do not know are kept in
//! [`HubAdapterFile::unknown`] and listed by [`HubAdapterFile::warnings`], never dropped silently.
//! The config alone decides how the adapter is built: a `par_bn` file builds a parallel adapter.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::activation::Activation;
use crate::config::{
    AdapterConfig, AdapterInit, AdapterPlacement, AdapterSite, BottleneckConfig, BottleneckWidth,
    Composition, Scaling,
};
use crate::error::{PeftError, Result};

/// The `version` this crate writes (AdapterHub's own `adapters.<version>`).
pub const HUB_VERSION: &str = "adapters.1.3.0";

/// `reduction_factor`: one number, or a per-layer mapping `{"<layer>": rf, "default": rf}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum HubReduction {
    /// The same factor in every layer.
    Uniform(f64),
    /// Per-layer factors; `default` applies to layers not listed.
    PerLayer(BTreeMap<String, f64>),
}

/// `scaling`: a constant, or `"learned"` / `"channel"`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum HubScaling {
    /// A fixed factor.
    Fixed(f64),
    /// `"learned"` (one scalar) or `"channel"` (one per channel).
    Named(String),
}

/// `residual_before_ln`: a boolean, or `"post_add"`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum HubResidual {
    /// True: the adapter residual is the sub-layer output; false: the adapter input.
    Flag(bool),
    /// `"post_add"` (not supported).
    Named(String),
}

/// The bottleneck fields of adapters 1.3.0's `BnConfig`, as the file spells them. Defaults
/// are `BnConfig`'s (`configuration/adapter_config.py` 224-260).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HubBnConfig {
    /// Method family: absent, `null` or `"bottleneck"` (anything else is not supported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    /// An adapter after the attention block. Required.
    pub mh_adapter: bool,
    /// An adapter after the feed-forward block. Required.
    pub output_adapter: bool,
    /// `hidden // reduction_factor` bottleneck units. Required.
    pub reduction_factor: HubReduction,
    /// The non-linearity (AdapterHub lower-cases it). Required.
    pub non_linearity: String,
    /// Default: false.
    #[serde(default)]
    pub original_ln_before: bool,
    /// Default: true.
    #[serde(default = "yes")]
    pub original_ln_after: bool,
    /// Default: false.
    #[serde(default)]
    pub ln_before: bool,
    /// Default: false.
    #[serde(default)]
    pub ln_after: bool,
    /// `bert`, `mam_adapter` or `houlsby`. Default: `bert`.
    #[serde(default = "bert")]
    pub init_weights: String,
    /// Only affects initialisation. Default: null.
    #[serde(default)]
    pub init_weights_seed: Option<i64>,
    /// Default: false.
    #[serde(default)]
    pub is_parallel: bool,
    /// Default: 1.0.
    #[serde(default = "one")]
    pub scaling: HubScaling,
    /// Not supported when true. Default: false.
    #[serde(default)]
    pub use_gating: bool,
    /// Default: true.
    #[serde(default = "residual_true")]
    pub residual_before_ln: HubResidual,
    /// Default: false.
    #[serde(default)]
    pub adapter_residual_before_ln: bool,
    /// Invertible adapter after the embeddings; not supported (see [`HubBnConfig::check`]).
    /// Default: null.
    #[serde(default)]
    pub inv_adapter: Option<String>,
    /// Default: null.
    #[serde(default)]
    pub inv_adapter_reduction_factor: Option<f64>,
    /// Adapters after cross-attention (encoder-decoder models only); not supported when true.
    /// Default: false.
    #[serde(default)]
    pub cross_adapter: bool,
    /// Layers without adapters. Default: empty.
    #[serde(default)]
    pub leave_out: Vec<usize>,
    /// Default: 0.0.
    #[serde(default)]
    pub dropout: f64,
    /// PHM (Compacter) projections; not supported when true. Default: false.
    #[serde(default)]
    pub phm_layer: bool,
    /// Training-only DropPath; not supported when positive. Default: 0.0.
    #[serde(default)]
    pub stochastic_depth: f64,
    /// The PHM options (`phm_dim`, `factorized_phm_W`, …), used only with `phm_layer: true`,
    /// and every key this crate does not know, verbatim.
    #[serde(flatten)]
    pub rest: BTreeMap<String, Value>,
}

fn yes() -> bool {
    true
}
fn bert() -> String {
    "bert".into()
}
fn one() -> HubScaling {
    HubScaling::Fixed(1.0)
}
fn residual_true() -> HubResidual {
    HubResidual::Flag(true)
}

/// The PHM options of `BnConfig` and their defaults (meaningful only with `phm_layer: true`).
pub const PHM_DEFAULTS: [(&str, PhmDefault); 11] = [
    ("phm_dim", PhmDefault::Int(4)),
    ("factorized_phm_W", PhmDefault::Bool(true)),
    ("shared_W_phm", PhmDefault::Bool(false)),
    ("shared_phm_rule", PhmDefault::Bool(true)),
    ("factorized_phm_rule", PhmDefault::Bool(false)),
    ("phm_c_init", PhmDefault::Str("normal")),
    ("phm_init_range", PhmDefault::Float(0.0001)),
    ("learn_phm", PhmDefault::Bool(true)),
    (
        "hypercomplex_nonlinearity",
        PhmDefault::Str("glorot-uniform"),
    ),
    ("phm_rank", PhmDefault::Int(1)),
    ("phm_bias", PhmDefault::Bool(true)),
];

/// A default value of a PHM option.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PhmDefault {
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A string.
    Str(&'static str),
}

impl PhmDefault {
    fn json(self) -> Value {
        match self {
            Self::Int(v) => Value::from(v),
            Self::Float(v) => Value::from(v),
            Self::Bool(v) => Value::from(v),
            Self::Str(v) => Value::from(v),
        }
    }
}

/// The whole `adapter_config.json`.
#[derive(Clone, Debug, PartialEq)]
pub struct HubAdapterFile {
    /// The adapter's name (`name`).
    pub name: String,
    /// The bottleneck config as written.
    pub config: HubBnConfig,
    /// `model_type`, e.g. `bert`, `roberta`, `gpt2`.
    pub model_type: Option<String>,
    /// `hidden_size` of the model it was trained on.
    pub hidden_size: Option<usize>,
    /// `model_class`, e.g. `BertAdapterModel`.
    pub model_class: Option<String>,
    /// `model_name` (Hub id or path; informational).
    pub model_name: Option<String>,
    /// `version`, e.g. `adapters.1.3.0`; absent in adapter-transformers 1.x/2.x files.
    pub version: Option<String>,
    /// Top-level keys this crate does not know, verbatim.
    pub unknown: BTreeMap<String, Value>,
}

pub(crate) fn malformed(path: &Path, message: impl Into<String>) -> PeftError {
    PeftError::MalformedJson {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

pub(crate) fn unsupported(path: &Path, field: &str, message: impl Into<String>) -> PeftError {
    PeftError::HubUnsupported {
        path: path.to_path_buf(),
        field: field.to_string(),
        message: message.into(),
    }
}

/// The `BnConfig` dict of an AdapterHub preset name (`ADAPTER_CONFIG_MAP`), for files whose
/// `config` is a string.
fn preset(name: &str) -> Option<AdapterConfig> {
    match name {
        "seq_bn" | "pfeiffer" => Some(AdapterConfig::pfeiffer(16.0)),
        "double_seq_bn" | "houlsby" => Some(AdapterConfig::houlsby(16.0)),
        "par_bn" | "parallel" => Some(AdapterConfig::parallel()),
        "scaled_par_bn" | "scaled_parallel" => Some(AdapterConfig::scaled_parallel()),
        _ => None,
    }
    .map(|c| {
        let mut c = c;
        c.bottleneck.init = match name {
            "par_bn" | "parallel" | "scaled_par_bn" | "scaled_parallel" => AdapterInit::MamAdapter,
            _ => AdapterInit::Bert,
        };
        c
    })
}

impl HubAdapterFile {
    /// Parse the text of an `adapter_config.json`; `path` names the file in errors.
    ///
    /// # Errors
    /// [`PeftError::MalformedJson`] (not JSON, a required field missing or mistyped),
    /// [`PeftError::HubUnsupported`] (a method or option we cannot reproduce).
    pub fn from_json(text: &str, path: &Path) -> Result<Self> {
        let raw: Value = serde_json::from_str(text).map_err(|e| malformed(path, e.to_string()))?;
        let Value::Object(mut top) = raw else {
            return Err(malformed(path, "expected a JSON object"));
        };
        let config = top
            .remove("config")
            .ok_or_else(|| malformed(path, "missing field `config`"))?;
        let version = take_string(&mut top, "version", path)?;
        let config = match config {
            Value::String(name) => {
                let c = preset(&name).ok_or_else(|| {
                    unsupported(
                        path,
                        "config",
                        format!("`{name}` is not a bottleneck preset this crate knows (seq_bn, double_seq_bn, par_bn, scaled_par_bn)"),
                    )
                })?;
                HubBnConfig::from_adapter_config(&c, path)?
            }
            Value::Object(mut map) => {
                // adapter-transformers 1.x/2.x (no `version`): `gelu` meant the tanh form.
                if version.is_none()
                    && let Some(Value::String(act)) = map.get("non_linearity")
                {
                    let renamed = match act.as_str() {
                        "gelu" => Some("gelu_new"),
                        "gelu_orig" => Some("gelu"),
                        _ => None,
                    };
                    if let Some(r) = renamed {
                        map.insert("non_linearity".into(), Value::from(r));
                    }
                }
                serde_json::from_value(Value::Object(map))
                    .map_err(|e| malformed(path, format!("`config`: {e}")))?
            }
            other => {
                return Err(malformed(
                    path,
                    format!("`config` must be an object or a preset name, got {other}"),
                ));
            }
        };
        let meta = take_meta(top, version, path)?;
        let file = Self {
            name: meta.name,
            config,
            model_type: meta.model_type,
            hidden_size: meta.hidden_size,
            model_class: meta.model_class,
            model_name: meta.model_name,
            version: meta.version,
            unknown: meta.unknown,
        };
        file.config.check(path)?;
        Ok(file)
    }

    /// Read and parse `path`.
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| PeftError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json(&text, path)
    }

    /// Everything in the file this crate does not use: unknown keys (top level and inside
    /// `config`) and options that only affect initialisation. One line each.
    pub fn warnings(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .unknown
            .keys()
            .map(|k| format!("unknown key `{k}` kept but not used"))
            .collect();
        for (k, v) in &self.config.rest {
            match PHM_DEFAULTS.iter().find(|(name, _)| name == k) {
                Some(_) => {} // PHM options: meaningless without phm_layer (checked)
                None => out.push(format!("unknown key `config.{k}` = {v} kept but not used")),
            }
        }
        if self.config.init_weights_seed.is_some() {
            out.push("`config.init_weights_seed` only affects initialisation: ignored".into());
        }
        out
    }

    /// A description of `config` under `name`, as adapters 1.3.0's `save_adapter` writes it.
    pub fn new(name: &str, config: &AdapterConfig, model: &HubModelInfo) -> Result<Self> {
        Ok(Self {
            name: name.to_string(),
            config: HubBnConfig::from_adapter_config(config, Path::new("adapter_config.json"))?,
            model_type: Some(model.model_type.clone()),
            hidden_size: Some(model.hidden_size),
            model_class: Some(model.model_class.clone()),
            model_name: Some(model.model_name.clone()),
            version: Some(HUB_VERSION.into()),
            unknown: BTreeMap::new(),
        })
    }

    /// The file text: sorted keys, two-space indent, as `json.dump(indent=2, sort_keys=True)`.
    pub fn to_json(&self) -> Result<String> {
        meta_json(
            self.config.to_value()?,
            &Meta {
                name: self.name.clone(),
                model_type: self.model_type.clone(),
                hidden_size: self.hidden_size,
                model_class: self.model_class.clone(),
                model_name: self.model_name.clone(),
                version: self.version.clone(),
                unknown: self.unknown.clone(),
            },
        )
    }

    /// Error unless this adapter was trained on a model of width `hidden_size` (when the file
    /// says).
    pub fn check_hidden_size(&self, hidden_size: usize, path: &Path) -> Result<()> {
        match self.hidden_size {
            Some(h) if h != hidden_size => Err(PeftError::Incompatible {
                path: path.to_path_buf(),
                message: format!(
                    "adapter `{}` was trained on a model of width {h}; this model's is {hidden_size}",
                    self.name
                ),
            }),
            _ => Ok(()),
        }
    }
}

/// The top-level fields of an `adapter_config.json` beside `config`, the same for every method.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Meta {
    pub name: String,
    pub model_type: Option<String>,
    pub hidden_size: Option<usize>,
    pub model_class: Option<String>,
    pub model_name: Option<String>,
    pub version: Option<String>,
    pub unknown: BTreeMap<String, Value>,
}

impl Meta {
    /// What adapters 1.3.0's `save_adapter` writes for adapter `name` of `model`.
    pub fn new(name: &str, model: &HubModelInfo) -> Self {
        Self {
            name: name.to_string(),
            model_type: Some(model.model_type.clone()),
            hidden_size: Some(model.hidden_size),
            model_class: Some(model.model_class.clone()),
            model_name: Some(model.model_name.clone()),
            version: Some(HUB_VERSION.into()),
            unknown: BTreeMap::new(),
        }
    }
}

/// The top-level fields left in `top` once `config` and `version` were taken out.
pub(crate) fn take_meta(
    mut top: Map<String, Value>,
    version: Option<String>,
    path: &Path,
) -> Result<Meta> {
    let name = take_string(&mut top, "name", path)?
        .ok_or_else(|| malformed(path, "missing string field `name`"))?;
    let hidden_size = match top.remove("hidden_size") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| {
                    malformed(path, format!("`hidden_size` must be an integer, got {v}"))
                })?,
        ),
    };
    Ok(Meta {
        name,
        model_type: take_string(&mut top, "model_type", path)?,
        hidden_size,
        model_class: take_string(&mut top, "model_class", path)?,
        model_name: take_string(&mut top, "model_name", path)?,
        version,
        unknown: top.into_iter().collect(),
    })
}

/// The file text of `config` with `meta`: sorted keys, two-space indent, as
/// `json.dump(indent=2, sort_keys=True)`.
pub(crate) fn meta_json(config: Value, meta: &Meta) -> Result<String> {
    let mut top = Map::new();
    top.insert("config".into(), config);
    top.insert(
        "hidden_size".into(),
        meta.hidden_size.map_or(Value::Null, Value::from),
    );
    for (key, v) in [
        ("model_class", &meta.model_class),
        ("model_name", &meta.model_name),
        ("model_type", &meta.model_type),
        ("version", &meta.version),
    ] {
        top.insert(key.into(), v.clone().map_or(Value::Null, Value::from));
    }
    top.insert("name".into(), Value::from(meta.name.clone()));
    for (k, v) in &meta.unknown {
        top.insert(k.clone(), v.clone());
    }
    serde_json::to_string_pretty(&sort(Value::Object(top)))
        .map_err(|e| malformed(Path::new("adapter_config.json"), e.to_string()))
}

/// What `save_adapter` records about the model (`model_type`, `hidden_size`, `model_class`,
/// `model_name`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubModelInfo {
    /// `bert`, `roberta`, `gpt2`.
    pub model_type: String,
    /// The model width.
    pub hidden_size: usize,
    /// The Python class a loader should expect, e.g. `BertAdapterModel`.
    pub model_class: String,
    /// Hub id or path, informational (empty when unknown).
    pub model_name: String,
}

/// Recursively sort object keys (serde_json's map is ordered by insertion only with the
/// `preserve_order` feature, which this workspace does not enable; be explicit anyway).
pub(crate) fn sort(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let sorted: BTreeMap<String, Value> =
                m.into_iter().map(|(k, v)| (k, sort(v))).collect();
            Value::Object(sorted.into_iter().collect())
        }
        other => other,
    }
}

pub(crate) fn take_string(
    top: &mut Map<String, Value>,
    key: &str,
    path: &Path,
) -> Result<Option<String>> {
    match top.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(malformed(
            path,
            format!("`{key}` must be a string, got {other}"),
        )),
    }
}

/// AdapterHub's non-linearity names (`Activation_Function_Class`: `leakyrelu`, else
/// transformers' `ACT2FN`).
pub fn hub_activation(name: &str, path: &Path) -> Result<Activation> {
    let lower = name.to_ascii_lowercase();
    let canonical = match lower.as_str() {
        "gelu_pytorch_tanh" => "gelu_new",
        other => other,
    };
    canonical.parse().map_err(|_| {
        unsupported(
            path,
            "config.non_linearity",
            format!("`{name}` (supported: relu, gelu, gelu_new, gelu_pytorch_tanh, swish/silu, tanh, leakyrelu)"),
        )
    })
}

impl HubBnConfig {
    /// The JSON object AdapterHub writes: sorted keys; a whole-number `reduction_factor` is an
    /// integer as Python writes `16` (`scaling` stays a float: AdapterHub tests
    /// `isinstance(scaling, float)`).
    pub fn to_value(&self) -> Result<Value> {
        let mut v = serde_json::to_value(self)
            .map_err(|e| malformed(Path::new("adapter_config.json"), e.to_string()))?;
        let int = |x: &mut Value| {
            if let Some(f) = x.as_f64()
                && f.fract() == 0.0
                && f.abs() < 1e15
            {
                *x = Value::from(f as i64);
            }
        };
        if let Some(rf) = v.get_mut("reduction_factor") {
            match rf {
                Value::Object(m) => m.values_mut().for_each(int),
                other => int(other),
            }
        }
        Ok(sort(v))
    }

    /// Error for every option whose value this crate cannot reproduce.
    pub fn check(&self, path: &Path) -> Result<()> {
        match self.architecture.as_deref() {
            None | Some("bottleneck") => {}
            Some(other) => {
                return Err(unsupported(
                    path,
                    "config.architecture",
                    format!(
                        "`{other}` is not a bottleneck adapter (lora and prefix_tuning files are read by HubMethodFile / load_hub_adapter)"
                    ),
                ));
            }
        }
        let flags: [(&str, bool, &str); 4] = [
            (
                "config.phm_layer",
                self.phm_layer,
                "PHM (Compacter) projections are not implemented",
            ),
            (
                "config.use_gating",
                self.use_gating,
                "gated adapters (UniPELT) are not implemented",
            ),
            (
                "config.cross_adapter",
                self.cross_adapter,
                "cross-attention adapters need an encoder-decoder model",
            ),
            (
                "config.stochastic_depth",
                self.stochastic_depth > 0.0,
                "stochastic depth (DropPath) is not implemented",
            ),
        ];
        if let Some((field, _, why)) = flags.iter().find(|(_, on, _)| *on) {
            return Err(unsupported(path, field, *why));
        }
        if let HubResidual::Named(s) = &self.residual_before_ln {
            return Err(unsupported(
                path,
                "config.residual_before_ln",
                format!("`{s}` is not supported (only true or false)"),
            ));
        }
        if let HubScaling::Named(s) = &self.scaling
            && s != "learned"
            && s != "channel"
        {
            return Err(unsupported(
                path,
                "config.scaling",
                format!("`{s}` (expected a number, \"learned\" or \"channel\")"),
            ));
        }
        if !self.mh_adapter && !self.output_adapter {
            return Err(unsupported(
                path,
                "config.mh_adapter",
                "mh_adapter and output_adapter are both false: the adapter has no site",
            ));
        }
        if let HubReduction::PerLayer(map) = &self.reduction_factor
            && let Some(bad) = map
                .keys()
                .find(|k| *k != "default" && k.parse::<usize>().is_err())
        {
            return Err(PeftError::MalformedJson {
                path: path.to_path_buf(),
                message: format!(
                    "`config.reduction_factor` key `{bad}` is neither a layer index nor `default`"
                ),
            });
        }
        hub_activation(&self.non_linearity, path)?;
        self.init(path)?;
        Ok(())
    }

    fn init(&self, path: &Path) -> Result<AdapterInit> {
        match self.init_weights.as_str() {
            "bert" => Ok(AdapterInit::Bert),
            "mam_adapter" => Ok(AdapterInit::MamAdapter),
            "houlsby" => Ok(AdapterInit::Houlsby),
            other => Err(unsupported(
                path,
                "config.init_weights",
                format!("`{other}` (AdapterHub knows bert, mam_adapter, houlsby)"),
            )),
        }
    }

    /// Our config for a model with `num_layers` layers. A per-layer `reduction_factor` without
    /// `default` must list every layer (AdapterHub raises `KeyError` otherwise).
    ///
    /// # Errors
    /// [`PeftError::HubUnsupported`] as [`HubBnConfig::check`]; [`PeftError::MalformedJson`]
    /// for an unlisted layer.
    pub fn adapter_config(&self, num_layers: usize, path: &Path) -> Result<AdapterConfig> {
        self.check(path)?;
        let mut layer_widths = BTreeMap::new();
        let width = match &self.reduction_factor {
            HubReduction::Uniform(rf) => BottleneckWidth::ReductionFactor(*rf),
            HubReduction::PerLayer(map) => {
                let default = map.get("default").copied();
                for layer in 0..num_layers {
                    match (map.get(&layer.to_string()), default) {
                        (Some(rf), d) if Some(*rf) != d => {
                            layer_widths.insert(layer, BottleneckWidth::ReductionFactor(*rf));
                        }
                        (Some(_), _) => {}
                        (None, Some(_)) => {}
                        (None, None) if self.leave_out.contains(&layer) => {}
                        (None, None) => {
                            return Err(malformed(
                                path,
                                format!(
                                    "`config.reduction_factor` has no entry for layer {layer} and no `default`"
                                ),
                            ));
                        }
                    }
                }
                match default {
                    Some(d) => BottleneckWidth::ReductionFactor(d),
                    // every layer is listed: any listed value serves as the base width
                    None => layer_widths
                        .values()
                        .next()
                        .copied()
                        .unwrap_or(BottleneckWidth::ReductionFactor(16.0)),
                }
            }
        };
        let scaling = match &self.scaling {
            HubScaling::Fixed(s) => Scaling::Fixed(*s),
            HubScaling::Named(s) if s == "learned" => Scaling::Learned,
            HubScaling::Named(_) => Scaling::Channel,
        };
        let mut sites = Vec::new();
        if self.mh_adapter {
            sites.push(AdapterSite::AttentionOutput);
        }
        if self.output_adapter {
            sites.push(AdapterSite::FeedForwardOutput);
        }
        let residual_before_ln = matches!(self.residual_before_ln, HubResidual::Flag(true));
        let config = AdapterConfig::new()
            .with_bottleneck(
                BottleneckConfig::new()
                    .with_width(width)
                    .with_activation(hub_activation(&self.non_linearity, path)?)
                    .with_dropout(self.dropout)
                    .with_scaling(scaling)
                    .with_ln_before(self.ln_before)
                    .with_ln_after(self.ln_after)
                    .with_adapter_residual_before_ln(self.adapter_residual_before_ln)
                    .with_init(self.init(path)?),
            )
            .with_placement(
                AdapterPlacement::new()
                    .with_sites(sites)
                    .with_composition(if self.is_parallel {
                        Composition::Parallel
                    } else {
                        Composition::Sequential
                    })
                    .with_original_ln_before(self.original_ln_before)
                    .with_original_ln_after(self.original_ln_after)
                    .with_residual_before_ln(residual_before_ln)
                    .with_leave_out(self.leave_out.clone()),
            )
            .with_layer_widths(layer_widths);
        config.validate()?;
        Ok(config)
    }

    /// The `BnConfig` dict of our `config`, every field written as adapters 1.3.0 does.
    ///
    /// # Errors
    /// [`PeftError::HubUnsupported`] for what AdapterHub cannot express: an explicit
    /// bottleneck width (`bottleneck_dim`; AdapterHub only has `reduction_factor`) or an
    /// adapter LayerNorm epsilon other than PyTorch's 1e-5.
    pub fn from_adapter_config(config: &AdapterConfig, path: &Path) -> Result<Self> {
        let rf = |w: BottleneckWidth, what: &str| match w {
            BottleneckWidth::ReductionFactor(rf) => Ok(rf),
            BottleneckWidth::BottleneckDim(d) => Err(unsupported(
                path,
                what,
                format!(
                    "AdapterHub has no explicit bottleneck width ({d}); use a reduction factor"
                ),
            )),
        };
        let b = &config.bottleneck;
        let p = &config.placement;
        if (b.ln_before || b.ln_after) && (b.layer_norm_eps - 1e-5).abs() > 1e-12 {
            return Err(unsupported(
                path,
                "bottleneck.layer_norm_eps",
                format!(
                    "AdapterHub's adapter LayerNorms use eps 1e-5, not {}",
                    b.layer_norm_eps
                ),
            ));
        }
        let reduction_factor = if config.layer_widths.is_empty() {
            HubReduction::Uniform(rf(b.width, "bottleneck.width")?)
        } else {
            let mut map = BTreeMap::new();
            map.insert("default".to_string(), rf(b.width, "bottleneck.width")?);
            for (layer, w) in &config.layer_widths {
                map.insert(layer.to_string(), rf(*w, "layer_widths")?);
            }
            HubReduction::PerLayer(map)
        };
        let rest = PHM_DEFAULTS
            .iter()
            .map(|(k, v)| ((*k).to_string(), v.json()))
            .collect();
        Ok(Self {
            architecture: None,
            mh_adapter: p.sites.contains(&AdapterSite::AttentionOutput),
            output_adapter: p.sites.contains(&AdapterSite::FeedForwardOutput),
            reduction_factor,
            non_linearity: hub_activation_name(b.activation).into(),
            original_ln_before: p.original_ln_before,
            original_ln_after: p.original_ln_after,
            ln_before: b.ln_before,
            ln_after: b.ln_after,
            // Our `identity` init (zero up-projection) is closest to `mam_adapter`; the init
            // does not matter for loading trained weights.
            init_weights: match b.init {
                AdapterInit::Bert => "bert",
                AdapterInit::Houlsby => "houlsby",
                AdapterInit::MamAdapter | AdapterInit::Identity => "mam_adapter",
            }
            .into(),
            init_weights_seed: None,
            is_parallel: p.composition == Composition::Parallel,
            scaling: match b.scaling {
                Scaling::Fixed(s) => HubScaling::Fixed(s),
                Scaling::Learned => HubScaling::Named("learned".into()),
                Scaling::Channel => HubScaling::Named("channel".into()),
            },
            use_gating: false,
            residual_before_ln: HubResidual::Flag(p.residual_before_ln),
            adapter_residual_before_ln: b.adapter_residual_before_ln,
            inv_adapter: None,
            inv_adapter_reduction_factor: None,
            cross_adapter: false,
            leave_out: p.leave_out.clone(),
            dropout: b.dropout,
            phm_layer: false,
            stochastic_depth: 0.0,
            rest,
        })
    }
}

/// The name AdapterHub's `Activation_Function_Class` resolves to the same function.
pub fn hub_activation_name(a: Activation) -> &'static str {
    match a {
        Activation::Relu => "relu",
        Activation::Gelu => "gelu",
        Activation::GeluNew => "gelu_new",
        Activation::Silu => "swish",
        Activation::Tanh => "tanh",
        Activation::LeakyRelu => "leakyrelu",
    }
}
