//! GLUE text-classification data: strict TSV loading, pre-tokenized datasets, batching padded
//! to the longest item, seeded orders and a one-time download into a cache.
//!
//! The pipeline is
//! [`GlueDataset`] (text) → [`TokenizedDataset`] (ids, tokenized once, fallibly) →
//! [`ClassificationBatcher`] (padding only, cannot fail) → [`ClassificationBatch`] tensors.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::{Dataset, DatasetError};
use burn::tensor::{Device, Int, Tensor, TensorData};
use peft_models::InputLimits;
use peft_models::tokenizer::{EncodedBatch, TextTokenizer};

use crate::error::{Result, TrainError};

/// How a task's labels are written in its TSV files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LabelFormat {
    /// Integers `0..num_labels`.
    Integer,
    /// One of the label names (e.g. `entailment`), mapped to its index.
    Named,
}

/// Where a task's columns are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Columns {
    /// The first line is a header; columns are found by name.
    Header {
        text_a: &'static str,
        text_b: Option<&'static str>,
        label: &'static str,
    },
    /// No header line; fixed positions (CoLA).
    Positional {
        count: usize,
        text_a: usize,
        label: usize,
    },
}

/// A GLUE classification task (STS-B, a regression task, is not included).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GlueTask {
    /// SST-2, binary sentiment: `sentence\tlabel`.
    Sst2,
    /// CoLA, grammatical acceptability: no header, `source\tlabel\torig_label\tsentence`.
    Cola,
    /// MRPC, paraphrase pairs: `Quality\t#1 ID\t#2 ID\t#1 String\t#2 String`.
    Mrpc,
    /// RTE, entailment pairs: `index\tsentence1\tsentence2\tlabel` with string labels.
    Rte,
    /// QNLI, question/sentence entailment: `index\tquestion\tsentence\tlabel`, string labels.
    Qnli,
    /// QQP, duplicate questions: `id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate`.
    Qqp,
    /// MNLI, three-way entailment (`sentence1`, `sentence2`, `gold_label`); validation is
    /// `dev_matched.tsv`.
    Mnli,
    /// WNLI: `index\tsentence1\tsentence2\tlabel`.
    Wnli,
}

impl GlueTask {
    /// All supported tasks.
    pub const ALL: [GlueTask; 8] = [
        GlueTask::Sst2,
        GlueTask::Cola,
        GlueTask::Mrpc,
        GlueTask::Rte,
        GlueTask::Qnli,
        GlueTask::Qqp,
        GlueTask::Mnli,
        GlueTask::Wnli,
    ];

