//! The error type of `peft-train`.

use std::path::PathBuf;

/// Everything that can go wrong while preparing data or training.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// A file could not be read or written.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A data file holds no examples.
    #[error("data file {path} has no examples")]
    EmptyData {
        /// The file.
        path: PathBuf,
    },
    /// A row of a data file is malformed.
    #[error("{path}:{line}: {message}")]
    MalformedRow {
        /// The file.
        path: PathBuf,
        /// 1-based line number in the file.
        line: usize,
        /// What is wrong with the row.
        message: String,
    },
    /// A label lies outside `0..num_labels`.
    #[error("{path}:{line}: label {label} is out of range for {num_labels} classes")]
    LabelOutOfRange {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The label found.
        label: i64,
        /// The number of classes of the task.
        num_labels: usize,
    },
    /// A dataset could not be downloaded.
    #[error("cannot download {url}: {message}")]
    Download {
        /// The URL tried.
        url: String,
        /// What went wrong and how to work around it.
        message: String,
    },
    /// A dataset archive could not be downloaded: the network failed (after retries), the
    /// server answered an error status, or the data did not match the announced size.
    #[error(
        "cannot download {url}: {source}. If this machine is offline, fetch the archive \
         elsewhere and pass `--data DIR` with a directory holding the task's train and dev TSV \
         files (or point {env_var} at a reachable copy)"
    )]
    DatasetDownload {
        /// The URL tried.
        url: String,
        /// The environment variable that overrides the URL.
        env_var: &'static str,
        /// What went wrong.
        #[source]
        source: Box<peft_models::ModelError>,
    },
    /// A downloaded dataset archive is not a valid zip or cannot be unpacked.
    #[error("cannot unpack the archive downloaded from {url}: {source}")]
    DatasetArchive {
        /// The URL it came from.
        url: String,
        /// What the zip reader reported.
        #[source]
        source: zip::result::ZipError,
    },
    /// The loss became NaN or infinite.
    #[error("non-finite loss ({loss}) at step {step}; last good checkpoint: {checkpoint}")]
    NonFiniteLoss {
        /// Optimizer step at which it happened.
        step: usize,
        /// The value.
        loss: f64,
        /// Where the last good checkpoint is (or "none").
        checkpoint: String,
    },
    /// A training or checkpoint configuration is invalid.
    #[error("invalid training configuration: {0}")]
    InvalidConfig(String),
    /// A checkpoint could not be written or read back.
    #[error("checkpoint {path}: {message}")]
    Checkpoint {
        /// The checkpoint file or directory.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A learning-rate schedule could not be restored from a checkpoint (resuming would restart
    /// the warm-up).
    #[error("cannot restore the learning-rate schedule: {message}")]
    SchedulerState {
        /// What is wrong with the stored state.
        message: String,
    },
    /// A checkpoint was written by a run with other settings than the one resuming it.
    #[error(
        "the checkpoint in {path} was made with {field} = {checkpoint}, this run asks for {requested}: \
         resume with the same settings, or start over (overwrite; `--overwrite` in the examples)"
    )]
    ResumeMismatch {
        /// The checkpoint directory.
        path: PathBuf,
        /// The setting that differs, as a dotted path (`method.config.bottleneck.width`, `optim.lr`).
        field: String,
        /// Its value in the checkpoint (JSON).
        checkpoint: String,
        /// Its value in this run (JSON).
        requested: String,
    },
    /// The output directory holds a run that already finished.
    #[error(
        "{out} holds a finished run ({epochs} epoch(s){early}); its result is in {out}/adapter (or \
         model/). To train further, ask for more epochs (the run resumes); to start over, use \
         overwrite (`--overwrite` in the examples)",
        out = out.display(),
        early = if *early_stopped { ", stopped early" } else { "" }
    )]
    RunFinished {
        /// The output directory.
        out: PathBuf,
        /// Epochs the finished run completed.
        epochs: usize,
        /// Whether early stopping ended it.
        early_stopped: bool,
    },
    /// A directory given as an adapter holds something else (a full model).
    #[error("{path} is not an adapter: {message}")]
    NotAnAdapter {
        /// The directory.
        path: PathBuf,
        /// What it holds instead, and how to load it.
        message: String,
    },
    /// burn-train's Learner reported an error (data loading, checkpointing, metrics).
    #[error("training failed: {0}")]
    Learner(String),
    /// A model-level error.
    #[error(transparent)]
    Model(#[from] peft_models::ModelError),
    /// An adapter-level error.
    #[error(transparent)]
    Peft(#[from] peft_core::PeftError),
}

/// Result alias for this crate.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;
