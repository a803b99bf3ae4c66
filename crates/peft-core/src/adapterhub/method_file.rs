//! The whole `adapter_config.json` of AdapterHub's LoRA, IA³ and prefix-tuning adapters
//! ([`HubMethodFile`]), and [`HubFile`]: any AdapterHub adapter config by its
//! `config.architecture`.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::adapterhub::config::{
    HubModelInfo, Meta, malformed, meta_json, sort, take_meta, take_string, unsupported,
};
use crate::adapterhub::methods::{HubLoraConfig, HubMethodConfig, HubPrefixConfig};
use crate::error::{PeftError, Result};

/// The architecture an `adapter_config.json` text names (`None`: a bottleneck adapter, as
/// AdapterHub reads a missing `architecture`). `Err` only for text that is not a JSON object
/// with a `config`.
pub fn architecture(text: &str, path: &Path) -> Result<Option<String>> {
    let raw: Value = serde_json::from_str(text).map_err(|e| malformed(path, e.to_string()))?;
    let config = raw
        .get("config")
        .ok_or_else(|| malformed(path, "missing field `config`"))?;
    Ok(config
        .get("architecture")
        .and_then(Value::as_str)
        .filter(|a| *a != "bottleneck")
        .map(str::to_string))
}

/// A whole `adapter_config.json` of a LoRA, IA³ or prefix-tuning adapter.
#[derive(Clone, Debug, PartialEq)]
pub struct HubMethodFile {
    /// The adapter's name (`name`).
    pub name: String,
    /// The method config as written.
    pub config: HubMethodConfig,
    /// `model_type`, e.g. `bert`, `gpt2`.
    pub model_type: Option<String>,
    /// `hidden_size` of the model it was trained on.
    pub hidden_size: Option<usize>,
    /// `model_class`, e.g. `BertAdapterModel`.
    pub model_class: Option<String>,
    /// `model_name` (informational).
    pub model_name: Option<String>,
    /// `version`, e.g. `adapters.1.3.0`.
    pub version: Option<String>,
    /// Top-level keys this crate does not know, verbatim.
    pub unknown: BTreeMap<String, Value>,
}

impl HubMethodFile {
    /// Parse the text of an `adapter_config.json` whose `config.architecture` is `lora` or
    /// `prefix_tuning`.
    ///
    /// # Errors
    /// [`PeftError::MalformedJson`]; [`PeftError::HubUnsupported`] for another architecture
    /// (`mtl_lora`, `union`, `prompt_tuning`, `reft`, …) or an option we cannot reproduce.
    pub fn from_json(text: &str, path: &Path) -> Result<Self> {
        let raw: Value = serde_json::from_str(text).map_err(|e| malformed(path, e.to_string()))?;
        let Value::Object(mut top) = raw else {
            return Err(malformed(path, "expected a JSON object"));
        };
        let config = top
            .remove("config")
            .ok_or_else(|| malformed(path, "missing field `config`"))?;
        let version = take_string(&mut top, "version", path)?;
        let arch = config
            .get("architecture")
            .and_then(Value::as_str)
            .unwrap_or("bottleneck")
            .to_string();
        let parse_err = |e: serde_json::Error| malformed(path, format!("`config`: {e}"));
        let config = match arch.as_str() {
            "lora" => {
                let c: HubLoraConfig = serde_json::from_value(config).map_err(parse_err)?;
                c.kind(path)?;
                HubMethodConfig::Lora(c)
            }
            "prefix_tuning" => {
                let c: HubPrefixConfig = serde_json::from_value(config).map_err(parse_err)?;
                c.prefix_config(path)?;
                HubMethodConfig::PrefixTuning(c)
            }
            other => {
                return Err(unsupported(
                    path,
                    "config.architecture",
                    format!(
                        "`{other}` adapters are not supported (supported: bottleneck, lora, prefix_tuning)"
                    ),
                ));
            }
        };
        let meta = take_meta(top, version, path)?;
        Ok(Self {
            name: meta.name,
            config,
            model_type: meta.model_type,
            hidden_size: meta.hidden_size,
            model_class: meta.model_class,
            model_name: meta.model_name,
            version: meta.version,
            unknown: meta.unknown,
        })
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

    /// A file for `config` under `name`, as adapters 1.3.0's `save_adapter` writes it.
    pub fn new(name: &str, config: HubMethodConfig, model: &HubModelInfo) -> Self {
        let meta = Meta::new(name, model);
        Self {
            name: meta.name,
            config,
            model_type: meta.model_type,
            hidden_size: meta.hidden_size,
            model_class: meta.model_class,
            model_name: meta.model_name,
            version: meta.version,
            unknown: meta.unknown,
        }
    }

    /// The method's short name: `lora`, `ia3` or `prefix_tuning`.
    pub fn method(&self) -> &'static str {
        match &self.config {
            HubMethodConfig::Lora(c) if c.composition_mode == "scale" => "ia3",
            HubMethodConfig::Lora(_) => "lora",
            HubMethodConfig::PrefixTuning(_) => "prefix_tuning",
        }
    }

