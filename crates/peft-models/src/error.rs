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
    /// Invalid input to a forward pass or generation (e.g. sequence longer than the position table).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// An adapter-level error from `peft-core`.
    #[error(transparent)]
    Peft(#[from] peft_core::PeftError),
}

/// Result alias for this crate.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;
