//! `adapter_config.json` of AdapterHub's LoRA, IA³ and prefix-tuning adapters (`adapters`
//! 1.3.0, `configuration/adapter_config.py` `LoRAConfig`, `IA3Config`, `PrefixTuningConfig`)
//! <-> our [`LoraConfig`], [`crate::Ia3Config`], [`PrefixTuningConfig`].
//!
//! `config.architecture` tells the method: `"lora"` (IA³ is `"lora"` with `composition_mode:
//! "scale"`), `"prefix_tuning"`; absent or `"bottleneck"` is a bottleneck adapter
//! ([`super::HubAdapterFile`]). The whole file is [`super::HubMethodFile`]. Every field is mapped (table in `docs/adapterhub.md`); a value
//! we cannot reproduce is a [`crate::PeftError::HubUnsupported`] naming the field, unknown keys are
//! kept and listed by [`super::HubMethodFile::warnings`].
//!
//! The maths, read from `methods/lora.py` and `methods/prefix_tuning.py`:
//! - LoRA (`composition_mode: "add"`): `y = W x + b + (alpha / r) · B A dropout(x)`, `A`
//!   `[r, in]`, `B` `[out, r]`: our LoRA with `rank = r`, `alpha`. `selfattn_lora` puts it on
//!   the `attn_matrices` (`q`, `k`, `v`), `intermediate_lora` on the feed-forward input
//!   projection, `output_lora` on the feed-forward output projection.
//! - IA³ (`composition_mode: "scale"`, `r: 1`): `y = (W x + b) ⊙ (alpha · l)`, `l` = `lora_B`
//!   `[out, 1]`: our IA³ scaling the OUTPUT of every target (no `feedforward` targets), with
//!   `alpha · l` as our vector.
//! - Prefix tuning: ours follows AdapterHub's already ([`crate::prefix`]).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::activation::Activation;
use crate::adapterhub::config::{hub_activation, hub_activation_name, malformed, unsupported};
use crate::error::Result;
use crate::lora::{LinearTarget, LoraConfig};
use crate::prefix::PrefixTuningConfig;

/// AdapterHub's `attn_matrices` letters, in the order of a fused `q, k, v` projection.
pub const ATTN_MATRICES: [&str; 3] = ["q", "k", "v"];

/// The fields of adapters 1.3.0's `LoRAConfig` (and `IA3Config`, the same class with other
/// defaults), as the file spells them. Defaults are `LoRAConfig`'s (what AdapterHub uses for
/// a missing key of an `architecture: "lora"` dict).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HubLoraConfig {
    /// `"lora"`.
    pub architecture: String,
    /// LoRA on the self-attention `attn_matrices`. Default: true.
    #[serde(default = "yes")]
    pub selfattn_lora: bool,
    /// LoRA on the feed-forward input projection. Default: false.
    #[serde(default)]
    pub intermediate_lora: bool,
    /// LoRA on the feed-forward output projection. Default: false.
    #[serde(default)]
    pub output_lora: bool,
    /// Blocks without LoRA. Default: empty.
    #[serde(default)]
    pub leave_out: Vec<usize>,
    /// Rank. Default: 8.
    #[serde(default = "eight")]
    pub r: usize,
    /// Scaling numerator (`alpha / r` for LoRA, `alpha` for IA³). Default: 8.
    #[serde(default = "eight_f")]
    pub alpha: f64,
    /// Dropout on the LoRA input (IA³: must be 0). Default: 0.0.
    #[serde(default)]
    pub dropout: f64,
    /// Which of `q`, `k`, `v` get LoRA. Default: `["q", "v"]`.
    #[serde(default = "qv")]
    pub attn_matrices: Vec<String>,
    /// `"add"` (LoRA) or `"scale"` (IA³). Default: `"add"`.
    #[serde(default = "add")]
    pub composition_mode: String,
    /// `lora` (LoRA) / `ia3` (IA³) are ours; `bert`, `vera` are not supported. Default: `lora`.
    #[serde(default = "lora")]
    pub init_weights: String,
    /// Only affects initialisation. Default: null.
    #[serde(default)]
    pub init_weights_seed: Option<i64>,
    /// Gated LoRA (UniPELT); not supported when true. Default: false.
    #[serde(default)]
    pub use_gating: bool,
    /// DoRA; not supported when true. Default: false.
    #[serde(default)]
    pub use_dora: bool,
    /// VeRA's `d`; not supported when set. Default: null.
    #[serde(default)]
    pub vera_d: Option<f64>,
    /// VeRA's `b`; not supported when set. Default: null.
    #[serde(default)]
    pub vera_b: Option<f64>,
    /// Parameter dtype; null or `float32` only. Default: null.
    #[serde(default)]
    pub dtype: Option<String>,
    /// Keys this crate does not know, verbatim.
    #[serde(flatten)]
    pub rest: BTreeMap<String, Value>,
}

