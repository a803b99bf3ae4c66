//! [`launch`]: a task's `SupervisedTraining` completed with what every run shares (learning
//! rate metric, interrupter, adapter-only checkpointers, renderer, the [`StepStrategy`] loop),
//! launched, its failures turned into [`TrainError`]s.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::{Arc, Mutex};

use burn::tensor::Device;
use burn::train::metric::LearningRateMetric;
use burn::train::{Interrupter, Learner, LearnerModel, SupervisedTraining, TrainingStrategy};
use peft_core::Trainable;

use super::options::StepHook;
use super::start::StartPoint;
use super::strategy::{LoopOutcome, StepStrategy};
use crate::checkpoint::{
    AdapterCheckpointer, AtomicFileCheckpointer, KeepLastTwo, checkpoint_files,
    complete_checkpoints,
};
use crate::error::{Result, TrainError};
use crate::render::{EpochSummary, ProgressRenderer};
use crate::task::StepGuard;

/// What [`launch`] needs besides the training builder and the learner.
pub(crate) struct LaunchSettings<'a> {
    /// Number of epochs.
    pub epochs: usize,
    /// Gradient accumulation steps per optimiser step.
    pub grad_accumulation: usize,
    /// Progress line every this many batches (0: epoch summaries only).
    pub log_every: usize,
    /// Checkpoint every this many optimizer steps (0: epoch ends and interruptions only).
    pub checkpoint_every: usize,
    /// Where the run starts.
    pub start: &'a StartPoint,
    /// The settings recorded with each checkpoint.
    pub signature: &'a serde_json::Value,
    /// Checkpoint directory.
    pub ckpt_dir: &'a Path,
    /// The tensors the model checkpoints keep.
    pub trainable: &'a Trainable,
    /// Stops training (Ctrl-C, non-finite loss).
    pub interrupter: &'a Interrupter,
    /// The guard the task steps with, checked for a non-finite loss afterwards.
    pub guard: &'a StepGuard,
    /// Called after every optimizer step.
    pub on_step: Option<StepHook>,
    /// The (autodiff) training device.
    pub device: &'a Device,
    /// Print nothing.
    pub quiet: bool,
}

/// What [`launch`] returns.
pub(crate) struct Launched<M> {
    /// The trained task.
    pub task: M,
    /// Whether the run was interrupted.
    pub interrupted: bool,
    /// Whether early stopping ended it.
    pub early_stopped: bool,
    /// Optimizer steps done (whole run).
    pub steps: usize,
    /// The epoch summaries of the epochs trained to their end in this process.
    pub epochs: Vec<EpochSummary>,
    /// Passes over the validation set the loop made (the last epoch is not scored there).
    pub valid_passes: usize,
}

/// The part of a run every task shares: add the learning-rate metric, the epoch count, the
/// interrupter, adapter-only checkpointers, the headless renderer (or the TUI) and the
/// [`StepStrategy`] loop (gradient accumulation, step checkpoints, resume position) to
/// `training` (which already has the task's metrics and early stopping), launch it, and turn a
/// non-finite loss or a Learner error into a [`TrainError`].
pub(crate) fn launch<M: LearnerModel>(
    training: SupervisedTraining<M>,
    learner: Learner<M>,
    settings: &LaunchSettings<'_>,
) -> Result<Launched<M>> {
    let s = settings;
    let renderer = ProgressRenderer::new(s.log_every).resuming_after(s.start.epochs_done());
    let renderer = if s.quiet { renderer.quiet() } else { renderer };
    let summaries = renderer.summaries();
    let use_tui = cfg!(feature = "tui") && std::io::stdout().is_terminal() && !s.quiet;
    let outcome = Arc::new(Mutex::new(LoopOutcome::default()));
    let strategy = StepStrategy {
        device: s.device.clone(),
        ckpt_dir: s.ckpt_dir.to_path_buf(),
        signature: s.signature.clone(),
        start_step: s.start.step(),
        start_epochs_done: s.start.epochs_done(),
        start_batches_done: s.start.batches_done(),
        checkpoint_every: s.checkpoint_every,
        accumulation: s.grad_accumulation,
        guard: s.guard.clone(),
        on_step: s.on_step.clone(),
        outcome: outcome.clone(),
    };

    let mut training = training
        .metric_train_numeric(LearningRateMetric::new())
        .num_epochs(s.epochs)
        .with_interrupter(s.interrupter.clone())
        .with_custom_checkpointers(
            AdapterCheckpointer::new(s.ckpt_dir, "model", s.trainable.clone()),
            AtomicFileCheckpointer::new(s.ckpt_dir, "optim"),
            AtomicFileCheckpointer::new(s.ckpt_dir, "scheduler"),
        )
        .with_checkpointing_strategy(KeepLastTwo::new(s.ckpt_dir, &s.start.existing))
        .with_training_strategy(TrainingStrategy::Custom(Arc::new(strategy)));
    if !use_tui {
        training = training.renderer(Box::new(renderer));
    }
    let result = training.launch(learner);
    let outcome = outcome.lock().map(|o| o.clone()).unwrap_or_default();

    if let Some((step, loss)) = s.guard.report().non_finite {
        let checkpoint = complete_checkpoints(s.ckpt_dir)
            .last()
            .map(|&id| checkpoint_files(s.ckpt_dir, id)[0].display().to_string())
            .unwrap_or_else(|| "none".into());
        return Err(TrainError::NonFiniteLoss {
            step: s.start.step() + step,
            loss,
            checkpoint,
        });
    }
    if let Some(message) = outcome.error {
        return Err(TrainError::Checkpoint {
            path: s.ckpt_dir.to_path_buf(),
            message,
        });
    }
    if let Some(error) = result.error {
        return Err(TrainError::Learner(error.to_string()));
    }
    Ok(Launched {
        task: result.model,
        interrupted: result.interrupted.is_some(),
        early_stopped: outcome.early_stopped,
        steps: outcome.steps,
        epochs: summaries
            .lock()
            .map(|s| {
                s.iter()
                    .filter(|e| outcome.completed_epochs.contains(&e.epoch))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default(),
        valid_passes: outcome.valid_passes,
    })
}
