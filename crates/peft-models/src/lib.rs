//! # peft-models: Transformer models with adapter sites, loading Hugging Face checkpoints
//!
//! | module | what it holds |
//! |---|---|
//! | [`bert`] | BERT and RoBERTa (post-LN encoder): config, embeddings, attention, layer, model, checkpoint names |
//! | [`gpt2`] | GPT-2 (pre-LN decoder, tied LM head): config, Conv1D, attention, block, model, checkpoint names, KV-cached generation, causal LM loss |
//! | [`head`] (= `bert::head`) | task heads: [`head::ClassificationHead`] and [`head::BertClassifier`] with named heads |
//! | [`peft`](mod@peft) | Hugging Face PEFT 0.21 `SEQ_CLS` directories for the BERT classifier (LoRA + `modules_to_save` classifier): [`peft::load_peft_classifier`], [`peft::save_peft_classifier`]; the format is [`peft_core::peft`], module names in `bert/weights.rs` and `gpt2/weights.rs` |
//! | [`adapterhub`] | AdapterHub (`adapters` 1.3.0) directories both ways: adapters, classification heads and fusion layers ([`adapterhub::load_adapterhub`], [`adapterhub::load_adapterhub_classifier`], [`adapterhub::save_adapterhub_classifier`], …); the format itself is [`peft_core::adapterhub`] |
//! | [`golden`] | golden tensor files for parity tests against PyTorch |
//! | [`checkpoint`] | loading `model.safetensors` / `pytorch_model.bin` with burn-store, load reports |
//! | [`tokenizer`] | `tokenizer.json` through the `tokenizers` crate, padding to the longest item, fitting a model |
//! | [`limits`] | [`InputLimits`]: the ids and lengths a model accepts, checked before any tensor op |
//! | [`hub`] | resolving a local directory or downloading from the Hugging Face Hub into its cache |
//! | [`download`] | resumable HTTP downloads with timeouts, size/SHA-256 checks and one-line progress |
//! | [`error`] | [`ModelError`] |
//!
//! Every model block holds one [`peft_core::AdapterLayer`] per adapter site (any number of named
//! adapters and fusion layers, the active setup) and every model implements
//! [`peft_core::AdapterHost`], so `peft_core::add_adapter`, `set_active` and the other verbs work
//! the same on each.
#![warn(missing_docs)]

pub mod adapterhub;
pub mod bert;
pub mod checkpoint;
pub mod download;
pub mod error;
pub mod golden;
pub mod gpt2;
pub mod hub;
mod json;
pub mod limits;
pub mod peft;
#[cfg(any(test, feature = "test-server"))]
#[doc(hidden)]
pub mod test_server;
pub mod tokenizer;

pub use bert::head;
pub use checkpoint::{LoadReport, find_checkpoint};
pub use error::{ModelError, Result};
pub use limits::InputLimits;