    /// Unknown keys (top level and inside `config`) and options that only affect
    /// initialisation or that these models do not read. One line each.
    pub fn warnings(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .unknown
            .keys()
            .map(|k| format!("unknown key `{k}` kept but not used"))
            .collect();
        let (rest, seed) = match &self.config {
            HubMethodConfig::Lora(c) => (&c.rest, c.init_weights_seed),
            HubMethodConfig::PrefixTuning(c) => (&c.rest, c.init_weights_seed),
        };
        for (k, v) in rest {
            out.push(format!("unknown key `config.{k}` = {v} kept but not used"));
        }
        if seed.is_some() {
            out.push("`config.init_weights_seed` only affects initialisation: ignored".into());
        }
        out
    }

    /// The file text (sorted keys, two-space indent; whole numbers such as `alpha: 4` as
    /// integers, as Python writes them).
    pub fn to_json(&self) -> Result<String> {
        let here = Path::new("adapter_config.json");
        let mut config =
            serde_json::to_value(&self.config).map_err(|e| malformed(here, e.to_string()))?;
        if let Some(x) = config.get_mut("alpha")
            && let Some(f) = x.as_f64()
            && f.fract() == 0.0
            && f.abs() < 1e15
        {
            *x = Value::from(f as i64);
        }
        let meta = Meta {
            name: self.name.clone(),
            model_type: self.model_type.clone(),
            hidden_size: self.hidden_size,
            model_class: self.model_class.clone(),
            model_name: self.model_name.clone(),
            version: self.version.clone(),
            unknown: self.unknown.clone(),
        };
        meta_json(sort(config), &meta)
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

/// Any AdapterHub `adapter_config.json`, by its `config.architecture`.
#[derive(Clone, Debug, PartialEq)]
pub enum HubFile {
    /// A bottleneck adapter.
    Bottleneck(super::HubAdapterFile),
    /// A LoRA, IA³ or prefix-tuning adapter.
    Method(HubMethodFile),
}

impl HubFile {
    /// Read and parse `path` (see [`super::HubAdapterFile::from_json`],
    /// [`HubMethodFile::from_json`]).
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| PeftError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(match architecture(&text, path)? {
            Some(_) => Self::Method(HubMethodFile::from_json(&text, path)?),
            None => Self::Bottleneck(super::HubAdapterFile::from_json(&text, path)?),
        })
    }

    /// The adapter's name in the file.
    pub fn name(&self) -> &str {
        match self {
            Self::Bottleneck(f) => &f.name,
            Self::Method(f) => &f.name,
        }
    }

    /// `bottleneck`, `lora`, `ia3` or `prefix_tuning`.
    pub fn method(&self) -> &'static str {
        match self {
            Self::Bottleneck(_) => "bottleneck",
            Self::Method(f) => f.method(),
        }
    }

    /// The `config` object as written.
    pub fn config_value(&self) -> Result<Value> {
        let here = Path::new("adapter_config.json");
        match self {
            Self::Bottleneck(f) => f.config.to_value(),
            Self::Method(f) => {
                serde_json::to_value(&f.config).map_err(|e| malformed(here, e.to_string()))
            }
        }
    }

    /// What the file says about the model it was saved from.
    pub fn model(&self) -> HubFileModel<'_> {
        fn m(f: &Option<String>) -> Option<&str> {
            f.as_deref()
        }
        let (t, n, c, h, v) = match self {
            Self::Bottleneck(f) => (
                &f.model_type,
                &f.model_name,
                &f.model_class,
                f.hidden_size,
                &f.version,
            ),
            Self::Method(f) => (
                &f.model_type,
                &f.model_name,
                &f.model_class,
                f.hidden_size,
                &f.version,
            ),
        };
        HubFileModel {
            model_type: m(t),
            model_name: m(n),
            model_class: m(c),
            hidden_size: h,
            version: m(v),
        }
    }

    /// Top-level keys this crate does not know.
    pub fn unknown_keys(&self) -> Vec<&str> {
        let keys = match self {
            Self::Bottleneck(f) => &f.unknown,
            Self::Method(f) => &f.unknown,
        };
        keys.keys().map(String::as_str).collect()
    }
}

/// What an `adapter_config.json` says about the model it was saved from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HubFileModel<'a> {
    /// `model_type`.
    pub model_type: Option<&'a str>,
    /// `model_name`.
    pub model_name: Option<&'a str>,
    /// `model_class`.
    pub model_class: Option<&'a str>,
    /// `hidden_size`.
    pub hidden_size: Option<usize>,
    /// `version`.
    pub version: Option<&'a str>,
}
