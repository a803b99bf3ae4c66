//! # peft-train: adapter-only training with burn-train
//!
//! | module | what it holds |
//! |---|---|
//! | [`adapter_io`] | [`adapter_io::load_classifier_adapter`]: saved adapters onto a loaded base, swapping them |
//! | [`correlation`] | [`correlation::pearson`], [`correlation::spearman`] (average ranks): STS-B's metrics as GLUE reports them |
//! | [`data`] | GLUE tasks, TSV loading, tokenized datasets, batching padded to the longest item, seeded orders |
//! | [`download`] | [`download::download_glue`]: a GLUE archive once into a cache, with timeouts, resumed retries, no leftovers |
//! | [`loader`] | [`loader::EpochLoader`]: epoch-aware order and dropout seeding, so resumed runs continue exactly |
//! | [`task`] | [`task::ClassificationTask`]: `TrainStep`/`InferenceStep`, global gradient clipping, non-finite guard |
//! | [`optim`] | [`optim::OptimConfig`]: AdamW with PyTorch defaults, warm-up + linear decay |
//! | [`render`] | [`render::ProgressRenderer`]: concise progress lines and epoch summaries for headless runs |
//! | [`checkpoint`] | [`checkpoint::AdapterCheckpointer`]: checkpoints without the frozen base, with their [`checkpoint::CheckpointState`] (position and run settings) |
//! | [`predict`] | [`predict::predict`]: per-example predictions in input order, with length-grouped batches ([`predict::BatchOrder::ByLength`]) as an option |
//! | [`run`] | the one run loop both tasks share (resume checks, seeding, loaders, optimizer, restore, Learner launch), [`run::RunOptions`]: step checkpoints (every `checkpoint_every` optimizer steps, epoch ends, Ctrl-C), exact mid-epoch resume, `overwrite` |
//! | [`trainer`] | [`trainer::train_classifier`], [`trainer::train_classifier_from_dir`], [`trainer::evaluate`]: the whole run and its artefacts |
//! | [`lm`] | causal language modelling: corpus → token blocks, [`lm::LmTask`] (loss + perplexity), [`lm::train_causal_lm`], [`lm::evaluate_lm`] |
//! | [`regression`] | STS-B regression: one-output head, MSE ([`regression::mse_loss`]), [`regression::train_regressor_from_dir`], [`regression::evaluate_regression`] (Pearson, Spearman) |
//! | [`serve`] | several saved adapters (ours, AdapterHub's) on one base, each under its own name: [`serve::evaluate_adapter_dirs`], batched [`serve::predict_proba`] |
//! | [`glue_metrics`] | F1 (MRPC, QQP) and Matthews correlation (CoLA) of two-class predictions, as GLUE reports them; [`data::GlueTask::metric`] |
//! | [`error`] | [`TrainError`] |
#![warn(missing_docs)]

pub mod adapter_io;
pub mod checkpoint;
pub mod correlation;
pub mod data;
pub mod download;
pub mod error;
pub mod glue_metrics;
pub mod lm;
pub mod loader;
pub mod optim;
pub mod predict;
pub mod regression;
pub mod render;
pub mod run;
pub mod serve;
pub mod task;
pub mod trainer;

pub use error::{Result, TrainError};
