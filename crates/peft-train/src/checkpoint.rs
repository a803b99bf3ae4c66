//! Training checkpoints that hold the adapters and head only, never the frozen base.
//!
//! A checkpoint is identified by the number of optimizer steps done, `<id>`, and consists of
//! `model-<id>.bpk` ([`AdapterCheckpointer`]), `optim-<id>.bpk`, `scheduler-<id>.bpk`
//! ([`AtomicFileCheckpointer`]) and `state-<id>.json` ([`CheckpointState`]: where in the run it
//! was taken and the settings of the run that took it). Runs write one every
//! `checkpoint_every` optimizer steps, at the end of every epoch and when interrupted, and
//! keep the last two.
//!
//! burn-train hands a checkpointer the record of the whole model. [`AdapterCheckpointer`] keeps
//! only the tensors a [`Trainable`] selection names (a few hundred KB instead of the 90 MB of
//! MiniLM) and writes them atomically; restoring gives burn-train a partial record, which it
//! applies over the freshly loaded base. Optimizer and scheduler state only exist for trainable
//! parameters, so burn's [`FileCheckpointer`](burn::train::checkpoint::FileCheckpointer) suits them.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use burn::store::ModuleRecord;
use burn::store::burn_pack::{Reader, Writer};
use burn::tensor::Bytes;
use burn::train::checkpoint::{
    Checkpoint, Checkpointer, CheckpointerError, CheckpointingAction, CheckpointingStrategy,
};
use burn::train::metric::store::EventStoreClient;
use peft_core::Trainable;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// Saves the trainable part of a model record as `<dir>/<name>-<id>.bpk`, atomically.
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

    /// The file of checkpoint `epoch` (the checkpoint id).
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

/// Saves any burn checkpoint record (optimizer, scheduler) as `<dir>/<name>-<id>.bpk`, written
/// atomically (burn's `FileCheckpointer` writes in place: a crash leaves a truncated file).
#[derive(Clone, Debug)]
pub struct AtomicFileCheckpointer {
    dir: PathBuf,
    name: String,
}

impl AtomicFileCheckpointer {
    /// Checkpoints named `name` in `dir`.
    pub fn new(dir: impl AsRef<Path>, name: &str) -> Self {
        Self {
            dir: dir.as_ref().to_path_buf(),
            name: name.to_string(),
        }
    }

    /// The file of checkpoint `id`.
    pub fn path(&self, id: usize) -> PathBuf {
        self.dir.join(format!("{}-{id}.bpk", self.name))
    }
}

impl<R: Checkpoint> Checkpointer<R> for AtomicFileCheckpointer {
    fn save(&self, id: usize, record: R) -> Result<(), CheckpointerError> {
        std::fs::create_dir_all(&self.dir).map_err(CheckpointerError::IOError)?;
        let bytes = record
            .checkpoint_into_bytes()
            .map_err(CheckpointerError::Record)?;
        peft_core::file::write_atomic(&self.path(id), &bytes)
            .map_err(|e| CheckpointerError::Unknown(e.to_string()))
    }

    fn delete(&self, id: usize) -> Result<(), CheckpointerError> {
        let path = self.path(id);
        if path.exists() {
            std::fs::remove_file(path).map_err(CheckpointerError::IOError)?;
        }
        Ok(())
    }

    fn restore(&self, id: usize) -> Result<R, CheckpointerError> {
        R::load(self.path(id))
    }
}

/// Where in a run a checkpoint was taken, and the settings of that run: `state-<id>.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointState {
    /// Optimizer steps done (the checkpoint id).
    pub step: usize,
    /// Epochs completed.
    pub epochs_done: usize,
    /// Batches of the following epoch already trained (0 at an epoch boundary).
    pub batches_done: usize,
    /// Whether the run ended there (its last epoch, or early stopping).
    pub finished: bool,
    /// Whether early stopping ended the run.
    #[serde(default)]
    pub early_stopped: bool,
    /// The settings a resumed run must share (method, adapter config, head, model, batch size,
    /// optimiser, seed, data order), as JSON.
    pub run: serde_json::Value,
}

/// The files of checkpoint `id` in `dir`: model, optimizer, scheduler, state.
pub fn checkpoint_files(dir: &Path, id: usize) -> [PathBuf; 4] {
    [
        dir.join(format!("model-{id}.bpk")),
        dir.join(format!("optim-{id}.bpk")),
        dir.join(format!("scheduler-{id}.bpk")),
        state_path(dir, id),
    ]
}

/// The state file of checkpoint `id`.
pub fn state_path(dir: &Path, id: usize) -> PathBuf {
    dir.join(format!("state-{id}.json"))
}