    /// Short lower-case name (`sst2`), as accepted by [`FromStr`].
    pub fn name(self) -> &'static str {
        match self {
            GlueTask::Sst2 => "sst2",
            GlueTask::Cola => "cola",
            GlueTask::Mrpc => "mrpc",
            GlueTask::Rte => "rte",
            GlueTask::Qnli => "qnli",
            GlueTask::Qqp => "qqp",
            GlueTask::Mnli => "mnli",
            GlueTask::Wnli => "wnli",
        }
    }

    /// The folder name in the GLUE distribution (`SST-2`).
    pub fn dir_name(self) -> &'static str {
        match self {
            GlueTask::Sst2 => "SST-2",
            GlueTask::Cola => "CoLA",
            GlueTask::Mrpc => "MRPC",
            GlueTask::Rte => "RTE",
            GlueTask::Qnli => "QNLI",
            GlueTask::Qqp => "QQP",
            GlueTask::Mnli => "MNLI",
            GlueTask::Wnli => "WNLI",
        }
    }

    /// Label names, index = class id.
    pub fn label_names(self) -> &'static [&'static str] {
        match self {
            GlueTask::Sst2 => &["negative", "positive"],
            GlueTask::Cola => &["unacceptable", "acceptable"],
            GlueTask::Mrpc => &["not_equivalent", "equivalent"],
            GlueTask::Rte | GlueTask::Qnli => &["entailment", "not_entailment"],
            GlueTask::Qqp => &["not_duplicate", "duplicate"],
            GlueTask::Mnli => &["entailment", "neutral", "contradiction"],
            GlueTask::Wnli => &["not_entailment", "entailment"],
        }
    }

    /// Number of classes.
    pub fn num_labels(self) -> usize {
        self.label_names().len()
    }

    /// Whether items are sentence pairs.
    pub fn is_pair(self) -> bool {
        match self.columns() {
            Columns::Header { text_b, .. } => text_b.is_some(),
            Columns::Positional { .. } => false,
        }
    }

    /// The file of a split inside the task's folder.
    pub fn file_name(self, split: Split) -> &'static str {
        match (self, split) {
            (_, Split::Train) => "train.tsv",
            (GlueTask::Mnli, Split::Validation) => "dev_matched.tsv",
            (_, Split::Validation) => "dev.tsv",
        }
    }

    /// The environment variable overriding the download URL, e.g. `BURN_PEFT_GLUE_SST2_URL`.
    pub fn url_env_var(self) -> &'static str {
        match self {
            GlueTask::Sst2 => "BURN_PEFT_GLUE_SST2_URL",
            GlueTask::Cola => "BURN_PEFT_GLUE_COLA_URL",
            GlueTask::Mrpc => "BURN_PEFT_GLUE_MRPC_URL",
            GlueTask::Rte => "BURN_PEFT_GLUE_RTE_URL",
            GlueTask::Qnli => "BURN_PEFT_GLUE_QNLI_URL",
            GlueTask::Qqp => "BURN_PEFT_GLUE_QQP_URL",
            GlueTask::Mnli => "BURN_PEFT_GLUE_MNLI_URL",
            GlueTask::Wnli => "BURN_PEFT_GLUE_WNLI_URL",
        }
    }

    /// The zip GLUE's own download script uses, when there is one (MRPC has none: it is
    /// assembled from Microsoft's files).
    pub fn default_url(self) -> Option<&'static str> {
        match self {
            GlueTask::Sst2 => Some("https://dl.fbaipublicfiles.com/glue/data/SST-2.zip"),
            GlueTask::Cola => Some("https://dl.fbaipublicfiles.com/glue/data/CoLA.zip"),
            GlueTask::Mrpc => None,
            GlueTask::Rte => Some("https://dl.fbaipublicfiles.com/glue/data/RTE.zip"),
            GlueTask::Qnli => Some("https://dl.fbaipublicfiles.com/glue/data/QNLIv2.zip"),
            GlueTask::Qqp => Some("https://dl.fbaipublicfiles.com/glue/data/QQP-clean.zip"),
            GlueTask::Mnli => Some("https://dl.fbaipublicfiles.com/glue/data/MNLI.zip"),
            GlueTask::Wnli => Some("https://dl.fbaipublicfiles.com/glue/data/WNLI.zip"),
        }
    }

    fn label_format(self) -> LabelFormat {
        match self {
            GlueTask::Rte | GlueTask::Qnli | GlueTask::Mnli => LabelFormat::Named,
            _ => LabelFormat::Integer,
        }
    }

    fn columns(self) -> Columns {
        match self {
            GlueTask::Sst2 => Columns::Header {
                text_a: "sentence",
                text_b: None,
                label: "label",
            },
            GlueTask::Cola => Columns::Positional {
                count: 4,
                text_a: 3,
                label: 1,
            },
            GlueTask::Mrpc => Columns::Header {
                text_a: "#1 String",
                text_b: Some("#2 String"),
                label: "Quality",
            },
            GlueTask::Rte | GlueTask::Wnli => Columns::Header {
                text_a: "sentence1",
                text_b: Some("sentence2"),
                label: "label",
            },
            GlueTask::Qnli => Columns::Header {
                text_a: "question",
                text_b: Some("sentence"),
                label: "label",
            },
            GlueTask::Qqp => Columns::Header {
                text_a: "question1",
                text_b: Some("question2"),
                label: "is_duplicate",
            },
            GlueTask::Mnli => Columns::Header {
                text_a: "sentence1",
                text_b: Some("sentence2"),
                label: "gold_label",
            },
        }
    }
}

