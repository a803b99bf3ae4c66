//! # peft-train: adapter-only training with burn-train
//!
//! | module | what it holds |
//! |---|---|
//! | [`data`] | GLUE TSV loading, tokenized datasets, batching padded to the longest item, downloads |
//! | [`loader`] | [`loader::EpochLoader`]: epoch-aware order and dropout seeding, so resumed runs continue exactly |
//! | [`task`] | [`task::ClassificationTask`]: `TrainStep`/`InferenceStep`, global gradient clipping, non-finite guard |
//! | [`optim`] | [`optim::OptimConfig`]: AdamW with PyTorch defaults, warm-up + linear decay |
//! | [`render`] | [`render::ProgressRenderer`]: concise progress lines and epoch summaries for headless runs |
//! | [`checkpoint`] | [`checkpoint::AdapterCheckpointer`]: checkpoints without the frozen base |
//! | [`trainer`] | [`trainer::train_classifier`], [`trainer::evaluate`]: the whole run and its artefacts |
//! | [`error`] | [`TrainError`] |
#![warn(missing_docs)]

pub mod checkpoint;
pub mod data;
pub mod error;
pub mod loader;
pub mod optim;
pub mod render;
pub mod task;
pub mod trainer;

pub use error::{Result, TrainError};
