//! burn-peft's own adapter files: the trainable weights of a task, apart from the frozen base.
//!
//! A saved adapter is a directory with two files:
//! - [`WEIGHTS_FILE`] (`burn_peft_adapter.safetensors`): safetensors with only the adapter (and
//!   head) tensors, keyed by module path;
//! - [`CONFIG_FILE`] (`burn_peft_adapter.json`): a versioned JSON [`AdapterFile`] describing the
//!   method, its config and the base model it was trained on, so loading onto another
//!   architecture fails clearly.
//!
//! Both are written atomically (temporary file, then rename), weights first.
//!
//! The names are our own: until issue 10 this crate wrote `adapter_config.json` +
//! `adapter_model.safetensors`, Hugging Face PEFT's names, with a schema neither PEFT nor
//! AdapterHub reads. Such directories still load ([`LEGACY_CONFIG_FILE`],
//! [`LEGACY_WEIGHTS_FILE`]); a directory holding another library's `adapter_config.json`
//! (AdapterHub's, PEFT's) is told apart by its content and gets an error saying which loader to
//! use. To exchange adapters with Python's AdapterHub, use the [`crate::adapterhub`] format;
//! this one stays because it records what AdapterHub's cannot: the base model it was trained on
//! (checked on load), explicit bottleneck widths, head-only saves and the saved selection.

use std::io::Write;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use serde::{Deserialize, Serialize};

use crate::config::AdapterConfig;
use crate::error::{PeftError, Result};
use crate::freeze::Trainable;

/// Name of the JSON description inside an adapter directory.
pub const CONFIG_FILE: &str = "burn_peft_adapter.json";
/// Name of the weights file inside an adapter directory.
pub const WEIGHTS_FILE: &str = "burn_peft_adapter.safetensors";
/// The description's name before issue 10 (PEFT's file name); still read.
pub const LEGACY_CONFIG_FILE: &str = "adapter_config.json";
/// The weights' name before issue 10 (PEFT's file name); still read.
pub const LEGACY_WEIGHTS_FILE: &str = "adapter_model.safetensors";
/// The adapter file format version this library writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// The PEFT method of a saved adapter, tagged by name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", content = "config", rename_all = "snake_case")]
pub enum AdapterMethod {
    /// Bottleneck adapters (Houlsby, Pfeiffer, parallel).
    Bottleneck(AdapterConfig),
    /// LoRA modules (Hu et al. 2021), saved as adapter `default` (loaded under that name).
    Lora(crate::lora::LoraConfig),
    /// IA³ vectors (Liu et al. 2022), saved as adapter `default`.
    Ia3(crate::ia3::Ia3Config),
    /// Prefix tuning (Li & Liang 2021, AdapterHub's `prefix_tuning`), saved as adapter
    /// `default` (with its re-parameterisation MLP unless ejected first).
    PrefixTuning(crate::prefix::PrefixTuningConfig),
    /// Prompt tuning (Lester et al. 2021), saved as adapter `default`.
    PromptTuning(crate::prompt::PromptTuningConfig),
    /// No adapter modules: only a task head (and whatever the trainable selection names).
    HeadOnly,
    /// An AdapterFusion layer over adapters that are loaded separately.
    Fusion {
        /// The fused adapters, in order.
        adapters: Vec<String>,
        /// The fusion layer's config.
        config: crate::fusion::FusionConfig,
    },
}

impl AdapterMethod {
    /// The file method of a named adapter built from `config`.
    pub fn of(config: &crate::method::MethodConfig) -> Self {
        use crate::method::MethodConfig as M;
        match config {
            M::Bottleneck(c) => Self::Bottleneck(c.clone()),
            M::Lora(c) => Self::Lora(c.clone()),
            M::Ia3(c) => Self::Ia3(c.clone()),
            M::PrefixTuning(c) => Self::PrefixTuning(c.clone()),
            M::PromptTuning(c) => Self::PromptTuning(c.clone()),
        }
    }

    /// The config of the adapter this file holds (`None` for head-only and fusion files).
    pub fn method_config(&self) -> Option<crate::method::MethodConfig> {
        use crate::method::MethodConfig as M;
        match self {
            Self::Bottleneck(c) => Some(M::Bottleneck(c.clone())),
            Self::Lora(c) => Some(M::Lora(c.clone())),
            Self::Ia3(c) => Some(M::Ia3(c.clone())),
            Self::PrefixTuning(c) => Some(M::PrefixTuning(c.clone())),
            Self::PromptTuning(c) => Some(M::PromptTuning(c.clone())),
            Self::HeadOnly | Self::Fusion { .. } => None,
        }
    }

