//! The error type of `peft-core`.

use std::path::PathBuf;

/// Everything that can go wrong while configuring, attaching, saving or loading adapters.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PeftError {
    /// An adapter configuration is invalid (e.g. a zero bottleneck).
    #[error("invalid adapter configuration: {0}")]
    InvalidConfig(String),
    /// An activation name is not one of the supported ones.
    #[error(
        "unknown activation `{0}` (expected one of: relu, gelu, gelu_new, silu/swish, tanh, leaky_relu)"
    )]
    UnknownActivation(String),
    /// Attaching adapters matched no site of the model.
    #[error("no adapter site matched: {0}")]
    NothingMatched(String),
    /// A file could not be read or written.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A JSON file is malformed or has unknown/mistyped fields.
    #[error("malformed JSON in {path}: {message}")]
    MalformedJson {
        /// The file.
        path: PathBuf,
        /// What serde reported (with line and column).
        message: String,
    },
    /// A safetensors file could not be written or read.
    #[error("adapter weights {path}: {message}")]
    Weights {
        /// The weights file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// An adapter file does not fit the model it is loaded onto.
    #[error("adapter in {path} does not fit this model: {message}")]
    Incompatible {
        /// The adapter directory or file.
        path: PathBuf,
        /// What differs.
        message: String,
    },
    /// An adapter file has a format version this library cannot read.
    #[error(
        "adapter file {path} has format version {found}; this library reads version {supported}"
    )]
    UnsupportedVersion {
        /// The adapter config file.
        path: PathBuf,
        /// The version found.
        found: u32,
        /// The version supported.
        supported: u32,
    },
    /// An adapter or fusion name is not usable as a module path segment.
    #[error("invalid adapter name `{0}`: use letters, digits, `_` and `-` only")]
    InvalidName(String),
    /// An adapter setup (composition) is invalid.
    #[error("invalid adapter setup: {0}")]
    InvalidSetup(String),
    /// A named adapter (or fusion, or head) does not exist on the model.
    #[error("no {kind} named `{name}` on this model (it has: {available})")]
    NotFound {
        /// `adapter`, `fusion` or `head`.
        kind: &'static str,
        /// The name asked for.
        name: String,
        /// The names the model has, comma-separated.
        available: String,
    },
    /// A named adapter (or fusion, or head) exists already.
    #[error("the model already has a {kind} named `{name}`; delete it first")]
    AlreadyExists {
        /// `adapter`, `fusion` or `head`.
        kind: &'static str,
        /// The name.
        name: String,
    },
    /// A configuration option is recognised but not supported.
    #[error("unsupported option `{field}`: {message}")]
    Unsupported {
        /// The option, as spelt in the file or config.
        field: String,
        /// Why, and what to do instead.
        message: String,
    },
    /// An AdapterHub file uses an option this crate cannot reproduce (e.g. `phm_layer: true`).
    #[error("{path}: `{field}` is not supported: {message}")]
    HubUnsupported {
        /// The file.
        path: PathBuf,
        /// The option, as spelt in the file (`config.use_gating`).
        field: String,
        /// Why, and what to do instead.
        message: String,
    },
    /// A directory lacks a file it needs.
    #[error("{dir} has no {expected}")]
    HubMissingFile {
        /// The directory.
        dir: PathBuf,
        /// The file name(s) looked for.
        expected: String,
    },
    /// Tensors of a weights file that land nowhere in the model (another adapter's, an
    /// unsupported module's, or at a site or layer the model has no adapter at).
    #[error("{path}: {} tensor(s) land nowhere in this model: {}", keys.len(), keys.join(", "))]
    HubUnplaced {
        /// The weights file.
        path: PathBuf,
        /// The file keys.
        keys: Vec<String>,
    },
    /// Model tensors that a weights file should provide but lacks.
    #[error("{path} lacks {} tensor(s) the model needs: {}", paths.len(), paths.join(", "))]
    HubMissingTensors {
        /// The weights file.
        path: PathBuf,
        /// Our module paths.
        paths: Vec<String>,
    },
    /// A directory given to our adapter loader holds another library's `adapter_config.json`
    /// (AdapterHub's or PEFT's), not a burn-peft description.
    #[error("{dir}/adapter_config.json is not a burn-peft adapter description: {message}")]
    ForeignAdapterDir {
        /// The directory.
        dir: PathBuf,
        /// What to do.
        message: String,
    },
}

/// Result alias for this crate.
pub type Result<T, E = PeftError> = std::result::Result<T, E>;
