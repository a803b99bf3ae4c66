//! GLUE splits in memory ([`GlueDataset`]) and examples tokenized once, up front
//! ([`TokenizedDataset`]), both burn [`Dataset`]s.

use std::path::{Path, PathBuf};

use burn::data::dataset::{Dataset, DatasetError};
use peft_models::tokenizer::TextTokenizer;

use super::task::{GlueTask, Split};
use super::tsv::{TextClassificationItem, load_glue_tsv};
use crate::error::{Result, TrainError};

/// A GLUE split held in memory, as a burn [`Dataset`] of [`TextClassificationItem`].
#[derive(Debug, Clone)]
pub struct GlueDataset {
    task: GlueTask,
    path: PathBuf,
    items: Vec<TextClassificationItem>,
}

impl GlueDataset {
    /// Loads `dir/train.tsv` or `dir/dev.tsv` (MNLI: `dev_matched.tsv`) of `task`.
    ///
    /// # Errors
    /// As [`load_glue_tsv`].
    pub fn from_dir(dir: impl AsRef<Path>, task: GlueTask, split: Split) -> Result<Self> {
        Self::from_file(dir.as_ref().join(task.file_name(split)), task)
    }

    /// Loads one TSV file of `task`.
    ///
    /// # Errors
    /// As [`load_glue_tsv`].
    pub fn from_file(path: impl AsRef<Path>, task: GlueTask) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let items = load_glue_tsv(&path, task)?;
        Ok(Self { task, path, items })
    }

    /// The task.
    pub fn task(&self) -> GlueTask {
        self.task
    }

    /// The file it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The examples in file order.
    pub fn items(&self) -> &[TextClassificationItem] {
        &self.items
    }

    /// The examples, consuming the dataset.
    pub fn into_items(self) -> Vec<TextClassificationItem> {
        self.items
    }

    /// Number of examples per class.
    pub fn label_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.task.num_labels()];
        for item in &self.items {
            if let Some(c) = counts.get_mut(item.label) {
                *c += 1;
            }
        }
        counts
    }
}

/// Returned by the [`Dataset`] implementations for an index past the end (instead of the
/// panic the trait documents).
#[derive(Debug, thiserror::Error)]
#[error("index {index} out of bounds for a dataset of {len} items")]
pub struct IndexOutOfBounds {
    /// The index asked for.
    pub index: usize,
    /// The dataset length.
    pub len: usize,
}

fn get_cloned<T: Clone>(items: &[T], index: usize) -> std::result::Result<T, DatasetError> {
    items.get(index).cloned().ok_or_else(|| {
        DatasetError::new(IndexOutOfBounds {
            index,
            len: items.len(),
        })
    })
}

impl Dataset<TextClassificationItem> for GlueDataset {
    fn get(&self, index: usize) -> std::result::Result<TextClassificationItem, DatasetError> {
        get_cloned(&self.items, index)
    }

    fn len(&self) -> usize {
        self.items.len()
    }
}

/// An example after tokenization: ids with special tokens, truncated, not padded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedItem {
    /// Token ids.
    pub input_ids: Vec<u32>,
    /// Segment ids (0/1 for pairs).
    pub token_type_ids: Vec<u32>,
    /// Class index.
    pub label: usize,
}

/// Examples tokenized once, up front: tokenizer errors surface here as a `Result` instead of
/// inside the data loader, and the training threads only pad.
#[derive(Debug, Clone, Default)]
pub struct TokenizedDataset {
    items: Vec<EncodedItem>,
}

/// Number of texts handed to the (parallel) tokenizer at once.
const TOKENIZE_CHUNK: usize = 4096;

impl TokenizedDataset {
    /// Tokenizes `items` (in parallel chunks) with `tokenizer`'s truncation.
    ///
    /// # Errors
    /// [`TrainError::Model`] wrapping the tokenizer error.
    pub fn new(items: &[TextClassificationItem], tokenizer: &TextTokenizer) -> Result<Self> {
        let mut encoded = Vec::with_capacity(items.len());
        for chunk in items.chunks(TOKENIZE_CHUNK) {
            let inputs: Vec<(&str, Option<&str>)> = chunk
                .iter()
                .map(|it| (it.text_a.as_str(), it.text_b.as_deref()))
                .collect();
            let texts = tokenizer.encode_unpadded(&inputs)?;
            encoded.extend(chunk.iter().zip(texts).map(|(it, e)| EncodedItem {
                input_ids: e.input_ids,
                token_type_ids: e.token_type_ids,
                label: it.label,
            }));
        }
        Ok(Self { items: encoded })
    }

    /// Tokenizes a whole [`GlueDataset`].
    ///
    /// # Errors
    /// As [`TokenizedDataset::new`].
    pub fn from_glue(dataset: &GlueDataset, tokenizer: &TextTokenizer) -> Result<Self> {
        Self::new(dataset.items(), tokenizer)
    }

    /// Wraps already encoded items.
    pub fn from_items(items: Vec<EncodedItem>) -> Self {
        Self { items }
    }

