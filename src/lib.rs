//! # burn-peft: parameter-efficient fine-tuning for Burn
//!
//! Take a pre-trained Hugging Face BERT, freeze it, inject bottleneck adapters (Houlsby et al.
//! 2019), train only those on CPU or GPU, and ship a file of a few hundred kilobytes per task.
//!
//! This crate is the facade. The work is done in three crates, re-exported here:
//!
//! | crate | re-exported as | what it holds |
//! |---|---|---|
//! | `peft-core` | [`core`] | model-agnostic adapter modules, configs and presets, freezing, adapter files |
//! | `peft-models` | [`models`] | BERT (and GPT-2) with adapter sites, task heads, HF checkpoint + tokenizer loading |
//! | `peft-train` | [`train`] | data, tasks, optimiser and schedule, burn-train `Learner` glue |
//!
//! The backend is chosen by cargo feature (`flex` by default, `ndarray`, `wgpu`, `vulkan`,
//! `metal`, `cuda`); library code names no backend. [`device::select_device`] picks the device
//! in binaries, honouring `BURN_DEVICE` and a `--device` flag.
//!
//! ```no_run
//! use burn_peft::core::{AdapterConfig, attach_adapters, freeze_except, param_summary};
//! use burn_peft::models::head::{BertClassifier, HeadPooling};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let device = burn_peft::device::select_device(None)?.autodiff();
//! let (mut model, report) =
//!     BertClassifier::from_pretrained("all-MiniLM-L6-v2", 2, HeadPooling::DenseTanh, &device)?;
//! println!("{report}");
//! let attached = attach_adapters(&mut model, &AdapterConfig::pfeiffer(16.0), &device)?;
//! println!("{attached}");
//! let trainable = BertClassifier::adapter_trainable();
//! let model = freeze_except(model, &trainable)?;
//! println!("{}", param_summary(&model, &trainable)?);
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

pub use peft_core as core;
pub use peft_models as models;
pub use peft_train as train;

pub mod device;

/// Errors of the facade crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A device name is not known.
    #[error("unknown device `{0}` (expected one of: flex, ndarray, wgpu, vulkan, metal, cuda)")]
    UnknownDevice(String),
    /// A device was asked for whose backend feature is not compiled in.
    #[error(
        "device `{device}` needs the cargo feature `{feature}`: rebuild with `--features {feature}`"
    )]
    BackendNotCompiled {
        /// The device asked for.
        device: String,
        /// The feature that enables it.
        feature: &'static str,
    },
    /// No backend feature is enabled at all.
    #[error(
        "no backend compiled in: enable one of the features flex, ndarray, wgpu, vulkan, metal, cuda"
    )]
    NoBackend,
}