    /// A short name: `bottleneck`, `lora`, `ia3`, `prefix_tuning`, `prompt_tuning`,
    /// `head_only`, `fusion` (the file's `method` tag).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Bottleneck(_) => "bottleneck",
            Self::Lora(_) => "lora",
            Self::Ia3(_) => "ia3",
            Self::PrefixTuning(_) => "prefix_tuning",
            Self::PromptTuning(_) => "prompt_tuning",
            Self::HeadOnly => "head_only",
            Self::Fusion { .. } => "fusion",
        }
    }
}

/// The base model an adapter belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaseModelInfo {
    /// Architecture family, e.g. `bert` or `gpt2`.
    pub architecture: String,
    /// Model width.
    pub hidden_size: usize,
    /// Number of Transformer blocks.
    pub num_layers: usize,
    /// Where the base came from (Hub id or directory), informational.
    #[serde(default)]
    pub name_or_path: Option<String>,
}

/// A task head saved with an adapter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadInfo {
    /// Head type, e.g. `sequence_classification`.
    pub kind: String,
    /// Number of output classes.
    pub num_labels: usize,
    /// Class names, if known.
    #[serde(default)]
    pub label_names: Vec<String>,
    /// What the head's outputs mean (Hugging Face's `problem_type`). Default (and omitted
    /// from the file): [`ProblemType::SingleLabelClassification`].
    #[serde(default, skip_serializing_if = "ProblemType::is_classification")]
    pub problem_type: ProblemType,
}

/// What a head's outputs mean, as Hugging Face's `config.problem_type` names it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemType {
    /// Class logits, trained with cross-entropy (HF `single_label_classification`).
    #[default]
    SingleLabelClassification,
    /// One real-valued output, trained with mean squared error (HF `regression`,
    /// `num_labels == 1`; GLUE STS-B).
    Regression,
}

impl ProblemType {
    /// Whether this is [`ProblemType::SingleLabelClassification`].
    pub fn is_classification(&self) -> bool {
        *self == Self::SingleLabelClassification
    }
}

/// The content of [`CONFIG_FILE`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdapterFile {
    /// File format version ([`FORMAT_VERSION`]).
    pub format_version: u32,
    /// The library that wrote it.
    pub library: String,
    /// Method and its configuration.
    pub adapter: AdapterMethod,
    /// The base model.
    pub base_model: BaseModelInfo,
    /// The task head, if one is saved.
    #[serde(default)]
    pub head: Option<HeadInfo>,
    /// Regular expressions over module paths selecting the saved tensors.
    pub saved_patterns: Vec<String>,
}

impl AdapterFile {
    /// A description for `adapter` on `base_model`, saving the tensors `saved` selects.
    pub fn new(adapter: AdapterMethod, base_model: BaseModelInfo, saved: &Trainable) -> Self {
        Self {
            format_version: FORMAT_VERSION,
            library: format!("burn-peft {}", env!("CARGO_PKG_VERSION")),
            adapter,
            base_model,
            head: None,
            saved_patterns: saved.patterns().to_vec(),
        }
    }

    /// Attach a head description.
    pub fn with_head(mut self, head: HeadInfo) -> Self {
        self.head = Some(head);
        self
    }

    /// The selection of saved tensors.
    pub fn saved(&self) -> Trainable {
        self.saved_patterns
            .iter()
            .fold(Trainable::none(), |t, p| t.with_pattern(p.clone()))
    }

    /// Error unless this adapter was made for `base` (same architecture, width and depth).
    pub fn check_base(&self, base: &BaseModelInfo, path: &Path) -> Result<()> {
        let mine = &self.base_model;
        if mine.architecture != base.architecture
            || mine.hidden_size != base.hidden_size
            || mine.num_layers != base.num_layers
        {
            return Err(PeftError::Incompatible {
                path: path.to_path_buf(),
                message: format!(
                    "saved for {} (hidden {}, {} layers), loading onto {} (hidden {}, {} layers)",
                    mine.architecture,
                    mine.hidden_size,
                    mine.num_layers,
                    base.architecture,
                    base.hidden_size,
                    base.num_layers
                ),
            });
        }
        Ok(())
    }
}

