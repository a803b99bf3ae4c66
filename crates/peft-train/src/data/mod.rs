//! GLUE text-classification data: strict TSV loading, pre-tokenized datasets, batching padded
//! to the longest item, seeded orders and a one-time download into a cache.
//!
//! The pipeline is
//! [`GlueDataset`] (text) → [`TokenizedDataset`] (ids, tokenized once, fallibly) →
//! [`ClassificationBatcher`] (padding only, cannot fail) → [`ClassificationBatch`] tensors.
//!
//! One private submodule per seam, its items re-exported here: `task` ([`GlueTask`],
//! [`Split`]), `tsv` ([`load_glue_tsv`], [`parse_glue_tsv`]), `dataset` ([`GlueDataset`],
//! [`TokenizedDataset`]), `batch` ([`ClassificationBatcher`]), `order` ([`shuffled_indices`],
//! [`load_permutation`]), and the public `stsb` (GLUE STS-B's scored pairs: [`stsb::load_stsb_tsv`]). The download lives in [`crate::download`]; its entry points are
//! re-exported here too.

mod batch;
mod dataset;
mod order;
pub mod stsb;
mod task;
mod tsv;
pub mod user;

#[cfg(test)]
mod test_util;

pub use batch::{ClassificationBatch, ClassificationBatcher};
pub use dataset::{EncodedItem, GlueDataset, IndexOutOfBounds, TokenizedDataset};
pub use order::{load_permutation, shuffled_indices};
pub use task::{GlueMetric, GlueTask, Split};
pub(crate) use tsv::lines_of;
pub use tsv::{TextClassificationItem, load_glue_tsv, parse_glue_tsv};

pub use crate::download::{default_glue_cache_dir, download_glue, glue_url};
