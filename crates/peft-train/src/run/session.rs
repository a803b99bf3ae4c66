//! [`train_task`], the one run loop every task goes through, and what a task hands it.
//!
//! In order, a run: decides where it starts (fresh, or resuming the last complete checkpoint
//! made with the same signature, [`start_point`]); seeds the device and prepares the model (the
//! task's own step: attach adapters, freeze); builds the epoch loaders (resumed mid-epoch), the
//! [`StepGuard`], the optimizer and the schedule (restored from the checkpoint); and launches the
//! Learner with checkpoints, interruption, early stopping and progress ([`launch`]). What differs
//! between tasks (the signature, the model preparation, the metrics and the artefacts written
//! afterwards) is passed in, or left to the caller.

use std::path::Path;
use std::sync::Arc;

use burn::data::dataloader::batcher::Batcher;
use burn::module::Module;
use burn::tensor::Device;
use burn::train::{InferenceStep, Learner, LearnerModel, SupervisedTraining, TrainStep};
use peft_core::Trainable;

use super::launch::{LaunchSettings, launch};
use super::options::RunOptions;
use super::start::{restore, start_point};
use crate::checkpoint::CheckpointState;
use crate::error::{Result, TrainError};
use crate::loader::{EpochLoader, EpochOrder};
use crate::optim::OptimConfig;
use crate::render::EpochSummary;
use crate::task::StepGuard;

/// A model wrapped as a burn-train task whose optimizer step goes through a [`StepGuard`]
/// ([`crate::task::ClassificationTask`], [`crate::lm::LmTask`]).
pub(crate) trait RunTask: LearnerModel + Sized {
    /// The model trained.
    type Model: Module;

    /// Wrap `model`, stepping through `guard`.
    fn wrap(model: Self::Model, guard: StepGuard) -> Self;

    /// The (trained) model.
    fn into_model(self) -> Self::Model;
}

/// The device `model` lives on, which must be an autodiff device.
pub(crate) fn training_device<M: Module>(model: &M) -> Result<Device> {
    let device = model
        .devices()
        .first()
        .cloned()
        .ok_or_else(|| TrainError::InvalidConfig("model has no parameters".into()))?;
    if !device.is_autodiff() {
        return Err(TrainError::InvalidConfig(
            "training needs the model on an autodiff device (`device.autodiff()`)".into(),
        ));
    }
    Ok(device)
}

/// The settings every task's configuration has (borrowed from it).
pub(crate) struct LoopConfig<'a> {
    /// Optimiser and schedule.
    pub optim: &'a OptimConfig,
    /// Number of epochs.
    pub epochs: usize,
    /// Training batch size.
    pub batch_size: usize,
    /// Evaluation batch size.
    pub eval_batch_size: usize,
    /// Gradient accumulation steps per optimiser step.
    pub grad_accumulation: usize,
    /// Seed of the device before preparing the model, and of the dropout masks.
    pub seed: u64,
    /// Progress line every this many batches (0: epoch summaries only).
    pub log_every: usize,
    /// Checkpoint every this many optimizer steps (0: epoch ends and interruptions only).
    pub checkpoint_every: usize,
    /// Continue from the last complete checkpoint (`false`: start over).
    pub resume: bool,
}

impl LoopConfig<'_> {
    /// Error unless the shared settings can run: at least one epoch, batch sizes and gradient
    /// accumulation at least 1. (The optimiser settings are checked by [`OptimConfig::validate`],
    /// which each task's `validate` calls last.)
    pub(crate) fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(TrainError::InvalidConfig(m.to_string()));
        if self.epochs == 0 {
            return bad("epochs must be at least 1");
        }
        if self.batch_size == 0 || self.eval_batch_size == 0 {
            return bad("batch sizes must be at least 1");
        }
        if self.grad_accumulation == 0 {
            return bad("grad_accumulation must be at least 1");
        }
        Ok(())
    }
}

/// Error unless both splits hold examples.
pub(crate) fn check_not_empty<I>(train: &[I], valid: &[I]) -> Result<()> {
    if train.is_empty() || valid.is_empty() {
        return Err(TrainError::InvalidConfig(
            "training and validation data must not be empty".into(),
        ));
    }
    Ok(())
}

/// The [`LoopConfig`] of a task's configuration (a struct with the shared fields `optim`,
/// `epochs`, `batch_size`, `eval_batch_size`, `grad_accumulation`, `seed`, `log_every`,
/// `checkpoint_every` and `resume`), written once for every task's configuration type.
macro_rules! loop_config {
    ($config:expr) => {{
        let config = $config;
        $crate::run::LoopConfig {
            optim: &config.optim,
            epochs: config.epochs,
            batch_size: config.batch_size,
            eval_batch_size: config.eval_batch_size,
            grad_accumulation: config.grad_accumulation,
            seed: config.seed,
            log_every: config.log_every,
            checkpoint_every: config.checkpoint_every,
            resume: config.resume,
        }
    }};
}
pub(crate) use loop_config;

/// The examples of a run and how they are batched.
pub(crate) struct RunData<I, B> {
    /// Training items, in the order `order` indexes.
    pub train: Vec<I>,
    /// Validation items (visited in order).
    pub valid: Vec<I>,
    /// Batches the items of both splits.
    pub batcher: B,
    /// The order of the training epochs.
    pub order: EpochOrder,
}