/// Write `bytes` to `path` atomically: a temporary file in the same directory, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |source| PeftError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}

/// Serialise the tensors of `module` that `file.saved_patterns` select to safetensors bytes.
pub fn adapter_bytes<M: Module>(module: &M, file: &AdapterFile) -> Result<Vec<u8>> {
    let weights_err = |message: String| PeftError::Weights {
        path: PathBuf::from(WEIGHTS_FILE),
        message,
    };
    if file.saved_patterns.is_empty() {
        return Err(PeftError::InvalidConfig(
            "nothing selected to save (saved_patterns is empty)".into(),
        ));
    }
    let mut store = SafetensorsStore::from_bytes(None)
        .with_regexes(file.saved_patterns.iter())
        .metadata("format", "burn-peft-adapter");
    module
        .save_into(&mut store)
        .map_err(|e| weights_err(e.to_string()))?;
    store.get_bytes().map_err(|e| weights_err(e.to_string()))
}

/// Save the adapter (and head) tensors of `module` plus `file` into directory `dir`.
///
/// Only tensors matching `file.saved_patterns` are written: the frozen base never is.
pub fn save_adapter<M: Module>(
    module: &M,
    dir: impl AsRef<Path>,
    file: &AdapterFile,
) -> Result<()> {
    let dir = dir.as_ref();
    std::fs::create_dir_all(dir).map_err(|source| PeftError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let bytes = adapter_bytes(module, file)?;
    let json = serde_json::to_vec_pretty(file).map_err(|e| PeftError::MalformedJson {
        path: dir.join(CONFIG_FILE),
        message: e.to_string(),
    })?;
    write_atomic(&dir.join(WEIGHTS_FILE), &bytes)?;
    write_atomic(&dir.join(CONFIG_FILE), &json)
}

/// Read and check the description of an adapter directory: [`CONFIG_FILE`], or a
/// [`LEGACY_CONFIG_FILE`] written by this crate before issue 10.
///
/// # Errors
/// [`PeftError::Io`] (neither file), [`PeftError::ForeignAdapterDir`] (an `adapter_config.json`
/// of AdapterHub or PEFT: the message names the loader to use), and those of
/// [`AdapterFile::from_json`].
pub fn read_adapter_file(dir: impl AsRef<Path>) -> Result<AdapterFile> {
    let dir = dir.as_ref();
    let path = dir.join(CONFIG_FILE);
    let legacy = dir.join(LEGACY_CONFIG_FILE);
    let path = if !path.is_file() && legacy.is_file() {
        legacy
    } else {
        path
    };
    let text = std::fs::read_to_string(&path).map_err(|source| PeftError::Io {
        path: path.clone(),
        source,
    })?;
    if path.ends_with(LEGACY_CONFIG_FILE) {
        let raw: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let other = if raw.get("format_version").is_some() {
            None
        } else if raw.get("config").is_some() {
            Some(
                "it is an AdapterHub adapter (adapters 1.x `save_adapter`): load it with the AdapterHub loader (`load_adapterhub`), e.g. `sst2 --adapter DIR` reads both",
            )
        } else if raw.get("peft_type").is_some() {
            Some(
                "it is a Hugging Face PEFT adapter (LoRA and friends), which burn-peft does not read",
            )
        } else {
            None
        };
        if let Some(message) = other {
            return Err(PeftError::ForeignAdapterDir {
                dir: dir.to_path_buf(),
                message: message.into(),
            });
        }
    }
    AdapterFile::from_json(&text, &path)
}

/// The weights file of one of our adapter directories: [`WEIGHTS_FILE`], or
/// [`LEGACY_WEIGHTS_FILE`] when only that exists.
pub fn weights_file(dir: &Path) -> PathBuf {
    let path = dir.join(WEIGHTS_FILE);
    let legacy = dir.join(LEGACY_WEIGHTS_FILE);
    if !path.is_file() && legacy.is_file() {
        legacy
    } else {
        path
    }
}

impl AdapterFile {
    /// Parse and check the text of a [`CONFIG_FILE`]; `path` only names the file in
    /// errors. [`read_adapter_file`] is this on the file of an adapter directory.
    ///
    /// # Errors
    /// [`PeftError::MalformedJson`] (not JSON, no integer `format_version`, unknown or wrongly
    /// typed fields), [`PeftError::UnsupportedVersion`], or the adapter config's
    /// [`PeftError::InvalidConfig`].
    pub fn from_json(text: &str, path: &Path) -> Result<AdapterFile> {
        let path = path.to_path_buf();
        // Look at the version first so a newer file says so instead of failing on a new field.
        let raw: serde_json::Value =
            serde_json::from_str(text).map_err(|e| PeftError::MalformedJson {
                path: path.clone(),
                message: e.to_string(),
            })?;
        let version = raw
            .get("format_version")
            .and_then(|v| v.as_u64())
            .ok_or_else(|| PeftError::MalformedJson {
                path: path.clone(),
                message: "missing integer field `format_version`".into(),
            })?;
        if version != u64::from(FORMAT_VERSION) {
            return Err(PeftError::UnsupportedVersion {
                path,
                found: u32::try_from(version).unwrap_or(u32::MAX),
                supported: FORMAT_VERSION,
            });
        }
        // From the text, not from `raw`: integer map keys (`layer_widths`) are strings in JSON,
        // which `serde_json::from_value` refuses.
        let file: AdapterFile =
            serde_json::from_str(text).map_err(|e| PeftError::MalformedJson {
                path: path.clone(),
                message: e.to_string(),
            })?;
        if let AdapterMethod::Bottleneck(config) = &file.adapter {
            config.validate()?;
        }
        Ok(file)
    }
}

/// What loading adapter weights did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AdapterLoadReport {
    /// Paths of the tensors loaded.
    pub loaded: Vec<String>,
}

