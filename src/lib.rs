//! # burn-peft: parameter-efficient fine-tuning for Burn
//!
//! Take a pre-trained Hugging Face BERT, freeze it, inject bottleneck adapters (Houlsby et al.
//! 2019), train only those on CPU or GPU, and ship a file of a few hundred kilobytes per task.
//!
//! This crate is the facade. The work is done in three crates, re-exported here:
//!
//! | crate | re-exported as | what it holds |
//! |---|---|---|
//! | `peft-core` | [`core`] | model-agnostic adapter modules (bottleneck, LoRA, IA³), the named-adapter sites and their composition, configs and presets, freezing, adapter files (ours, AdapterHub's, PEFT's) |
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
//!
//! ## Many named adapters on one base
//!
//! A model holds any number of named adapters (and one head per task); [`core::set_active`]
//! picks what runs, with AdapterHub's composition blocks ([`core::Setup`]) or per example:
//!
//! ```
//! use burn::tensor::{Device, Int, Tensor};
//! use burn_peft::core::{AdapterConfig, FusionConfig, Setup, add_adapter, add_fusion, adapters,
//!     freeze_except, set_active};
//! use burn_peft::models::bert::{BertConfig, BertInput};
//! use burn_peft::models::head::{BertClassifier, ClassificationHeadConfig};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let device = Device::default();
//! let config = BertConfig::new().with_vocab_size(50).with_hidden_size(16)
//!     .with_num_hidden_layers(2).with_num_attention_heads(2).with_intermediate_size(32);
//! let head = ClassificationHeadConfig::new(16, 2);
//! let mut model = BertClassifier::new_named(config.init(&device)?, "sst2", &head, &device)?;
//! model.add_head("mrpc", &head, &device)?;
//! add_adapter(&mut model, "sst2", &AdapterConfig::pfeiffer(4.0), &device)?;
//! add_adapter(&mut model, "mrpc", &AdapterConfig::houlsby(4.0), &device)?;
//! assert_eq!(adapters(&model).len(), 2);
//!
//! // Train one task: its adapter and head train, every other parameter is frozen.
//! let sst2_only = freeze_except(model.clone(), &BertClassifier::task_trainable("sst2"))?;
//! # let _ = sst2_only;
//!
//! let ids = Tensor::<2, Int>::from_ints([[2, 7, 9, 3], [2, 5, 3, 0]], &device);
//! let input = BertInput::new(ids);
//! // One adapter (and the head of the same name), or AdapterHub's blocks...
//! set_active(&mut model, Some(Setup::stack(["mrpc", "sst2"])))?;
//! let _logits = model.forward(input.clone());
//! // ...or each example its own task, in one batch: one output per head.
//! set_active(&mut model, Some(Setup::Route(vec![
//!     Some(Setup::single("sst2")), Some(Setup::single("mrpc")),
//! ])))?;
//! for out in model.forward_heads(input.clone())? {
//!     println!("{}: rows {:?}", out.head, out.rows);
//! }
//! // AdapterFusion over both (train it with `TrainingMethod::Fusion`).
//! add_fusion(&mut model, &["sst2", "mrpc"], &FusionConfig::dynamic(), &device)?;
//! set_active(&mut model, Some(Setup::fuse(["sst2", "mrpc"])))?;
//! let _fused = model.forward(input);
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

/// The README's Rust examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub use peft_core as core;
pub use peft_models as models;
pub use peft_train as train;

pub mod cli;
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
    /// A compiled-in device cannot start on this machine (no driver, no GPU, a failed
    /// initialisation).
    #[error("device `{device}` is not usable here: {reason}")]
    DeviceUnavailable {
        /// The device asked for.
        device: String,
        /// What went wrong, as the backend or the driver check said it.
        reason: String,
    },
    /// No backend feature is enabled at all.
    #[error(
        "no backend compiled in: enable one of the features flex, ndarray, wgpu, vulkan, metal, cuda"
    )]
    NoBackend,
}