/// Write the state of checkpoint `state.step` into `dir`, atomically.
pub fn write_state(dir: &Path, state: &CheckpointState) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|source| TrainError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let path = state_path(dir, state.step);
    let bytes = serde_json::to_vec_pretty(state).map_err(|e| TrainError::Checkpoint {
        path: path.clone(),
        message: e.to_string(),
    })?;
    peft_core::file::write_atomic(&path, &bytes).map_err(TrainError::from)
}

/// Read the state file of checkpoint `id` in `dir`.
pub fn read_state(dir: &Path, id: usize) -> Result<CheckpointState> {
    let path = state_path(dir, id);
    let text = std::fs::read_to_string(&path).map_err(|source| TrainError::Io {
        path: path.clone(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| TrainError::Checkpoint {
        path,
        message: format!("unreadable checkpoint state: {e}"),
    })
}

/// The ids of the complete checkpoints (all four files present) in `dir`, ascending.
pub fn complete_checkpoints(dir: impl AsRef<Path>) -> Vec<usize> {
    let dir = dir.as_ref();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut ids: Vec<usize> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_prefix("state-")?
                .strip_suffix(".json")?
                .parse::<usize>()
                .ok()
        })
        .filter(|&id| checkpoint_files(dir, id).iter().all(|p| p.is_file()))
        .collect();
    ids.sort_unstable();
    ids
}

/// The state of the last complete checkpoint in `dir`, if any.
///
/// # Errors
/// [`TrainError::Checkpoint`] / [`TrainError::Io`] when its state file cannot be read.
pub fn last_checkpoint(dir: impl AsRef<Path>) -> Result<Option<CheckpointState>> {
    let dir = dir.as_ref();
    match complete_checkpoints(dir).last() {
        Some(&id) => read_state(dir, id).map(Some),
        None => Ok(None),
    }
}

/// The first difference between the settings `checkpoint` and `requested` (JSON), as
/// `(dotted field path, checkpoint value, requested value)`.
pub fn first_difference(
    checkpoint: &serde_json::Value,
    requested: &serde_json::Value,
) -> Option<(String, String, String)> {
    use serde_json::Value;
    fn walk(a: &Value, b: &Value, path: &str) -> Option<(String, String, String)> {
        let join = |k: &str| {
            if path.is_empty() {
                k.to_string()
            } else {
                format!("{path}.{k}")
            }
        };
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
                keys.sort();
                keys.dedup();
                keys.into_iter().find_map(|k| {
                    walk(
                        x.get(k).unwrap_or(&Value::Null),
                        y.get(k).unwrap_or(&Value::Null),
                        &join(k),
                    )
                })
            }
            (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
                .iter()
                .zip(y)
                .enumerate()
                .find_map(|(i, (p, q))| walk(p, q, &join(&i.to_string()))),
            _ if a == b => None,
            _ => Some((
                if path.is_empty() {
                    "settings".into()
                } else {
                    path.into()
                },
                a.to_string(),
                b.to_string(),
            )),
        }
    }
    walk(checkpoint, requested, "")
}

/// burn-train checkpointing strategy of the runs: save every checkpoint asked for, keep the
/// last two (a crash while writing one leaves the previous complete).
pub struct KeepLastTwo {
    dir: PathBuf,
    kept: VecDeque<usize>,
}

impl KeepLastTwo {
    /// Checkpoints in `dir`, which already holds those with ids `existing` (ascending).
    pub fn new(dir: impl AsRef<Path>, existing: &[usize]) -> Self {
        Self {
            dir: dir.as_ref().to_path_buf(),
            kept: existing.iter().copied().collect(),
        }
    }
}

impl CheckpointingStrategy for KeepLastTwo {
    fn checkpointing(&mut self, id: usize, _: &EventStoreClient) -> Vec<CheckpointingAction> {
        let mut actions = vec![CheckpointingAction::Save];
        if self.kept.back() != Some(&id) {
            self.kept.push_back(id);
        }
        while self.kept.len() > 2 {
            if let Some(old) = self.kept.pop_front() {
                let _ = std::fs::remove_file(state_path(&self.dir, old));
                actions.push(CheckpointingAction::Delete(old));
            }
        }
        actions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_difference_names_the_nested_field() {
        let a = serde_json::json!({"optim": {"lr": 0.001, "epsilon": 1e-8}, "seed": 1});
        let b = serde_json::json!({"optim": {"lr": 0.002, "epsilon": 1e-8}, "seed": 1});
        assert_eq!(
            first_difference(&a, &b),
            Some(("optim.lr".into(), "0.001".into(), "0.002".into()))
        );
        assert_eq!(first_difference(&a, &a), None);
    }
}
