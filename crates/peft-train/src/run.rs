//! The run machinery shared by [`crate::trainer::train_classifier`] and
//! [`crate::lm::train_causal_lm`]: output-directory and resume checks, restoring a checkpoint,
//! and the training loop (a burn-train learning strategy) that checkpoints
//! every `checkpoint_every` optimizer steps, at every epoch end and when interrupted.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use burn::module::Module;
use burn::optim::lr_scheduler::LrSchedulerRecord;
use burn::optim::{GradientsAccumulator, ModuleOptimizer, OptimizerRecord};
use burn::store::ModuleRecord;
use burn::tensor::Device;
use burn::train::checkpoint::{Checkpoint, Checkpointer};
use burn::train::metric::LearningRateMetric;
use burn::train::metric::store::EventStoreClient;
use burn::train::{
    EventProcessorTraining, InferenceStep, Interrupter, Learner, LearnerEvent, LearnerModel,
    LearningCheckpointer, SupervisedLearningStrategy, SupervisedTraining,
    SupervisedTrainingEventProcessor, TrainLoader, TrainingComponents, TrainingItem,
    TrainingStrategy, ValidLoader,
};
use peft_core::{AdapterFile, Trainable, save_adapter};
use serde::Serialize;

use crate::checkpoint::{
    AdapterCheckpointer, AtomicFileCheckpointer, CheckpointState, KeepLastTwo, checkpoint_files,
    complete_checkpoints, first_difference, last_checkpoint, write_state,
};
use crate::error::{Result, TrainError};
use crate::optim::WarmupLinear;
use crate::render::{EpochSummary, ProgressRenderer};
use crate::task::{StepGuard, scale_grads};

/// Called after every optimizer step with the number of steps done (1-based, counted over
/// the whole run, resumed parts included).
pub type StepHook = Arc<dyn Fn(usize) + Send + Sync>;

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

/// How a [`StepStrategy`] run ended.
#[derive(Clone, Debug, Default)]
pub(crate) struct LoopOutcome {
    /// Optimizer steps done at the end (whole run).
    pub steps: usize,
    /// Early stopping ended the run.
    pub early_stopped: bool,
    /// Writing a checkpoint state failed.
    pub error: Option<String>,
}

/// burn-train's single-device loop, plus checkpoints at optimizer-step granularity: every
/// `checkpoint_every` steps, at every epoch end and on interruption; each with a
/// [`CheckpointState`] saying where to resume.
pub(crate) struct StepStrategy {
    device: Device,
    ckpt_dir: PathBuf,
    signature: serde_json::Value,
    start_step: usize,
    start_epochs_done: usize,
    start_batches_done: usize,
    checkpoint_every: usize,
    accumulation: usize,
    guard: StepGuard,
    on_step: Option<StepHook>,
    outcome: Arc<Mutex<LoopOutcome>>,
}

struct Position {
    step: usize,
    epochs_done: usize,
    batches_done: usize,
    /// `(step, epochs_done, batches_done)` of the last checkpoint written or resumed.
    saved: (usize, usize, usize),
}

impl StepStrategy {
    #[allow(clippy::too_many_arguments)]
    fn save<M: LearnerModel>(
        &self,
        checkpointer: &mut Option<LearningCheckpointer<M>>,
        learner: &Learner<M>,
        pos: &mut Position,
        finished: bool,
        early_stopped: bool,
        interrupter: &Interrupter,
        store: &EventStoreClient,
    ) {
        let Some(checkpointer) = checkpointer else {
            return;
        };
        let here = (pos.step, pos.epochs_done, pos.batches_done);
        if here == pos.saved && !finished {
            return;
        }
        let state = CheckpointState {
            step: pos.step,
            epochs_done: pos.epochs_done,
            batches_done: pos.batches_done,
            finished,
            early_stopped,
            run: self.signature.clone(),
        };
        // The state first: a checkpoint counts once all four files exist.
        if let Err(e) = write_state(&self.ckpt_dir, &state) {
            if let Ok(mut o) = self.outcome.lock() {
                o.error.get_or_insert(e.to_string());
            }
            interrupter.stop(Some("checkpoint failed"));
            return;
        }
        checkpointer.checkpoint(learner, pos.step, store);
        pos.saved = here;
    }
}

