//! Where a run starts: the fingerprint of its data, the checks before resuming (same
//! settings, run not finished), and restoring a checkpoint's model, optimizer and schedule.

use std::path::Path;

use burn::module::Module;
use burn::optim::lr_scheduler::LrSchedulerRecord;
use burn::optim::{ModuleOptimizer, OptimizerRecord};
use burn::store::ModuleRecord;
use burn::train::checkpoint::{Checkpoint, Checkpointer};
use peft_core::Trainable;

use super::files::clear_run;
use crate::checkpoint::{
    AdapterCheckpointer, CheckpointState, checkpoint_files, complete_checkpoints, first_difference,
    last_checkpoint,
};
use crate::error::{Result, TrainError};
use crate::optim::WarmupLinear;

/// A 64-bit FNV-1a hash, for fingerprints of the training data order.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fingerprint(u64);

impl Default for Fingerprint {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Fingerprint {
    pub(crate) fn add(&mut self, values: impl IntoIterator<Item = u64>) {
        for v in values {
            for b in v.to_le_bytes() {
                self.0 ^= u64::from(b);
                self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
            }
        }
    }

    pub(crate) fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}

/// Where a run starts: fresh, or after the checkpoint it resumes.
pub(crate) struct StartPoint {
    /// The checkpoint resumed, if any.
    pub resumed: Option<CheckpointState>,
    /// Ids of the complete checkpoints already in the directory.
    pub existing: Vec<usize>,
}

impl StartPoint {
    pub(crate) fn step(&self) -> usize {
        self.resumed.as_ref().map_or(0, |s| s.step)
    }
    pub(crate) fn epochs_done(&self) -> usize {
        self.resumed.as_ref().map_or(0, |s| s.epochs_done)
    }
    pub(crate) fn batches_done(&self) -> usize {
        self.resumed.as_ref().map_or(0, |s| s.batches_done)
    }
}

/// Decide where a run in `out` starts. `fresh` (overwrite, or `resume: false`) removes an
/// earlier run's artefacts; otherwise the last complete checkpoint is resumed, after checking
/// that it was made with the same `signature` and that its run has not finished.
pub(crate) fn start_point(
    out: &Path,
    ckpt_dir: &Path,
    fresh: bool,
    epochs: usize,
    signature: &serde_json::Value,
) -> Result<StartPoint> {
    if fresh {
        clear_run(out)?;
        return Ok(StartPoint {
            resumed: None,
            existing: Vec::new(),
        });
    }
    let existing = complete_checkpoints(ckpt_dir);
    let Some(state) = last_checkpoint(ckpt_dir)? else {
        return Ok(StartPoint {
            resumed: None,
            existing,
        });
    };
    // Compare what was read back with what would be read back: serde_json's float parsing
    // need not round-trip exactly (1e-30 reads as 9.999999999999999e-31).
    let requested: serde_json::Value =
        serde_json::from_str(&signature.to_string()).unwrap_or_else(|_| signature.clone());
    if let Some((field, checkpoint, requested)) = first_difference(&state.run, &requested) {
        return Err(TrainError::ResumeMismatch {
            path: ckpt_dir.to_path_buf(),
            field,
            checkpoint,
            requested,
        });
    }
    if state.early_stopped || state.epochs_done >= epochs {
        return Err(TrainError::RunFinished {
            out: out.to_path_buf(),
            epochs: state.epochs_done,
            early_stopped: state.early_stopped,
        });
    }
    Ok(StartPoint {
        resumed: Some(state),
        existing,
    })
}

/// Restore the model, optimizer and schedule of checkpoint `state.step` from `ckpt_dir` into
/// `task`, `optim` and `scheduler`. Every part is read and checked before training continues:
/// a checkpoint that cannot be decoded is a typed error, never a silent restart.
pub(crate) fn restore<M: Module>(
    task: M,
    optim: ModuleOptimizer,
    scheduler: &mut WarmupLinear,
    ckpt_dir: &Path,
    trainable: &Trainable,
    state: &CheckpointState,
) -> Result<(M, ModuleOptimizer)> {
    let id = state.step;
    let [model_path, optim_path, sched_path, _] = checkpoint_files(ckpt_dir, id);
    let ckpt_err = |path: &Path, e: &dyn std::fmt::Display| TrainError::Checkpoint {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let record = <LrSchedulerRecord as Checkpoint>::load(sched_path.clone())
        .map_err(|e| ckpt_err(&sched_path, &e))?;
    // burn's `ModuleLrScheduler` stores its single group under `0`.
    let record = record.record("0");
    let step = WarmupLinear::record_step(&record).map_err(|_| TrainError::SchedulerState {
        message: format!(
            "{} holds no step count of a warm-up/linear schedule",
            sched_path.display()
        ),
    })?;
    if step != id {
        return Err(TrainError::SchedulerState {
            message: format!(
                "{} is at step {step}, the checkpoint at step {id}",
                sched_path.display()
            ),
        });
    }
    scheduler.try_load_record(&record)?;
    let optim_record = <OptimizerRecord as Checkpoint>::load(optim_path.clone())
        .map_err(|e| ckpt_err(&optim_path, &e))?;
    let model_record: ModuleRecord = AdapterCheckpointer::new(ckpt_dir, "model", trainable.clone())
        .restore(id)
        .map_err(|e| ckpt_err(&model_path, &e))?;
    let task = task
        .try_load_record(model_record)
        .map_err(|e| ckpt_err(&model_path, &e))?;
    Ok((task, optim.load_record(optim_record)))
}