/// Load the weights of an adapter directory into `module`, which must already have the adapter
/// modules attached (build them from [`read_adapter_file`]'s config first).
///
/// Errors if the file holds a tensor the model lacks, a tensor has the wrong shape, or the
/// model has a selected (adapter/head) tensor that the file lacks. On error `module` is left as
/// it was: the weights are applied to a copy, kept only when every check passed.
pub fn load_adapter_weights<M: Module>(
    module: &mut M,
    dir: impl AsRef<Path>,
    file: &AdapterFile,
) -> Result<AdapterLoadReport> {
    let path = weights_file(dir.as_ref());
    if !path.is_file() {
        return Err(PeftError::Io {
            path,
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        });
    }
    let mut store = SafetensorsStore::from_file(&path)
        .allow_partial(true)
        .validate(false);
    if path.ends_with(LEGACY_WEIGHTS_FILE) {
        // Before issue 10 a site held one unnamed adapter (`….adapter.…`) and a classifier one
        // head (`head.dense…`); they are now the adapter and head named `default`.
        let default = crate::attach::DEFAULT_ADAPTER;
        let remap = burn::store::KeyRemapper::from_patterns(vec![
            (
                r"(^|\.)adapter\.".to_string(),
                format!("${{1}}adapters.{default}."),
            ),
            (
                r"(^|\.)head\.(dense|classifier)\.".to_string(),
                format!("${{1}}heads.{default}.$2."),
            ),
        ])
        .map_err(|e| PeftError::InvalidConfig(format!("legacy key remapping: {e}")))?;
        store = store.remap(remap);
    }
    let mut staged = module.clone();
    let result = staged
        .load_from(&mut store)
        .map_err(|e| PeftError::Weights {
            path: path.clone(),
            message: e.to_string(),
        })?;
    let incompatible = |message: String| PeftError::Incompatible {
        path: path.clone(),
        message,
    };
    if !result.errors.is_empty() {
        let msgs: Vec<String> = result.errors.iter().map(|e| e.to_string()).collect();
        return Err(incompatible(msgs.join("; ")));
    }
    if !result.unused.is_empty() {
        return Err(incompatible(format!(
            "the file holds tensors this model lacks: {}",
            result.unused.join(", ")
        )));
    }
    let saved = file.saved();
    let mut absent = Vec::new();
    for (p, _) in &result.missing {
        if saved.matches(p)? {
            absent.push(p.clone());
        }
    }
    if !absent.is_empty() {
        return Err(incompatible(format!(
            "the model has adapter/head tensors the file lacks: {}",
            absent.join(", ")
        )));
    }
    *module = staged;
    Ok(AdapterLoadReport {
        loaded: result.applied,
    })
}

#[cfg(test)]
#[path = "file_tests.rs"]
mod tests;