/// The fields of adapters 1.3.0's `PrefixTuningConfig`, as the file spells them (defaults
/// are its own).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HubPrefixConfig {
    /// `"prefix_tuning"`.
    pub architecture: String,
    /// Encoder-decoder models only (BERT's and GPT-2's self-attention prefixes do not read
    /// it). Default: true.
    #[serde(default = "yes")]
    pub encoder_prefix: bool,
    /// Encoder-decoder models only (not read here). Default: true.
    #[serde(default = "yes")]
    pub cross_prefix: bool,
    /// Blocks without a prefix. Default: empty.
    #[serde(default)]
    pub leave_out: Vec<usize>,
    /// Plain prefixes (true) or the re-parameterisation MLP (false). Default: false.
    #[serde(default)]
    pub flat: bool,
    /// Prefix positions. Default: 30.
    #[serde(default = "thirty")]
    pub prefix_length: usize,
    /// MLP width. Default: 512.
    #[serde(default = "five_twelve")]
    pub bottleneck_size: usize,
    /// MLP non-linearity. Default: `tanh`.
    #[serde(default = "tanh")]
    pub non_linearity: String,
    /// Dropout on the prefixes. Default: 0.0.
    #[serde(default)]
    pub dropout: f64,
    /// Gated prefixes (UniPELT); not supported when true. Default: false.
    #[serde(default)]
    pub use_gating: bool,
    /// One gate for keys and values; only read with `use_gating: true`. Default: true.
    #[serde(default = "yes")]
    pub shared_gating: bool,
    /// Only affects initialisation. Default: null.
    #[serde(default)]
    pub init_weights_seed: Option<i64>,
    /// Keys this crate does not know, verbatim.
    #[serde(flatten)]
    pub rest: BTreeMap<String, Value>,
}

fn yes() -> bool {
    true
}
fn eight() -> usize {
    8
}
fn eight_f() -> f64 {
    8.0
}
fn qv() -> Vec<String> {
    vec!["q".into(), "v".into()]
}
fn add() -> String {
    "add".into()
}
fn lora() -> String {
    "lora".into()
}
fn thirty() -> usize {
    30
}
fn five_twelve() -> usize {
    512
}
fn tanh() -> String {
    "tanh".into()
}

/// The method config of an AdapterHub LoRA / IA³ / prefix-tuning file.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum HubMethodConfig {
    /// `architecture: "lora"`: LoRA (`composition_mode: "add"`) or IA³ (`"scale"`).
    Lora(HubLoraConfig),
    /// `architecture: "prefix_tuning"`.
    PrefixTuning(HubPrefixConfig),
}

/// What a `"lora"` file is in our terms, before the model's projections are known.
#[derive(Clone, Debug, PartialEq)]
pub enum HubLoraKind {
    /// LoRA with this rank, alpha and dropout.
    Lora {
        /// `r`.
        rank: usize,
        /// `alpha`.
        alpha: f64,
        /// `dropout`.
        dropout: f64,
    },
    /// IA³; every vector is multiplied by `alpha` on loading.
    Ia3 {
        /// `alpha`.
        alpha: f64,
    },
}

