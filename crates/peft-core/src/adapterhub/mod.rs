//! AdapterHub's file format (`adapters` 1.3.0), both directions: every file name, key name and
//! config mapping of that format lives in this module.
//!
//! A directory written by `model.save_adapter(dir, name)` holds
//! - [`CONFIG_FILE`] (`adapter_config.json`, [`HubAdapterFile`]) and the weights,
//!   [`WEIGHTS_BIN`] (`pytorch_adapter.bin`, AdapterHub's default) or [`WEIGHTS_SAFETENSORS`]
//!   (`adapter.safetensors`, with `use_safetensors=True`);
//! - with `with_head=True`: [`HEAD_CONFIG_FILE`] ([`HubHeadFile`]) and [`HEAD_WEIGHTS_BIN`] or
//!   [`HEAD_WEIGHTS_SAFETENSORS`].
//!
//! `config.architecture` `"lora"` (LoRA, and IA³ as `composition_mode: "scale"`) and
//! `"prefix_tuning"` files ([`HubMethodFile`]) load and save through the same
//! [`load_hub_adapter`] / [`save_hub_adapter`], which dispatch on the config.
//!
//! `save_adapter_fusion(dir, "a,b")` writes [`FUSION_CONFIG_FILE`] and [`FUSION_WEIGHTS_BIN`]
//! or [`FUSION_WEIGHTS_SAFETENSORS`].
//!
//! Tensor names are the saving model's state-dict names ([`keys`]); the model family supplies
//! its prefix and site names ([`HubKeys`], in each model's `weights.rs`). The maths behind
//! every flag is in `scripts/ADAPTERHUB_MATHS.md`.
//!
//! This crate writes safetensors only (it has no PyTorch pickle writer): Python loads what we
//! write with `model.load_adapter(dir, use_safetensors=True)`.

pub mod config;
pub mod fusion;
pub mod head;
pub mod io;
pub mod keys;
mod lora_io;
pub mod method_file;
pub mod methods;
mod methods_io;
mod prefix_io;
pub mod weights;

pub use config::{HUB_VERSION, HubAdapterFile, HubBnConfig, HubModelInfo};
pub use fusion::HubFusionFile;
pub use head::{HubClassificationHead, HubHead, HubHeadFile, classification_linear_indices};
pub use io::{
    HubAdapterLoad, load_hub_adapter, load_hub_fusion, save_hub_adapter, save_hub_fusion,
};
pub use keys::{HubKeys, Landing};
pub use method_file::{HubFile, HubFileModel, HubMethodFile};
pub use methods::{HubLoraConfig, HubMethodConfig, HubPrefixConfig};

/// The adapter's configuration.
pub const CONFIG_FILE: &str = "adapter_config.json";
/// Adapter weights, PyTorch pickle (AdapterHub's default).
pub const WEIGHTS_BIN: &str = "pytorch_adapter.bin";
/// Adapter weights, safetensors (`use_safetensors=True`).
pub const WEIGHTS_SAFETENSORS: &str = "adapter.safetensors";
/// The head's configuration.
pub const HEAD_CONFIG_FILE: &str = "head_config.json";
/// Head weights, PyTorch pickle.
pub const HEAD_WEIGHTS_BIN: &str = "pytorch_model_head.bin";
/// Head weights, safetensors.
pub const HEAD_WEIGHTS_SAFETENSORS: &str = "model_head.safetensors";
/// A fusion layer's configuration.
pub const FUSION_CONFIG_FILE: &str = "adapter_fusion_config.json";
/// Fusion weights, PyTorch pickle.
pub const FUSION_WEIGHTS_BIN: &str = "pytorch_model_adapter_fusion.bin";
/// Fusion weights, safetensors.
pub const FUSION_WEIGHTS_SAFETENSORS: &str = "model_adapter_fusion.safetensors";

/// Whether `dir` looks like an AdapterHub adapter directory (an `adapter_config.json` with a
/// `config` object and a weights file AdapterHub reads), as opposed to one of ours.
pub fn is_hub_dir(dir: &std::path::Path) -> bool {
    let has_weights = [WEIGHTS_BIN, WEIGHTS_SAFETENSORS]
        .iter()
        .any(|w| dir.join(w).is_file());
    let has_config = std::fs::read_to_string(dir.join(CONFIG_FILE))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .is_some_and(|v| v.get("config").is_some() && v.get("format_version").is_none());
    has_weights && has_config
}
