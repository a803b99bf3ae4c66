//! # peft-core: model-agnostic parameter-efficient fine-tuning for Burn
//!
//! This crate knows nothing about BERT or GPT-2. It provides the pieces every model reuses:
//!
//! | module | what it holds |
//! |---|---|
//! | [`config`] | [`BottleneckConfig`] (the adapter module), [`AdapterPlacement`] (where and how it is wired), [`AdapterConfig`] with the named presets [`AdapterConfig::houlsby`], [`AdapterConfig::pfeiffer`], [`AdapterConfig::parallel`], [`AdapterConfig::scaled_parallel`] |
//! | [`bottleneck`] | the [`BottleneckAdapter`] module and [`residual_site`], the function a model calls at each adapter site |
//! | [`activation`] | the non-linearities ([`Activation`]) |
//! | [`host`] | [`host::host_resident`]: whether a device keeps tensors in host memory (CPU fast paths) |
//! | [`dropout`] | [`dropout::dropout`](fn@dropout::dropout), burn's dropout with a fast host-side mask on CPU backends, used by every model |
//! | [`freeze`] | [`Trainable`] selections, [`freeze_except`], [`param_summary`] |
//! | [`file`](mod@file) | adapter directories: [`save_adapter`], [`read_adapter_file`], [`load_adapter_weights`] |
//! | [`attach`] | [`AttachReport`], what attaching adapters to a model did |
//! | [`adapterhub`] | AdapterHub's file format (`adapters` 1.3.0) both directions: `adapter_config.json`, `head_config.json`, fusion files, key names |
//! | [`error`] | [`PeftError`] |
//!
//! Models (in `peft-models`) own the Transformer blocks; each block holds an
//! `Option<BottleneckAdapter>` per [`AdapterSite`] and routes its residual connection through
//! [`residual_site`]. All modules are backend-agnostic (burn 0.22 dispatch): only binaries pick
//! a device.
//!
//! ```
//! use burn::tensor::{Device, Tensor};
//! use peft_core::{AdapterConfig, AdapterSite, residual_site};
//!
//! let device = Device::default();
//! let config = AdapterConfig::houlsby(4.0);
//! let width = config.width_for_layer(0, 16)?; // 16 / 4 = 4 bottleneck units
//! let adapter = config.bottleneck.init(16, width, config.placement.wiring(), &device)?;
//! let h = Tensor::<3>::ones([2, 3, 16], &device);
//! let x = Tensor::<3>::zeros([2, 3, 16], &device);
//! // A fresh adapter (identity init) leaves the pre-LN residual sum unchanged: h + x.
//! let out = residual_site(Some(&adapter), h.clone(), x.clone(), None);
//! assert!(config.placement.targets(0, AdapterSite::AttentionOutput));
//! out.into_data().assert_eq(&(h + x).into_data(), true);
//! # Ok::<(), peft_core::PeftError>(())
//! ```
#![warn(missing_docs)]

pub mod activation;
pub mod adapterhub;
pub mod attach;
pub mod bottleneck;
pub mod config;
pub mod dropout;
pub mod error;
pub mod file;
pub mod freeze;
pub mod host;
#[cfg(test)]
mod testing;

pub use activation::Activation;
pub use attach::{AdapterHost, AttachReport, AttachedSite, attach_adapters, remove_adapters};
pub use bottleneck::{BottleneckAdapter, residual_site};
pub use config::{
    AdapterConfig, AdapterInit, AdapterPlacement, AdapterSite, BottleneckConfig, BottleneckWidth,
    Composition, Scaling, Wiring,
};
pub use error::{PeftError, Result};
pub use file::{
    AdapterFile, AdapterLoadReport, AdapterMethod, BaseModelInfo, HeadInfo, load_adapter_weights,
    read_adapter_file, save_adapter,
};
pub use freeze::{
    ADAPTER_PATTERN, ParamSummary, Trainable, freeze_except, param_paths, param_summary,
    randomize_matching,
};