impl HubLoraConfig {
    /// Error for every option whose value this crate cannot reproduce; what the file is.
    pub fn kind(&self, path: &Path) -> Result<HubLoraKind> {
        let flags: [(&str, bool, &str); 4] = [
            (
                "config.use_gating",
                self.use_gating,
                "gated LoRA (UniPELT) is not implemented",
            ),
            ("config.use_dora", self.use_dora, "DoRA is not implemented"),
            (
                "config.vera_d",
                self.vera_d.is_some(),
                "VeRA (shared frozen A, B with trained scaling vectors) is not implemented",
            ),
            (
                "config.vera_b",
                self.vera_b.is_some(),
                "VeRA (shared frozen A, B with trained scaling vectors) is not implemented",
            ),
        ];
        if let Some((field, _, why)) = flags.iter().find(|(_, on, _)| *on) {
            return Err(unsupported(path, field, *why));
        }
        if let Some(d) = self.dtype.as_deref()
            && d != "float32"
        {
            return Err(unsupported(
                path,
                "config.dtype",
                format!("`{d}` (only float32 parameters are read)"),
            ));
        }
        if let Some(bad) = self
            .attn_matrices
            .iter()
            .find(|m| !ATTN_MATRICES.contains(&m.as_str()))
        {
            return Err(unsupported(
                path,
                "config.attn_matrices",
                format!("`{bad}` (AdapterHub wraps q, k and v only)"),
            ));
        }
        if !self.alpha.is_finite() {
            return Err(malformed(path, "`config.alpha` must be a finite number"));
        }
        match self.composition_mode.as_str() {
            "add" => {
                if self.init_weights != "lora" {
                    return Err(unsupported(
                        path,
                        "config.init_weights",
                        format!(
                            "`{}` with composition_mode add (ours: lora = A Kaiming-uniform, B zero)",
                            self.init_weights
                        ),
                    ));
                }
                Ok(HubLoraKind::Lora {
                    rank: self.r,
                    alpha: self.alpha,
                    dropout: self.dropout,
                })
            }
            "scale" => {
                if self.r != 1 {
                    return Err(unsupported(
                        path,
                        "config.r",
                        format!("{} with composition_mode scale (IA³ needs r = 1)", self.r),
                    ));
                }
                if self.dropout != 0.0 {
                    return Err(unsupported(
                        path,
                        "config.dropout",
                        "IA³ has no dropout (AdapterHub refuses it too)",
                    ));
                }
                if self.init_weights != "ia3" {
                    return Err(unsupported(
                        path,
                        "config.init_weights",
                        format!(
                            "`{}` with composition_mode scale (ours: ia3 = ones)",
                            self.init_weights
                        ),
                    ));
                }
                Ok(HubLoraKind::Ia3 { alpha: self.alpha })
            }
            other => Err(unsupported(
                path,
                "config.composition_mode",
                format!("`{other}` (expected add or scale)"),
            )),
        }
    }

    /// The `q`/`k`/`v` slots (0, 1, 2) that get a module, in order; empty without
    /// `selfattn_lora`.
    pub fn attn_slots(&self) -> Vec<usize> {
        if !self.selfattn_lora {
            return Vec::new();
        }
        (0..3)
            .filter(|&s| self.attn_matrices.iter().any(|m| m == ATTN_MATRICES[s]))
            .collect()
    }

    /// Our targets on a model whose AdapterHub projections are `linear` (a fused
    /// [`LinearTarget::QueryKeyValue`] stands for all three attention matrices).
    pub fn targets(&self, linear: &[(LinearTarget, &str)]) -> Vec<LinearTarget> {
        let has = |t: LinearTarget| linear.iter().any(|(l, _)| *l == t);
        let mut out = Vec::new();
        let slots = self.attn_slots();
        if has(LinearTarget::QueryKeyValue) {
            if !slots.is_empty() {
                out.push(LinearTarget::QueryKeyValue);
            }
        } else {
            let attn = [LinearTarget::Query, LinearTarget::Key, LinearTarget::Value];
            out.extend(slots.iter().map(|&s| attn[s]).filter(|&t| has(t)));
        }
        if self.intermediate_lora {
            out.push(LinearTarget::FeedForwardIn);
        }
        if self.output_lora {
            out.push(LinearTarget::FeedForwardOut);
        }
        out
    }