impl fmt::Display for GlueTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for GlueTask {
    type Err = TrainError;

    /// Case-insensitive, with or without `-`/`_`: `sst2`, `SST-2`, `mnli`, ...
    fn from_str(s: &str) -> Result<Self> {
        let key: String = s
            .chars()
            .filter(|c| !matches!(c, '-' | '_'))
            .flat_map(char::to_lowercase)
            .collect();
        GlueTask::ALL
            .into_iter()
            .find(|t| t.name() == key)
            .ok_or_else(|| {
                let names: Vec<&str> = GlueTask::ALL.iter().map(|t| t.name()).collect();
                TrainError::InvalidConfig(format!(
                    "unknown GLUE task {s:?}; expected one of {}",
                    names.join(", ")
                ))
            })
    }
}

/// Which part of a GLUE task (the test sets have no labels and are not supported).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    /// `train.tsv`.
    Train,
    /// `dev.tsv` (`dev_matched.tsv` for MNLI).
    Validation,
}

/// One labelled example: a text or a text pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextClassificationItem {
    /// The (first) text, trailing whitespace removed.
    pub text_a: String,
    /// The second text of a pair task.
    pub text_b: Option<String>,
    /// Class index in `0..num_labels`.
    pub label: usize,
}

/// Reads a GLUE TSV file strictly.
///
/// Lines are split on tabs without any quoting (`"` is an ordinary character); a trailing `\r`
/// is ignored, as is a UTF-8 byte-order mark before the header. Trailing whitespace of every
/// text is removed (SST-2 sentences end in a space before the tab; the PyTorch reference strips
/// it too). Every row must have exactly as many columns as the header.
///
/// # Errors
/// - [`TrainError::Io`]: the file cannot be read.
/// - [`TrainError::EmptyData`]: no data row (an empty or header-only file).
/// - [`TrainError::MalformedRow`] (1-based line number): wrong column count, a missing header
///   column, invalid UTF-8, an empty line, an unparseable or unknown label.
/// - [`TrainError::LabelOutOfRange`]: an integer label outside `0..num_labels`.
pub fn load_glue_tsv(
    path: impl AsRef<Path>,
    task: GlueTask,
) -> Result<Vec<TextClassificationItem>> {
    let path = path.as_ref();
    let bytes = fs::read(path).map_err(|source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_glue_tsv(&bytes, path, task)
}

fn malformed(path: &Path, line: usize, message: String) -> TrainError {
    TrainError::MalformedRow {
        path: path.to_path_buf(),
        line,
        message,
    }
}

/// The lines of a file as `(1-based line number, text)`, without the final empty piece after a
/// trailing newline and without `\r`.
pub(crate) fn lines_of<'a>(
    bytes: &'a [u8],
    path: &'a Path,
) -> impl Iterator<Item = Result<(usize, &'a str)>> + 'a {
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let empty = bytes.is_empty();
    bytes
        .split(|&b| b == b'\n')
        .take(if empty { 0 } else { usize::MAX })
        .enumerate()
        .map(move |(i, raw)| {
            let line = i + 1;
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            std::str::from_utf8(raw)
                .map(|s| (line, s))
                .map_err(|e| malformed(path, line, format!("not valid UTF-8: {e}")))
        })
}

/// Parses the bytes of a GLUE TSV file as [`load_glue_tsv`] does; `path` only names the file in
/// errors.
///
/// # Errors
/// As [`load_glue_tsv`], without [`TrainError::Io`].
pub fn parse_glue_tsv(
    bytes: &[u8],
    path: &Path,
    task: GlueTask,
) -> Result<Vec<TextClassificationItem>> {
    let mut lines = lines_of(bytes, path).peekable();
    let (count, a_idx, b_idx, label_idx) = match task.columns() {
        Columns::Positional {
            count,
            text_a,
            label,
        } => (count, text_a, None, label),
        Columns::Header {
            text_a,
            text_b,
            label,
        } => {
            let Some(header) = lines.next() else {
                return Err(TrainError::EmptyData {
                    path: path.to_path_buf(),
                });
            };
            let (line, header) = header?;
            let header = header.strip_prefix('\u{feff}').unwrap_or(header);
            let names: Vec<&str> = header.split('\t').collect();
            let find = |name: &str| {
                names.iter().position(|&n| n == name).ok_or_else(|| {
                    malformed(
                        path,
                        line,
                        format!(
                            "header lacks column {name:?} needed for {task} (found: {})",
                            names.join(", ")
                        ),
                    )
                })
            };
            let a = find(text_a)?;
            let b = text_b.map(find).transpose()?;
            let l = find(label)?;
            (names.len(), a, b, l)
        }
    };
    let names = task.label_names();
    let mut items = Vec::new();
    for entry in lines {
        let (line, text) = entry?;
        if text.is_empty() {
            return Err(malformed(path, line, "empty line".to_string()));
        }
        let fields: Vec<&str> = text.split('\t').collect();
        if fields.len() != count {
            return Err(malformed(
                path,
                line,
                format!(
                    "expected {count} tab-separated columns for {task}, found {}",
                    fields.len()
                ),
            ));
        }
        let raw_label = fields[label_idx].trim();
        let label = match task.label_format() {
            LabelFormat::Integer => {
                let value: i64 = raw_label.parse().map_err(|_| {
                    malformed(path, line, format!("label {raw_label:?} is not an integer"))
                })?;
                match usize::try_from(value) {
                    Ok(v) if v < names.len() => v,
                    _ => {
                        return Err(TrainError::LabelOutOfRange {
                            path: path.to_path_buf(),
                            line,
                            label: value,
                            num_labels: names.len(),
                        });
                    }
                }
            }
            LabelFormat::Named => names.iter().position(|&n| n == raw_label).ok_or_else(|| {
                malformed(
                    path,
                    line,
                    format!(
                        "unknown label {raw_label:?} for {task}; expected one of {}",
                        names.join(", ")
                    ),
                )
            })?,
        };
        items.push(TextClassificationItem {
            text_a: fields[a_idx].trim_end().to_string(),
            text_b: b_idx.map(|i| fields[i].trim_end().to_string()),
            label,
        });
    }
    if items.is_empty() {
        return Err(TrainError::EmptyData {
            path: path.to_path_buf(),
        });
    }
    Ok(items)
}

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

    /// The items at `indices`, in that order (e.g. a fixed shuffle from [`load_permutation`] or
    /// [`shuffled_indices`], or a prefix of one). Repeats are allowed.
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

/// A batch for sequence classification, padded to its longest item.
#[derive(Debug, Clone)]
pub struct ClassificationBatch {
    /// Token ids `[batch, seq]`.
    pub input_ids: Tensor<2, Int>,
    /// Segment ids `[batch, seq]`.
    pub token_type_ids: Tensor<2, Int>,
    /// 1 for tokens, 0 for padding, `[batch, seq]`.
    pub attention_mask: Tensor<2, Int>,
    /// Class indices `[batch]`.
    pub labels: Tensor<1, Int>,
}

/// Pads [`EncodedItem`]s (from a [`TokenizedDataset`]) into a [`ClassificationBatch`] with the
/// tokenizer's pad id; the attention mask is 0 on padding. Never fails: tokenization happened
/// before.
#[derive(Debug, Clone)]
pub struct ClassificationBatcher {
    tokenizer: Arc<TextTokenizer>,
}

impl ClassificationBatcher {
    /// A batcher padding with `tokenizer`'s pad id and pad type id.
    pub fn new(tokenizer: Arc<TextTokenizer>) -> Self {
        Self { tokenizer }
    }

    /// The tokenizer whose padding settings are used.
    pub fn tokenizer(&self) -> &Arc<TextTokenizer> {
        &self.tokenizer
    }

    /// Error unless this batcher's tokenizer and every item fit a model with `limits`
    /// (length, token and segment ids, pad ids), before any batch reaches the model.
    ///
    /// # Errors
    /// [`TrainError::Model`] with the [`peft_models::ModelError`] naming the value and the limit
    /// (for an item: its index, as [`peft_models::ModelError::InvalidRow`]).
    pub fn check_fits(&self, limits: &InputLimits, items: &[EncodedItem]) -> Result<()> {
        limits.check_tokenizer(&self.tokenizer)?;
        limits.check_rows(
            items
                .iter()
                .map(|i| (i.input_ids.as_slice(), i.token_type_ids.as_slice())),
        )?;
        Ok(())
    }

    /// The padded ids of `items` without building tensors.
    pub fn pad(&self, items: &[EncodedItem]) -> EncodedBatch {
        self.tokenizer.pad_batch(
            items
                .iter()
                .map(|i| (i.input_ids.as_slice(), i.token_type_ids.as_slice())),
        )
    }
}

impl Batcher<EncodedItem, ClassificationBatch> for ClassificationBatcher {
    fn batch(&self, items: Vec<EncodedItem>, device: &Device) -> ClassificationBatch {
        let labels: Vec<i64> = items
            .iter()
            .map(|i| i64::try_from(i.label).unwrap_or(i64::MAX))
            .collect();
        let n = labels.len();
        let (input_ids, token_type_ids, attention_mask) = self.pad(&items).into_tensors(device);
        ClassificationBatch {
            input_ids,
            token_type_ids,
            attention_mask,
            labels: Tensor::from_data(TensorData::new(labels, [n]), device),
        }
    }
}

/// SplitMix64, a small deterministic PRNG (Steele, Lea & Flood 2014).
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound` (`bound > 0`), without modulo bias (Lemire's method).
    fn below(&mut self, bound: u64) -> u64 {
        let threshold = bound.wrapping_neg() % bound;
        loop {
            let m = u128::from(self.next_u64()) * u128::from(bound);
            if (m as u64) >= threshold {
                return (m >> 64) as u64;
            }
        }
    }
}

/// A permutation of `0..n` that depends only on `n` and `seed` (SplitMix64 + Fisher–Yates),
/// the same on every platform and release. It does not reproduce PyTorch's `randperm`: for the
/// PyTorch reference order use [`load_permutation`].
pub fn shuffled_indices(n: usize, seed: u64) -> Vec<usize> {
    let mut rng = SplitMix64(seed);
    let mut indices: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        // i + 1 <= n fits in u64 and the result is <= i, so both casts are lossless.
        let j = rng.below(i as u64 + 1) as usize;
        indices.swap(i, j);
    }
    indices
}

/// Reads a permutation written one 0-based index per line (e.g.
/// `sst2_train_perm_seed0.txt`, PyTorch's `randperm(67349)` with seed 0). Surrounding
/// whitespace is ignored; a final newline is optional.
///
/// # Errors
/// [`TrainError::Io`] when unreadable, [`TrainError::EmptyData`] when it holds no index,
/// [`TrainError::MalformedRow`] for a line that is not an index, an index `>= n` or a repeated
/// index (`n` = number of lines).
pub fn load_permutation(path: impl AsRef<Path>) -> Result<Vec<usize>> {
    let path = path.as_ref();
    let bytes = fs::read(path).map_err(|source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut values = Vec::new();
    for entry in lines_of(&bytes, path) {
        let (line, text) = entry?;
        let text = text.trim();
        let value: usize = text.parse().map_err(|_| {
            malformed(
                path,
                line,
                format!("{text:?} is not a non-negative integer index"),
            )
        })?;
        values.push((line, value));
    }
    if values.is_empty() {
        return Err(TrainError::EmptyData {
            path: path.to_path_buf(),
        });
    }
    let n = values.len();
    let mut seen = vec![false; n];
    for &(line, v) in &values {
        match seen.get_mut(v) {
            None => {
                return Err(malformed(
                    path,
                    line,
                    format!("index {v} out of range for a permutation of {n} items"),
                ));
            }
            Some(true) => return Err(malformed(path, line, format!("index {v} repeated"))),
            Some(s) => *s = true,
        }
    }
    Ok(values.into_iter().map(|(_, v)| v).collect())
}

pub use crate::download::{default_glue_cache_dir, download_glue, glue_url};

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;
    use tokenizers::Tokenizer;
    use tokenizers::models::wordlevel::WordLevel;
    use tokenizers::pre_tokenizers::whitespace::Whitespace;
    use tokenizers::processors::template::TemplateProcessing;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, text).expect("write");
        path
    }

    #[test]
    fn sst2_good_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = write(
            dir.path(),
            "train.tsv",
            "sentence\tlabel\nhide new secretions from the parental units \t0\nit 's \"great\" \t1\n",
        );
        let items = load_glue_tsv(&p, GlueTask::Sst2).expect("load");
        assert_eq!(
            items,
            vec![
                TextClassificationItem {
                    text_a: "hide new secretions from the parental units".into(),
                    text_b: None,
                    label: 0
                },
                TextClassificationItem {
                    text_a: "it 's \"great\"".into(),
                    text_b: None,
                    label: 1
                },
            ]
        );
        // No trailing newline, CRLF: same result.
        let p = write(dir.path(), "crlf.tsv", "sentence\tlabel\r\na b \t1\r\nc\t0");
        let items = load_glue_tsv(&p, GlueTask::Sst2).expect("load");
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].text_a, "a b");
        assert_eq!(items[1].label, 0);
    }

    #[test]
    fn header_only_and_empty_files_are_empty_data() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, text) in [("h.tsv", "sentence\tlabel\n"), ("e.tsv", "")] {
            let p = write(dir.path(), name, text);
            assert!(
                matches!(
                    load_glue_tsv(&p, GlueTask::Sst2),
                    Err(TrainError::EmptyData { .. })
                ),
                "{name}"
            );
        }
    }

    #[test]
    fn missing_file_is_io() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = load_glue_tsv(dir.path().join("nope.tsv"), GlueTask::Sst2).expect_err("missing");
        assert!(matches!(err, TrainError::Io { .. }), "{err:?}");
        let err = GlueDataset::from_dir(dir.path(), GlueTask::Sst2, Split::Validation)
            .expect_err("missing");
        assert!(err.to_string().contains("dev.tsv"), "{err}");
    }

    #[test]
    fn malformed_rows_report_their_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cases = [
            ("sentence\tlabel\nok\t1\ntoo\tmany\t1\n", 3, "columns"),
            ("sentence\tlabel\nok\t1\nno tab\n", 3, "columns"),
            (
                "sentence\tlabel\nok\t1\nok\t0\nbad\tx\n",
                4,
                "not an integer",
            ),
            ("sentence\tlabel\nok\t1\n\nok\t0\n", 3, "empty line"),
            ("text\tlabel\nok\t1\n", 1, "sentence"),
        ];
        for (i, (text, want_line, want_msg)) in cases.into_iter().enumerate() {
            let p = write(dir.path(), &format!("m{i}.tsv"), text);
            match load_glue_tsv(&p, GlueTask::Sst2) {
                Err(e @ TrainError::MalformedRow { line, .. }) => {
                    assert_eq!(line, want_line, "case {i}: {e}");
                    let msg = e.to_string();
                    assert!(msg.contains(want_msg), "case {i}: {msg}");
                    assert!(msg.contains(&format!(":{want_line}:")), "case {i}: {msg}");
                }
                other => panic!("case {i}: expected MalformedRow, got {other:?}"),
            }
        }
        let p = dir.path().join("utf8.tsv");
        fs::write(&p, b"sentence\tlabel\nok\t1\n\xff\xfe\t0\n").expect("write");
        assert!(matches!(
            load_glue_tsv(&p, GlueTask::Sst2),
            Err(TrainError::MalformedRow { line: 3, .. })
        ));
    }

    #[test]
    fn label_out_of_range() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (text, bad) in [
            ("sentence\tlabel\nok\t1\nok\t2\n", 2_i64),
            ("sentence\tlabel\nok\t1\nok\t-1\n", -1),
        ] {
            let p = write(dir.path(), "r.tsv", text);
            match load_glue_tsv(&p, GlueTask::Sst2) {
                Err(TrainError::LabelOutOfRange {
                    line,
                    label,
                    num_labels,
                    ..
                }) => assert_eq!((line, label, num_labels), (3, bad, 2)),
                other => panic!("expected LabelOutOfRange, got {other:?}"),
            }
        }
    }

    #[test]
    fn mrpc_pairs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = write(
            dir.path(),
            "train.tsv",
            "\u{feff}Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n\
             1\t702876\t702977\tAmrozi accused his brother , whom he called \" the witness \" .\tReferring to him as only \" the witness \" , Amrozi accused his brother .\n\
             0\t2108705\t2108831\tYucaipa owned Dominick 's .\tYucaipa bought Dominick 's in 1995 .\n",
        );
        let items = load_glue_tsv(&p, GlueTask::Mrpc).expect("load");
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].label, 1);
        assert_eq!(
            items[0].text_a,
            "Amrozi accused his brother , whom he called \" the witness \" ."
        );
        assert_eq!(
            items[0].text_b.as_deref(),
            Some("Referring to him as only \" the witness \" , Amrozi accused his brother .")
        );
        assert_eq!(items[1].label, 0);
        assert!(GlueTask::Mrpc.is_pair());
    }

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

    #[test]
    fn cola_has_no_header() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = write(
            dir.path(),
            "train.tsv",
            "gj04\t1\t\tOur friends won't buy this analysis.\ngj04\t0\t*\tThey drank the pub.\n",
        );
        let items = load_glue_tsv(&p, GlueTask::Cola).expect("load");
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].text_a, "Our friends won't buy this analysis.");
        assert_eq!((items[0].label, items[1].label), (1, 0));
    }

    #[test]
    fn task_names_parse() {
        for task in GlueTask::ALL {
            assert_eq!(task.name().parse::<GlueTask>().expect("name"), task);
            assert_eq!(task.dir_name().parse::<GlueTask>().expect("dir"), task);
        }
        assert!("stsb".parse::<GlueTask>().is_err());
        assert_eq!(GlueTask::Sst2.num_labels(), 2);
        assert_eq!(GlueTask::Mnli.num_labels(), 3);
        assert_eq!(
            GlueTask::Mnli.file_name(Split::Validation),
            "dev_matched.tsv"
        );
    }

    #[test]
    fn shuffled_indices_deterministic_permutation() {
        let a = shuffled_indices(1000, 42);
        assert_eq!(a, shuffled_indices(1000, 42));
        assert_ne!(a, shuffled_indices(1000, 43));
        assert_ne!(a, (0..1000).collect::<Vec<_>>());
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..1000).collect::<Vec<_>>());
        assert!(shuffled_indices(0, 1).is_empty());
        assert_eq!(shuffled_indices(1, 1), vec![0]);
        // Pinned: the order must not change between releases (values computed independently
        // from the SplitMix64 + Lemire + Fisher-Yates definition).
        assert_eq!(shuffled_indices(10, 0), vec![4, 9, 2, 5, 1, 7, 6, 0, 3, 8]);
        assert_eq!(shuffled_indices(10, 42), vec![8, 3, 6, 5, 4, 0, 9, 2, 1, 7]);
    }

    #[test]
    fn permutation_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = write(dir.path(), "perm.txt", "2\n0\n1\n");
        assert_eq!(load_permutation(&p).expect("perm"), vec![2, 0, 1]);
        let p = write(dir.path(), "perm2.txt", "2\n0\n1");
        assert_eq!(load_permutation(&p).expect("perm"), vec![2, 0, 1]);
        for (text, line) in [("0\n0\n", 2), ("0\n5\n", 2), ("0\nx\n", 2), ("1\n\n0\n", 2)] {
            let p = write(dir.path(), "bad.txt", text);
            assert!(
                matches!(load_permutation(&p), Err(TrainError::MalformedRow { line: l, .. }) if l == line),
                "{text:?}"
            );
        }
        let p = write(dir.path(), "empty.txt", "");
        assert!(matches!(
            load_permutation(&p),
            Err(TrainError::EmptyData { .. })
        ));
    }

    fn tiny_tokenizer() -> TextTokenizer {
        let vocab = [
            ("[PAD]", 0),
            ("[UNK]", 1),
            ("[CLS]", 2),
            ("[SEP]", 3),
            ("good", 4),
            ("bad", 5),
            ("movie", 6),
            ("very", 7),
        ];
        let model = WordLevel::builder()
            .vocab(vocab.iter().map(|&(t, i)| (t.to_string(), i)).collect())
            .unk_token("[UNK]".to_string())
            .build()
            .expect("model");
        let post = TemplateProcessing::builder()
            .try_single("[CLS] $A [SEP]")
            .expect("single")
            .try_pair("[CLS] $A:0 [SEP]:0 $B:1 [SEP]:1")
            .expect("pair")
            .special_tokens(vec![("[CLS]", 2), ("[SEP]", 3)])
            .build()
            .expect("template");
        let mut tok = Tokenizer::new(model);
        tok.with_pre_tokenizer(Some(Whitespace));
        tok.with_post_processor(Some(post));
        TextTokenizer::from_tokenizer(tok).expect("tokenizer")
    }

    fn ints<const D: usize>(t: Tensor<D, Int>) -> Vec<i64> {
        t.into_data().try_into_vec_as().expect("values")
    }

    #[test]
    fn batcher_pads_to_longest() {
        let tok = Arc::new(tiny_tokenizer().with_pad_token(0, "[PAD]").expect("pad"));
        let items = vec![
            TextClassificationItem {
                text_a: "good movie".into(),
                text_b: None,
                label: 1,
            },
            TextClassificationItem {
                text_a: "very very bad movie".into(),
                text_b: None,
                label: 0,
            },
            TextClassificationItem {
                text_a: "good".into(),
                text_b: Some("bad".into()),
                label: 1,
            },
        ];
        let ds = TokenizedDataset::new(&items, &tok).expect("tokenize");
        assert_eq!(ds.len(), 3);
        assert_eq!(ds.max_seq_len(), 6);
        assert_eq!(
            ds.items()[2],
            EncodedItem {
                input_ids: vec![2, 4, 3, 5, 3],
                token_type_ids: vec![0, 0, 0, 1, 1],
                label: 1
            }
        );
        let batcher = ClassificationBatcher::new(tok);
        let device = Device::flex();
        let all: Vec<EncodedItem> = (0..3).map(|i| ds.get(i).expect("item")).collect();
        let b = batcher.batch(all, &device);
        assert_eq!(b.input_ids.dims(), [3, 6]);
        assert_eq!(
            ints(b.input_ids),
            vec![2, 4, 6, 3, 0, 0, 2, 7, 7, 5, 6, 3, 2, 4, 3, 5, 3, 0]
        );
        assert_eq!(
            ints(b.token_type_ids),
            vec![0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0]
        );
        assert_eq!(
            ints(b.attention_mask),
            vec![1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0]
        );
        assert_eq!(ints(b.labels), vec![1, 0, 1]);

        // A batch of short items only is padded to its own longest item.
        let short = ds.select(&[2, 0]).expect("select");
        let b = batcher.batch(short.items().to_vec(), &device);
        assert_eq!(b.input_ids.dims(), [2, 5]);
        assert_eq!(ints(b.input_ids), vec![2, 4, 3, 5, 3, 2, 4, 6, 3, 0]);
        assert!(ds.select(&[3]).is_err());
    }

    /// `$PEFT_ASSETS_DIR/<rel>`; panics (so the test fails) when unset or missing.
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
