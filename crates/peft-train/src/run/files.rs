//! The files a run writes into its output directory: JSON files, the saved adapter, and
//! removing an earlier run's artefacts.

use std::path::{Path, PathBuf};

use burn::module::Module;
use peft_core::{AdapterFile, save_adapter};
use serde::Serialize;

use crate::error::{Result, TrainError};

/// The files and folders a run writes into its output directory; `overwrite` removes these
/// (and nothing else) before starting over.
pub const RUN_ARTEFACTS: [&str; 10] = [
    "checkpoints",
    "experiment.log",
    "adapter",
    "adapter-interrupted",
    "model",
    "model-interrupted",
    "metrics.json",
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
