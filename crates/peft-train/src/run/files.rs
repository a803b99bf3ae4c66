//! The files a run writes into its output directory: JSON files, the saved adapter, and
//! removing an earlier run's artefacts.

use std::path::{Path, PathBuf};

use burn::module::Module;
use peft_core::{AdapterFile, save_adapter};
use serde::Serialize;

use crate::error::{Result, TrainError};

/// The files and folders a run writes into its output directory; `overwrite` removes these
/// (and nothing else) before starting over.
pub const RUN_ARTEFACTS: [&str; 12] = [
    "checkpoints",
    "experiment.log",
    "adapter",
    "adapter-interrupted",
    "model",
    "model-interrupted",
    "metrics.json",
    "metrics.csv",
    "curve.svg",
    "training_config.json",
    "train",
    "valid",
];

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let bytes =
        serde_json::to_vec_pretty(value).map_err(|e| TrainError::InvalidConfig(e.to_string()))?;
    peft_core::file::write_atomic(path, &bytes).map_err(TrainError::from)
}

/// Remove the artefacts of an earlier run ([`RUN_ARTEFACTS`]) from `out`.
pub fn clear_run(out: &Path) -> Result<()> {
    for name in RUN_ARTEFACTS {
        let path = out.join(name);
        let result = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else if path.exists() {
            std::fs::remove_file(&path)
        } else {
            Ok(())
        };
        result.map_err(io_err(&path))?;
    }
    Ok(())
}

/// What an output directory holds, as far as a new run there is concerned ([`run_state`]).
#[derive(Clone, Debug, PartialEq)]
pub enum RunState {
    /// Nothing a run writes ([`RUN_ARTEFACTS`]): a run can start there.
    Empty,
    /// Some of a run's files, but no complete checkpoint to continue from.
    NoCheckpoint,
    /// A run with a complete checkpoint.
    Checkpointed {
        /// Epochs completed.
        epochs_done: usize,
        /// Optimizer steps done.
        step: usize,
        /// Whether early stopping ended the run (it cannot be continued).
        early_stopped: bool,
    },
}

impl RunState {
    /// Whether a run of `epochs` epochs in this directory continues its checkpoint (rather
    /// than finding it finished).
    pub fn resumable(&self, epochs: usize) -> bool {
        matches!(self, Self::Checkpointed { epochs_done, early_stopped: false, .. }
            if *epochs_done < epochs)
    }
}

/// What `out` holds: its last complete checkpoint (`out/checkpoints`), else whether any of
/// [`RUN_ARTEFACTS`] exists. Reads only the checkpoint's state file.
///
/// # Errors
/// A checkpoint state file that cannot be read or parsed.
pub fn run_state(out: &Path) -> Result<RunState> {
    if let Some(state) = crate::checkpoint::last_checkpoint(out.join("checkpoints"))? {
        return Ok(RunState::Checkpointed {
            epochs_done: state.epochs_done,
            step: state.step,
            early_stopped: state.early_stopped,
        });
    }
    if RUN_ARTEFACTS.iter().any(|name| out.join(name).exists()) {
        return Ok(RunState::NoCheckpoint);
    }
    Ok(RunState::Empty)
}

/// Save the trainable tensors of `model` described by `file` into `out/adapter` (or
/// `out/adapter-interrupted`); returns the directory and the size of its weights file.
pub(crate) fn save_adapter_artefact<M: Module>(
    model: &M,
    out: &Path,
    interrupted: bool,
    file: &AdapterFile,
) -> Result<(PathBuf, u64)> {
    let adapter_dir = out.join(if interrupted {
        "adapter-interrupted"
    } else {
        "adapter"
    });
    save_adapter(model, &adapter_dir, file)?;
    let weights = adapter_dir.join(peft_core::file::WEIGHTS_FILE);
    let bytes = std::fs::metadata(&weights).map_err(io_err(&weights))?.len();
    Ok((adapter_dir, bytes))
}
