//! The error type of `peft-models`.

use std::path::PathBuf;

/// Everything that can go wrong while building, loading or tokenizing for a model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// A file could not be read or written.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A `config.json` (or other JSON file) is not valid JSON or has wrongly typed fields.
    #[error("malformed JSON in {path}: {message}")]
    MalformedJson {
        /// The file.
        path: PathBuf,
        /// What serde reported (with line and column).
        message: String,
    },
    /// A configuration is well-formed but inconsistent (e.g. hidden size not divisible by heads).
    #[error("invalid model configuration: {0}")]
    InvalidConfig(String),
    /// A checkpoint file is corrupt, truncated or in an unknown format.
    #[error("cannot read checkpoint {path}: {message}")]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What the reader reported.
        message: String,
    },
    /// No checkpoint file was found in a model directory.
    #[error("no checkpoint in {dir}: looked for model.safetensors and pytorch_model.bin")]
    NoCheckpoint {
        /// The directory searched.
        dir: PathBuf,
    },
    /// Base-model weights are absent from the checkpoint.
    #[error("checkpoint {path} lacks {} base weight(s): {}", keys.len(), keys.join(", "))]
    MissingWeights {
        /// The checkpoint file.
        path: PathBuf,
        /// The model paths that received no value.
        keys: Vec<String>,
    },
    /// Tensors of a file that must land entirely in the model (adapter weights) have no place in
    /// it, e.g. adapters for a site or layer where the model has none (another adapter config).
    #[error(
        "{path}: {} tensor(s) match nothing in the model (attach adapters with the file's config first): {}",
        keys.len(), keys.join(", ")
    )]
    UnmatchedWeights {
        /// The weights file.
        path: PathBuf,
        /// The file's keys (after renaming to module paths) that landed nowhere.
        keys: Vec<String>,
    },
    /// A tensor in the checkpoint has a shape (or dtype) that does not fit the model.
    #[error("checkpoint {path}: {}", problems.join("; "))]
    IncompatibleWeights {
        /// The checkpoint file.
        path: PathBuf,
        /// One line per offending tensor, naming it with expected and found shapes.
        problems: Vec<String>,
    },
    /// A tokenizer could not be loaded or failed to encode.
    #[error("tokenizer error ({context}): {message}")]
    Tokenizer {
        /// The file or operation.
        context: String,
        /// What the tokenizers crate reported.
        message: String,
    },
    /// A model could not be downloaded from the Hugging Face Hub.
    #[error("cannot download {repo} from the Hugging Face Hub: {message}")]
    Download {
        /// The repository id.
        repo: String,
        /// What went wrong and how to work around it.
        message: String,
    },
    /// Invalid input to a forward pass or generation (empty batch, mismatched shapes).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A sequence is longer than the model's usable positions.
    #[error("sequence of {len} tokens exceeds the model's limit of {max}: truncate it (max_len)")]
    SequenceTooLong {
        /// Tokens in the sequence.
        len: usize,
        /// The model's limit ([`crate::InputLimits::max_len`]).
        max: usize,
    },
    /// A token id is not in the model's vocabulary (usually: a tokenizer of another model).
    #[error(
        "token id {id} is outside the model's vocabulary 0..{vocab_size}: is the tokenizer the model's?"
    )]
    TokenIdOutOfRange {
        /// The offending id.
        id: i64,
        /// The model's `vocab_size`.
        vocab_size: usize,
    },
    /// A segment (token type) id is not below the model's `type_vocab_size`.
    #[error(
        "segment (token type) id {id} is outside 0..{type_vocab_size}: this model has {type_vocab_size} segment type(s)"
    )]
    TokenTypeOutOfRange {
        /// The offending id.
        id: i64,
        /// The model's `type_vocab_size`.
        type_vocab_size: usize,
    },
    /// A requested truncation length is longer than the model can embed.
    #[error("max_len {requested} exceeds the model's limit of {max} tokens")]
    MaxLenTooLarge {
        /// The requested length.
        requested: usize,
        /// The model's limit ([`crate::InputLimits::max_len`]).
        max: usize,
    },
    /// A tokenizer does not belong to the model (its ids would not fit the embeddings).
    #[error(
        "the tokenizer does not fit the model: its {what} is {value}, the model's {limit_name} is {limit} (is it the model's tokenizer?)"
    )]
    TokenizerMismatch {
        /// What is out of range (`vocabulary size`, `pad id (<pad>)`, ...).
        what: String,
        /// The tokenizer's value.
        value: usize,
        /// Which model bound it exceeds (`vocab_size`, `type_vocab_size`).
        limit_name: &'static str,
        /// The model's bound.
        limit: usize,
    },
    /// One row of a batch or data set is invalid.
    #[error("row {row}: {source}")]
    InvalidRow {
        /// Index of the row.
        row: usize,
        /// What is wrong with it.
        #[source]
        source: Box<ModelError>,
    },
    /// An adapter-level error from `peft-core`.
    #[error(transparent)]
    Peft(#[from] peft_core::PeftError),
}

/// Result alias for this crate.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;
