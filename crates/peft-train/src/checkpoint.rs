//! Training checkpoints that hold the adapters and head only, never the frozen base.
//!
//! burn-train hands a checkpointer the record of the whole model. [`AdapterCheckpointer`] keeps
//! only the tensors a [`Trainable`] selection names (a few hundred KB instead of the 90 MB of
//! MiniLM) and writes them atomically; restoring gives burn-train a partial record, which it
//! applies over the freshly loaded base. Optimizer and scheduler state only exist for trainable
//! parameters, so burn's [`FileCheckpointer`](burn::train::checkpoint::FileCheckpointer) suits them.

use std::path::{Path, PathBuf};

use burn::store::ModuleRecord;
use burn::store::burn_pack::{Reader, Writer};
use burn::tensor::Bytes;
use burn::train::checkpoint::{Checkpointer, CheckpointerError};
use peft_core::Trainable;

/// Saves the trainable part of a model record per epoch as `<dir>/<name>-<epoch>.bpk`.
#[derive(Clone, Debug)]
pub struct AdapterCheckpointer {
    dir: PathBuf,
    name: String,
    keep: Trainable,
}

impl AdapterCheckpointer {
    /// Checkpoints in `dir`, keeping the tensors `keep` selects.
    pub fn new(dir: impl AsRef<Path>, name: &str, keep: Trainable) -> Self {
        Self {
            dir: dir.as_ref().to_path_buf(),
            name: name.to_string(),
            keep,
        }
    }

    /// The file of epoch `epoch`.
    pub fn path(&self, epoch: usize) -> PathBuf {
        self.dir.join(format!("{}-{epoch}.bpk", self.name))
    }

    fn err(message: impl std::fmt::Display) -> CheckpointerError {
        CheckpointerError::Unknown(message.to_string())
    }

    /// The trainable part of `record` as burnpack bytes.
    pub fn filter(&self, record: ModuleRecord) -> Result<Bytes, CheckpointerError> {
        let bytes = record.into_bytes().map_err(CheckpointerError::Record)?;
        let tensors = Reader::from_bytes(bytes)
            .and_then(Reader::into_tensors)
            .map_err(Self::err)?;
        let mut kept = Vec::new();
        for t in tensors {
            if self.keep.matches(&t.name).map_err(Self::err)? {
                kept.push(t);
            }
        }
        if kept.is_empty() {
            return Err(Self::err("no trainable tensor in the model record"));
        }
        Writer::new(kept).into_bytes().map_err(Self::err)
    }
}

impl Checkpointer<ModuleRecord> for AdapterCheckpointer {
    fn save(&self, epoch: usize, record: ModuleRecord) -> Result<(), CheckpointerError> {
        std::fs::create_dir_all(&self.dir).map_err(CheckpointerError::IOError)?;
        let bytes = self.filter(record)?;
        peft_core::file::write_atomic(&self.path(epoch), &bytes).map_err(Self::err)
    }

    fn delete(&self, epoch: usize) -> Result<(), CheckpointerError> {
        let path = self.path(epoch);
        if path.exists() {
            std::fs::remove_file(path).map_err(CheckpointerError::IOError)?;
        }
        Ok(())
    }

    fn restore(&self, epoch: usize) -> Result<ModuleRecord, CheckpointerError> {
        let record = ModuleRecord::load(self.path(epoch)).map_err(CheckpointerError::Record)?;
        Ok(record.allow_partial(true))
    }
}

/// The last epoch with a complete checkpoint (model, optimizer and scheduler files) in `dir`.
pub fn last_complete_epoch(dir: impl AsRef<Path>) -> Option<usize> {
    let dir = dir.as_ref();
    let entries = std::fs::read_dir(dir).ok()?;
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_prefix("model-")?
                .strip_suffix(".bpk")?
                .parse::<usize>()
                .ok()
        })
        .filter(|epoch| {
            ["optim", "scheduler"]
                .iter()
                .all(|n| dir.join(format!("{n}-{epoch}.bpk")).is_file())
        })
        .max()
}