    /// The encoded items.
    pub fn items(&self) -> &[EncodedItem] {
        &self.items
    }

    /// The items at `indices`, in that order (e.g. a fixed shuffle from
    /// [`load_permutation`](super::load_permutation) or
    /// [`shuffled_indices`](super::shuffled_indices), or a prefix of one). Repeats are allowed.
    ///
    /// # Errors
    /// [`TrainError::InvalidConfig`] when an index is out of range.
    pub fn select(&self, indices: &[usize]) -> Result<Self> {
        let items = indices
            .iter()
            .map(|&i| {
                self.items.get(i).cloned().ok_or_else(|| {
                    TrainError::InvalidConfig(format!(
                        "index {i} out of range for a dataset of {} items",
                        self.items.len()
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { items })
    }

    /// Length of the longest item (tokens).
    pub fn max_seq_len(&self) -> usize {
        self.items
            .iter()
            .map(|i| i.input_ids.len())
            .max()
            .unwrap_or(0)
    }
}

impl Dataset<EncodedItem> for TokenizedDataset {
    fn get(&self, index: usize) -> std::result::Result<EncodedItem, DatasetError> {
        get_cloned(&self.items, index)
    }

    fn len(&self) -> usize {
        self.items.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    use crate::data::load_permutation;
    use crate::data::test_util::write;

    #[test]
    fn rte_string_labels() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(
            dir.path(),
            "dev.tsv",
            "index\tsentence1\tsentence2\tlabel\n\
             0\tDana Reeve died.\tChristopher Reeve had an accident.\tnot_entailment\n\
             1\tYet, we now are discovering.\tWe are discovering.\tentailment\n",
        );
        let ds = GlueDataset::from_dir(dir.path(), GlueTask::Rte, Split::Validation).expect("load");
        assert_eq!(ds.len(), 2);
        assert_eq!(ds.get(0).expect("item").label, 1);
        assert_eq!(ds.get(1).expect("item").label, 0);
        assert_eq!(
            ds.get(1).expect("item").text_b.as_deref(),
            Some("We are discovering.")
        );
        assert_eq!(ds.label_counts(), vec![1, 1]);
        assert!(ds.get(2).is_err());

        let p = write(
            dir.path(),
            "bad.tsv",
            "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentails\n",
        );
        let err = load_glue_tsv(&p, GlueTask::Rte).expect_err("bad label");
        assert!(
            matches!(&err, TrainError::MalformedRow { line: 2, message, .. } if message.contains("entails")),
            "{err:?}"
        );
    }

    fn asset(rel: &str) -> PathBuf {
        let dir = std::env::var_os("PEFT_ASSETS_DIR").unwrap_or_else(|| {
            panic!(
                "PEFT_ASSETS_DIR is not set: point it at the shared assets directory (../shared)"
            )
        });
        let path = PathBuf::from(dir).join(rel);
        assert!(path.exists(), "asset {} does not exist", path.display());
        path
    }

    #[test]
    #[ignore = "needs ../shared assets: set PEFT_ASSETS_DIR"]
    fn real_sst2_counts() {
        let dir = asset("data/sst2");
        let train = GlueDataset::from_dir(&dir, GlueTask::Sst2, Split::Train).expect("train");
        assert_eq!(train.len(), 67_349);
        assert_eq!(train.label_counts(), vec![29_780, 37_569]);
        assert_eq!(
            train.items()[0].text_a,
            "hide new secretions from the parental units"
        );
        let dev = GlueDataset::from_dir(&dir, GlueTask::Sst2, Split::Validation).expect("dev");
        assert_eq!(dev.len(), 872);
        assert_eq!(dev.label_counts(), vec![428, 444]);
        assert!(dev.items().iter().all(|i| !i.text_a.ends_with(' ')));

        let perm =
            load_permutation(asset("bench/peer/results/sst2_train_perm_seed0.txt")).expect("perm");
        assert_eq!(perm.len(), 67_349);
        assert_eq!(&perm[..3], &[55_742, 22_404, 18_265]);

        // Pre-tokenize all of train with the MiniLM tokenizer, as the PyTorch reference does.
        let tok = TextTokenizer::from_file(asset("models/all-MiniLM-L6-v2/tokenizer.json"))
            .expect("tokenizer")
            .with_max_len(64)
            .expect("max len");
        let start = Instant::now();
        let encoded = TokenizedDataset::from_glue(&train, &tok).expect("tokenize");
        eprintln!(
            "tokenized {} SST-2 train items in {:?}",
            encoded.len(),
            start.elapsed()
        );
        assert_eq!(encoded.len(), 67_349);
        assert!(encoded.max_seq_len() <= 64);
        let first = &encoded.items()[0];
        assert_eq!(first.input_ids.first(), Some(&101));
        assert_eq!(first.input_ids.last(), Some(&102));
        let ordered = encoded.select(&perm).expect("select");
        assert_eq!(ordered.items()[0], encoded.items()[55_742]);
    }
}
