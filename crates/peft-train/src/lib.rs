//! # peft-train: adapter-only training with burn-train
//!
//! | module | what it holds |
//! |---|---|
//! | [`data`] | GLUE TSV loading, tokenized datasets, batching padded to the longest item |
//! | [`error`] | [`TrainError`] |
#![warn(missing_docs)]

pub mod data;
pub mod error;

pub use error::{Result, TrainError};
