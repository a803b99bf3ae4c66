//! # peft-core: model-agnostic parameter-efficient fine-tuning for Burn
//!
//! This crate knows nothing about BERT or GPT-2. It provides the pieces every model reuses:
//!
//! | module | what it holds |
//! |---|---|
//! | [`config`] | [`BottleneckConfig`] (the adapter module), [`AdapterPlacement`] (where and how it is wired), [`AdapterConfig`] with the named presets [`AdapterConfig::houlsby`], [`AdapterConfig::pfeiffer`], [`AdapterConfig::parallel`], [`AdapterConfig::scaled_parallel`] |
//! | [`bottleneck`] | the [`BottleneckAdapter`] module (AdapterHub's `pre_forward` / `forward` / `post_forward`) and [`residual_site`] for one adapter |
//! | [`site`] | [`AdapterLayer`], the one site type every model embeds: named adapters and fusion layers, the active setup, AdapterDrop; the composition maths |
//! | [`setup`] | [`Setup`]: AdapterHub's composition blocks (`Stack`, `Parallel`, `BatchSplit`, `Average`, `Fuse`) and per-example routing, with AdapterHub's nesting rules |
//! | [`fusion`] | [`AdapterFusion`] and [`FusionConfig`] (Pfeiffer et al. 2021) |
//! | [`lora`] | LoRA (Hu et al. 2021): [`LoraConfig`], [`LoraModule`], the targetable projections [`LinearTarget`] |
//! | [`ia3`] | IA³ (Liu et al. 2022): [`Ia3Config`], [`Ia3Module`] (PEFT's `feedforward_modules` semantics) |
//! | [`linear_site`] | [`LinearSite`], the linear layer type models use for targetable projections: frozen base, named LoRA modules and IA³ vectors, merge/unmerge |
//! | [`prefix`] | prefix tuning (Li & Liang 2021) as AdapterHub's `prefix_tuning`: [`PrefixTuningConfig`], [`PrefixTuningModule`] (re-parameterisation MLP, `eject`), [`PrefixPool`] (what a model holds once) |
//! | [`prompt`] | prompt tuning (Lester et al. 2021) as AdapterHub's `prompt_tuning`: [`PromptTuningConfig`], [`PromptTuningModule`] (held by the [`PrefixPool`]) |
//! | [`method`] | [`MethodConfig`]: the config of any kind of named adapter (bottleneck, LoRA, IA³, prefix tuning, prompt tuning) |
//! | [`named`] | [`Named`]: modules kept by name (task heads) |
//! | [`activation`] | the non-linearities ([`Activation`]) |
//! | [`host`] | [`host::host_resident`]: whether a device keeps tensors in host memory (CPU fast paths) |
//! | [`kernels`] | fused CPU kernels (masked softmax, residual add + LayerNorm) with burn's ops elsewhere |
//! | [`dropout`] | [`dropout::dropout`](fn@dropout::dropout), burn's dropout with a fast host-side mask on CPU backends, used by every model |
//! | [`freeze`] | [`Trainable`] selections, [`freeze_except`], [`param_summary`] |
//! | [`file`](mod@file) | adapter directories: [`save_adapter`], [`read_adapter_file`], [`load_adapter_weights`] |
//! | [`adapter_drop`] | [`AdapterDrop`] (Rücklé et al. 2021): skipped blocks, random per-block and robust first-n dropping in training; bottleneck adapters and LoRA/IA³ modules of a block are skipped or dropped together |
//! | [`attach`] | the verbs over any [`AdapterHost`]: [`add_adapter`], [`delete_adapter`], [`set_active`], [`add_fusion`], [`adapters`], [`set_adapter_drop`], [`attach_adapters`] (the one-adapter shortcut) |
//! | [`peft`](mod@peft) | Hugging Face PEFT 0.21 LoRA directories both directions: `adapter_config.json`, `adapter_model.safetensors`, PEFT's `target_modules` rule |
//! | [`adapterhub`] | AdapterHub's file format (`adapters` 1.3.0) both directions: `adapter_config.json`, `head_config.json`, fusion files, key names |
//! | [`error`] | [`PeftError`] |
//!
//! Models (in `peft-models`) own the Transformer blocks; each block holds an [`AdapterLayer`]
//! per [`AdapterSite`] and routes its residual connection through [`AdapterLayer::forward`];
//! models implement [`AdapterHost`] (where the sites are) and never match on adapter names or
//! methods. Trainable selections ([`Trainable::adapter`], [`Trainable::with_fusion`]) freeze
//! everything else. All modules are backend-agnostic (burn 0.22 dispatch): only binaries pick a
//! device.
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
pub mod adapter_drop;
pub mod adapterhub;
pub mod attach;
pub mod bottleneck;
pub mod config;
pub mod dropout;
pub mod error;
pub mod file;
pub mod freeze;
pub mod fusion;
mod fusion_attach;
pub mod host;
pub mod ia3;
pub mod kernels;
mod linear_attach;
pub mod linear_site;
pub mod lora;
pub mod method;
pub mod named;
pub mod peft;
pub mod prefix;
mod prefix_attach;
pub mod prompt;
pub mod setup;
pub mod site;
#[cfg(test)]
mod testing;

pub use activation::Activation;
pub use adapter_drop::{AdapterDrop, set_adapter_drop};
pub use attach::{
    AdapterHost, AdapterInfo, AttachReport, AttachedSite, DEFAULT_ADAPTER, SitePlace, active_setup,
    adapters, add_adapter, add_fusion, attach_adapters, check_active_batch, delete_adapter,
    delete_fusion, eject_prefix, fusion_regularization, fusions, linear_sites, merge_adapter,
    parallel_channels, remove_adapters, set_active, sites, unmerge_adapter,
};
pub use bottleneck::{BottleneckAdapter, residual_site};
pub use config::{
    AdapterConfig, AdapterInit, AdapterPlacement, AdapterSite, BottleneckConfig, BottleneckWidth,
    Composition, Scaling, Wiring,
};
pub use error::{PeftError, Result};
pub use file::{
    AdapterFile, AdapterLoadReport, AdapterMethod, BaseModelInfo, HeadInfo, ProblemType,
    load_adapter_weights, read_adapter_file, save_adapter,
};
pub use freeze::{
    ADAPTER_PATTERN, FUSION_PATTERN, ParamSummary, Trainable, freeze_except, param_paths,
    param_summary, randomize_matching,
};
pub use fusion::{AdapterFusion, FusionConfig};
pub use ia3::{Ia3Config, Ia3Init, Ia3Module};
pub use linear_site::{BaseLayout, LinearSite};
pub use lora::{LinearTarget, LoraConfig, LoraInit, LoraModule};
pub use method::{MethodConfig, MethodKind};
pub use named::Named;
pub use prefix::{LayerPrefix, PrefixPool, PrefixTuningConfig, PrefixTuningModule};
pub use prompt::{PromptCombine, PromptTuningConfig, PromptTuningModule};
pub use setup::Setup;
pub use site::{AdapterLayer, FusionMeta, replicate_batch};