/// What [`train_task`] needs besides the model, the data and the task's own steps.
pub(crate) struct RunSpec<'a> {
    /// The shared settings.
    pub config: LoopConfig<'a>,
    /// The settings recorded with each checkpoint, which a resume must match.
    pub signature: &'a serde_json::Value,
    /// The tensors that train, and that the checkpoints keep.
    pub trainable: &'a Trainable,
    /// The (autodiff) training device ([`training_device`]).
    pub device: &'a Device,
    /// The output directory (checkpoints in `out/checkpoints`).
    pub out: &'a Path,
    /// Interrupter, quiet, overwrite, step hook.
    pub options: &'a RunOptions,
}

/// What [`train_task`] returns.
pub(crate) struct Trained<M, P> {
    /// The trained model.
    pub model: M,
    /// What the task's preparation returned (attach report, parameter counts).
    pub prepared: P,
    /// The checkpoint this process resumed, if any.
    pub resumed: Option<CheckpointState>,
    /// Whether the run was interrupted.
    pub interrupted: bool,
    /// Whether early stopping ended it.
    pub early_stopped: bool,
    /// Optimizer steps done (whole run).
    pub steps: usize,
    /// The epoch summaries of the epochs trained to their end in this process (the last
    /// epoch of the run without validation numbers: the caller scores it, [`fill_final`]).
    pub epochs: Vec<EpochSummary>,
    /// Passes over the validation set the loop made (one per epoch that is not the last).
    pub valid_passes: usize,
}

/// Train `model` as task `T` on `data`: the run loop the classification and causal-LM tasks
/// share (see the module documentation for its steps).
///
/// `prepare` turns the model into the one that trains (after the device is seeded with
/// `config.seed`, so that fresh adapter weights are reproducible); `configure` adds the task's
/// metrics and early stopping to its `SupervisedTraining`.
///
/// # Errors
/// [`TrainError::RunFinished`] / [`TrainError::ResumeMismatch`] from the resume checks,
/// [`TrainError::SchedulerState`] / [`TrainError::Checkpoint`] for a checkpoint that cannot be
/// restored, [`TrainError::NonFiniteLoss`], the errors of `prepare`, I/O and Learner errors.
pub(crate) fn train_task<T, I, O, B, P>(
    model: T::Model,
    data: RunData<I, B>,
    spec: &RunSpec<'_>,
    prepare: impl FnOnce(T::Model, &Device) -> Result<(T::Model, P)>,
    configure: impl FnOnce(SupervisedTraining<T>) -> SupervisedTraining<T>,
) -> Result<Trained<T::Model, P>>
where
    T: RunTask + TrainStep<Input = O> + InferenceStep<Input = O>,
    I: Clone + Send + Sync + 'static,
    O: 'static,
    B: Batcher<I, O> + Clone + 'static,
{
    let RunSpec {
        config,
        signature,
        trainable,
        device,
        out,
        options,
    } = spec;
    let ckpt_dir = out.join("checkpoints");
    let start = start_point(
        out,
        &ckpt_dir,
        options.overwrite || !config.resume,
        config.epochs,
        signature,
    )?;
    std::fs::create_dir_all(out).map_err(super::files::io_err(out))?;

    device.seed(config.seed);
    let (model, prepared) = prepare(model, device)?;

    let train_loader = EpochLoader::new(
        data.train,
        data.batcher.clone(),
        config.batch_size,
        data.order,
        (*device).clone(),
    )
    .with_device_reseed(config.seed)
    .resuming_at(start.epochs_done(), start.batches_done());
    let total_steps = config.epochs
        * train_loader
            .num_batches()
            .div_ceil(config.grad_accumulation);
    let valid_loader = EpochLoader::new(
        data.valid,
        data.batcher,
        config.eval_batch_size,
        EpochOrder::Sequential,
        (*device).clone(),
    );

    let interrupter = options.interrupter.clone().unwrap_or_default();
    let guard = StepGuard::new(
        config.optim.max_grad_norm,
        config.grad_accumulation,
        Some(interrupter.clone()),
    );
    let mut task = T::wrap(model, guard.clone());
    let mut optim = config.optim.optimizer();
    let mut scheduler = config.optim.scheduler(total_steps);
    if let Some(state) = &start.resumed {
        (task, optim) = restore(task, optim, &mut scheduler, &ckpt_dir, trainable, state)?;
    }
    let training = configure(SupervisedTraining::new(
        out,
        Arc::new(train_loader),
        Arc::new(valid_loader),
    ));
    let launched = launch(
        training,
        Learner::new(task, optim, scheduler),
        &LaunchSettings {
            epochs: config.epochs,
            grad_accumulation: config.grad_accumulation,
            log_every: config.log_every,
            checkpoint_every: config.checkpoint_every,
            start: &start,
            signature,
            ckpt_dir: &ckpt_dir,
            trainable,
            interrupter: &interrupter,
            guard: &guard,
            on_step: options.on_step.clone(),
            device,
            quiet: options.quiet,
        },
    )?;
    Ok(Trained {
        model: launched.task.into_model(),
        prepared,
        resumed: start.resumed,
        interrupted: launched.interrupted,
        early_stopped: launched.early_stopped,
        steps: launched.steps,
        epochs: launched.epochs,
        valid_passes: launched.valid_passes,
    })
}

/// Record the caller's final evaluation in the summary of the run's last epoch (which the
/// loop does not score), if this process trained it: `set` fills in the validation numbers.
pub(crate) fn fill_final(
    epochs: &mut [EpochSummary],
    last_epoch: usize,
    set: impl FnOnce(&mut EpochSummary),
) {
    if let Some(e) = epochs.last_mut().filter(|e| e.epoch == last_epoch) {
        set(e);
    }
}