impl<M: LearnerModel> SupervisedLearningStrategy<M> for StepStrategy {
    fn fit(
        &self,
        components: TrainingComponents<M>,
        mut learner: Learner<M>,
        dataloader_train: TrainLoader<M>,
        dataloader_valid: ValidLoader<M>,
        _starting_epoch: usize,
    ) -> (M, SupervisedTrainingEventProcessor<M>) {
        let train = dataloader_train.to_device(&self.device);
        let valid = dataloader_valid.to_device(&self.device.clone().inner());
        learner.fork(&self.device);
        let TrainingComponents {
            num_epochs,
            mut checkpointer,
            interrupter,
            mut early_stopping,
            event_processor: mut processor,
            event_store,
            ..
        } = components;
        let store: &EventStoreClient = &event_store;
        let mut pos = Position {
            step: self.start_step,
            epochs_done: self.start_epochs_done,
            batches_done: self.start_batches_done,
            saved: (
                self.start_step,
                self.start_epochs_done,
                self.start_batches_done,
            ),
        };
        let accumulation = self.accumulation.max(1);

        for epoch in (self.start_epochs_done + 1)..=num_epochs {
            interrupter.fail_on_error(processor.process_train(LearnerEvent::StartSplit {
                epoch_number: epoch,
                total_items: train.num_items(),
            }));
            let mut iterator = train.iter();
            let mut batch = pos.batches_done;
            let mut accumulator = GradientsAccumulator::new();
            let mut pending = 0;
            let mut iteration = 0;
            while let Some(item) = iterator.next() {
                let item = match item {
                    Ok(item) => item,
                    Err(err) => {
                        interrupter.fail(err);
                        break;
                    }
                };
                iteration += 1;
                batch += 1;
                let progress = iterator.progress();
                let out = learner.train_step(item);
                let stepped = if accumulation > 1 {
                    accumulator.accumulate(&learner.model(), out.grads);
                    pending += 1;
                    if pending >= accumulation || progress.is_completed() {
                        let mut grads = accumulator.grads();
                        if pending < accumulation {
                            // A short last group: the mean over its batches, like the others.
                            let factor = accumulation as f64 / pending as f64;
                            grads = scale_grads(&learner.model(), grads, factor);
                        }
                        learner.lr_step();
                        learner.optimizer_step(grads);
                        pending = 0;
                        true
                    } else {
                        false
                    }
                } else {
                    learner.lr_step();
                    learner.optimizer_step(out.grads);
                    true
                };
                let item = TrainingItem::new(
                    out.item,
                    progress.clone(),
                    Some(iteration),
                    Some(learner.lr_current()),
                );
                interrupter
                    .fail_on_error(processor.process_train(LearnerEvent::ProcessedItem(item)));
                if stepped && self.guard.report().non_finite.is_none() {
                    pos.step += 1;
                    pos.batches_done = batch;
                    if let Some(hook) = &self.on_step {
                        hook(pos.step);
                    }
                    if self.checkpoint_every > 0
                        && pos.step.is_multiple_of(self.checkpoint_every)
                        && !progress.is_completed()
                        && !interrupter.should_stop()
                    {
                        self.save(
                            &mut checkpointer,
                            &learner,
                            &mut pos,
                            false,
                            false,
                            &interrupter,
                            store,
                        );
                    }
                }
                if interrupter.should_stop() {
                    break;
                }
            }
            interrupter.fail_on_error(processor.process_train(LearnerEvent::EndSplit(epoch)));
            if interrupter.should_stop() {
                // Ctrl-C (not an error, not a non-finite loss): keep the last optimizer step.
                if interrupter.error().is_none() && self.guard.report().non_finite.is_none() {
                    self.save(
                        &mut checkpointer,
                        &learner,
                        &mut pos,
                        false,
                        false,
                        &interrupter,
                        store,
                    );
                }
                break;
            }

            interrupter.fail_on_error(processor.process_valid(LearnerEvent::StartSplit {
                epoch_number: epoch,
                total_items: valid.num_items(),
            }));
            let model = learner.model().valid();
            let mut iterator = valid.iter();
            let mut iteration = 0;
            while let Some(item) = iterator.next() {
                let item = match item {
                    Ok(item) => item,
                    Err(err) => {
                        interrupter.fail(err);
                        break;
                    }
                };
                let progress = iterator.progress();
                iteration += 1;
                let item = InferenceStep::step(&model, item);
                let item = TrainingItem::new(item, progress, Some(iteration), None);
                interrupter
                    .fail_on_error(processor.process_valid(LearnerEvent::ProcessedItem(item)));
                if interrupter.should_stop() {
                    break;
                }
            }
            interrupter.fail_on_error(processor.process_valid(LearnerEvent::EndSplit(epoch)));
            interrupter.fail_on_error(processor.process_train(LearnerEvent::EndEpoch(epoch)));
            interrupter.fail_on_error(processor.flush());

            pos.epochs_done = epoch;
            pos.batches_done = 0;
            if interrupter.should_stop() {
                if interrupter.error().is_none() && self.guard.report().non_finite.is_none() {
                    self.save(
                        &mut checkpointer,
                        &learner,
                        &mut pos,
                        false,
                        false,
                        &interrupter,
                        store,
                    );
                }
                break;
            }
            let stop = early_stopping
                .as_mut()
                .is_some_and(|e| e.should_stop(epoch, store));
            let finished = stop || epoch == num_epochs;
            self.save(
                &mut checkpointer,
                &learner,
                &mut pos,
                finished,
                stop,
                &interrupter,
                store,
            );
            if stop {
                if let Ok(mut o) = self.outcome.lock() {
                    o.early_stopped = true;
                }
                break;
            }
        }
        if let Ok(mut o) = self.outcome.lock() {
            o.steps = pos.step;
        }
        // Dropping the checkpointer waits for its files to be written.
        drop(checkpointer);
        (learner.model(), processor)
    }
}

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
    /// The epoch summaries of the epochs run in this process.
    pub epochs: Vec<EpochSummary>,
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
    let renderer = ProgressRenderer::new(s.log_every);
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
        epochs: summaries.lock().map(|s| s.clone()).unwrap_or_default(),
    })
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