    /// The dict adapters 1.3.0 writes for a LoRA (`ia3: false`) or IA³ (`ia3: true`) adapter
    /// on `targets`; `attn` are the `q`/`k`/`v` slots.
    pub fn new(
        ia3: bool,
        attn: &[usize],
        targets: &[LinearTarget],
        leave_out: &[usize],
        rank: usize,
        alpha: f64,
        dropout: f64,
    ) -> Self {
        Self {
            architecture: "lora".into(),
            selfattn_lora: !attn.is_empty(),
            intermediate_lora: targets.contains(&LinearTarget::FeedForwardIn),
            output_lora: targets.contains(&LinearTarget::FeedForwardOut),
            leave_out: leave_out.to_vec(),
            r: rank,
            alpha,
            dropout,
            // without attention targets: the class default, as Python writes it
            attn_matrices: if attn.is_empty() {
                if ia3 { ["k", "v"] } else { ["q", "v"] }
                    .iter()
                    .map(|m| m.to_string())
                    .collect()
            } else {
                attn.iter().map(|&s| ATTN_MATRICES[s].to_string()).collect()
            },
            composition_mode: if ia3 { "scale" } else { "add" }.into(),
            init_weights: if ia3 { "ia3" } else { "lora" }.into(),
            init_weights_seed: None,
            use_gating: false,
            use_dora: false,
            vera_d: None,
            vera_b: None,
            dtype: None,
            rest: BTreeMap::new(),
        }
    }
}

impl HubPrefixConfig {
    /// Our config.
    ///
    /// # Errors
    /// [`crate::PeftError::HubUnsupported`] for `use_gating: true` or an unknown non-linearity;
    /// [`crate::PeftError::InvalidConfig`] for values ours rejects.
    pub fn prefix_config(&self, path: &Path) -> Result<PrefixTuningConfig> {
        if self.use_gating {
            return Err(unsupported(
                path,
                "config.use_gating",
                "gated prefixes (UniPELT) are not implemented",
            ));
        }
        let non_linearity: Activation = hub_activation(&self.non_linearity, path)?;
        let config = PrefixTuningConfig {
            prefix_length: self.prefix_length,
            bottleneck_size: self.bottleneck_size,
            flat: self.flat,
            non_linearity,
            dropout: self.dropout,
            leave_out: self.leave_out.clone(),
        };
        config.validate()?;
        Ok(config)
    }

    /// The dict adapters 1.3.0 writes for `config`.
    pub fn new(config: &PrefixTuningConfig) -> Self {
        Self {
            architecture: "prefix_tuning".into(),
            encoder_prefix: true,
            cross_prefix: true,
            leave_out: config.leave_out.clone(),
            flat: config.flat,
            prefix_length: config.prefix_length,
            bottleneck_size: config.bottleneck_size,
            non_linearity: hub_activation_name(config.non_linearity).into(),
            dropout: config.dropout,
            use_gating: false,
            shared_gating: true,
            init_weights_seed: None,
            rest: BTreeMap::new(),
        }
    }
}

/// Our [`LoraConfig`] of an AdapterHub LoRA: rank, alpha, dropout, and the targets and
/// left-out blocks resolved on the model.
pub fn lora_config(
    rank: usize,
    alpha: f64,
    dropout: f64,
    targets: Vec<LinearTarget>,
    leave_out: Vec<usize>,
) -> LoraConfig {
    LoraConfig {
        rank,
        alpha,
        dropout,
        targets,
        leave_out,
        ..LoraConfig::default()
    }
}
