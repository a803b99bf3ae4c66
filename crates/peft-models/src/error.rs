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
    /// The network failed while downloading (connection refused or dropped, no answer within
    /// the read timeout), also after the retries that resume the transfer with HTTP Range
    /// requests. Nothing incomplete was accepted into a cache.
    #[error(
        "the network failed while downloading {url} (gave up after {attempts} attempt(s), \
         {received} bytes received; nothing incomplete was put in the cache): {source}"
    )]
    Network {
        /// The URL requested.
        url: String,
        /// Requests made, the first one included.
        attempts: u32,
        /// Bytes of the file received when giving up (a resumed download counts what it kept).
        received: u64,
        /// The last network error.
        #[source]
        source: ureq::Error,
    },
    /// A server answered an HTTP status that is neither success nor a known Hub error.
    #[error("{url} answered HTTP {status}")]
    HttpStatus {
        /// The URL requested.
        url: String,
        /// The status code.
        status: u16,
    },
    /// A download's size differs from the size its server announced (`Content-Length`,
    /// `Content-Range` or the Hub's `X-Linked-Size`); the file was not accepted.
    #[error(
        "{url}: the server announced {expected} bytes but the download has {received}; \
         the file was discarded, not put in the cache"
    )]
    SizeMismatch {
        /// The URL requested.
        url: String,
        /// The announced size in bytes.
        expected: u64,
        /// The bytes received (or the size the server reports in a later answer).
        received: u64,
    },
    /// A download's SHA-256 differs from the one the Hub announced (`X-Linked-Etag`); the file
    /// was not accepted.
    #[error(
        "{url}: SHA-256 {actual} does not match the announced {expected}; the file was \
         discarded, not put in the cache"
    )]
    ChecksumMismatch {
        /// The URL requested.
        url: String,
        /// The announced SHA-256 (hex).
        expected: String,
        /// The SHA-256 of what was received (hex).
        actual: String,
    },
    /// The Hub refused a repository: HTTP 401/403, or 404 `RepoNotFound`/`RevisionNotFound`.
    /// It answers 401 to anonymous clients for repositories that do not exist as well as for
    /// gated or private ones.
    #[error(
        "{url} answered HTTP {status}{}: the repo {repo} may not exist (check the id and the \
         revision), or it is gated or private and needs an access token: {}",
        error_code.as_ref().map(|c| format!(" ({c})")).unwrap_or_default(),
        if *token_sent {
            "the token sent (HF_TOKEN or the saved login) was refused or lacks access to it"
        } else {
            "set HF_TOKEN to a token that has access (none was sent)"
        }
    )]
    HubAccess {
        /// The repository id.
        repo: String,
        /// The URL requested.
        url: String,
        /// The status code.
        status: u16,
        /// The Hub's `X-Error-Code` header, e.g. `RepoNotFound` or `GatedRepo`.
        error_code: Option<String>,
        /// Whether an access token was sent.
        token_sent: bool,
    },
    /// A file of a Hub repository could not be downloaded because of the network; wraps a
    /// [`ModelError::Network`] with the way around it.
    #[error(
        "cannot download {file} of {repo}: {source}. If this machine is offline, download the \
         model files (config.json, model.safetensors or pytorch_model.bin, tokenizer.json) \
         elsewhere and pass their directory with `--model DIR` (or set HF_ENDPOINT to a \
         reachable mirror)"
    )]
    HubUnreachable {
        /// The repository id.
        repo: String,
        /// The file requested.
        file: String,
        /// The network error.
        #[source]
        source: Box<ModelError>,
    },
    /// A file in the Hugging Face cache is damaged (e.g. a truncated `model.safetensors` whose
    /// header does not match its length); deleting `path` makes the next run download it again.
    #[error(
        "cached file {link} is damaged ({reason}): delete {path} and run again to download it afresh"
    )]
    CorruptCacheFile {
        /// The file in the cache to delete (the blob the snapshot entry points to).
        path: PathBuf,
        /// The snapshot entry the model directory holds.
        link: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An environment variable has a value that cannot be used.
    #[error("environment variable {name}={value:?} is invalid: expected {expected}")]
    InvalidEnvVar {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// What it must hold.
        expected: &'static str,
    },
    /// An adapter-level error from `peft-core`.
    #[error(transparent)]
    Peft(#[from] peft_core::PeftError),
}

/// Result alias for this crate.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;
