//! [`StepStrategy`], burn-train's single-device learning strategy with checkpoints at
//! optimizer-step granularity and an exact resume position.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use burn::data::dataset::DatasetError;
use burn::optim::GradientsAccumulator;
use burn::tensor::Device;
use burn::train::metric::store::EventStoreClient;
use burn::train::{
    EventProcessorTraining, InferenceStep, Interrupter, Learner, LearnerEvent, LearnerModel,
    LearningCheckpointer, SupervisedLearningStrategy, SupervisedTrainingEventProcessor,
    TrainLoader, TrainingComponents, TrainingItem, ValidLoader,
};

use super::options::StepHook;
use crate::checkpoint::{CheckpointState, write_state};
use crate::task::{StepGuard, scale_grads};

/// How a [`StepStrategy`] run ended.
#[derive(Clone, Debug, Default)]
pub(crate) struct LoopOutcome {
    /// Optimizer steps done at the end (whole run).
    pub steps: usize,
    /// Early stopping ended the run.
    pub early_stopped: bool,
    /// Writing a checkpoint state failed.
    pub error: Option<String>,
    /// The epochs this process trained to their end, in order.
    pub completed_epochs: Vec<usize>,
    /// Passes over the validation set made by the loop (one per epoch that is not the run's
    /// last; the caller scores the last one once, after the loop).
    pub valid_passes: usize,
}

/// burn-train's single-device loop, plus checkpoints at optimizer-step granularity: every
/// `checkpoint_every` steps, at every epoch end and on interruption; each with a
/// [`CheckpointState`] saying where to resume.
///
/// The validation set is scored after every epoch except the run's last (`num_epochs`): the
/// caller evaluates the final weights once after the loop, so no weights are scored twice.
/// Early stopping is consulted after the epochs that were scored.
pub(crate) struct StepStrategy {
    pub(super) device: Device,
    pub(super) ckpt_dir: PathBuf,
    pub(super) signature: serde_json::Value,
    pub(super) start_step: usize,
    pub(super) start_epochs_done: usize,
    pub(super) start_batches_done: usize,
    pub(super) checkpoint_every: usize,
    pub(super) accumulation: usize,
    pub(super) guard: StepGuard,
    pub(super) on_step: Option<StepHook>,
    pub(super) outcome: Arc<Mutex<LoopOutcome>>,
}

struct Position {
    step: usize,
    epochs_done: usize,
    batches_done: usize,
    /// `(step, epochs_done, batches_done)` of the last checkpoint written or resumed.
    saved: (usize, usize, usize),
}

/// The item a data loader yielded, or `None` at the end and after an error (which then
/// stops the run through `interrupter`).
fn next_item<T>(item: Option<Result<T, DatasetError>>, interrupter: &Interrupter) -> Option<T> {
    match item? {
        Ok(item) => Some(item),
        Err(err) => {
            interrupter.fail(err);
            None
        }
    }
}

/// Writes the checkpoints of one `StepStrategy::fit`: the learner's checkpointer with what it
/// needs besides the learner and the position.
struct Saver<'a, M: LearnerModel> {
    strategy: &'a StepStrategy,
    checkpointer: Option<LearningCheckpointer<M>>,
    interrupter: &'a Interrupter,
    store: &'a EventStoreClient,
}

impl<M: LearnerModel> Saver<'_, M> {
    /// Checkpoint `learner` at `pos` (unless nothing changed since the last checkpoint and the
    /// run is not `finished`), its [`CheckpointState`] first. A state that cannot be written
    /// stops the run and is reported in the [`LoopOutcome`].
    fn save(
        &mut self,
        learner: &Learner<M>,
        pos: &mut Position,
        finished: bool,
        early_stopped: bool,
    ) {
        let Some(checkpointer) = &mut self.checkpointer else {
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
            run: self.strategy.signature.clone(),
        };
        // The state first: a checkpoint counts once all four files exist.
        if let Err(e) = write_state(&self.strategy.ckpt_dir, &state) {
            if let Ok(mut o) = self.strategy.outcome.lock() {
                o.error.get_or_insert(e.to_string());
            }
            self.interrupter.stop(Some("checkpoint failed"));
            return;
        }
        checkpointer.checkpoint(learner, pos.step, self.store);
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
            checkpointer,
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
        let mut saver = Saver {
            strategy: self,
            checkpointer,
            interrupter: &interrupter,
            store,
        };

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
            while let Some(item) = next_item(iterator.next(), &interrupter) {
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
                        saver.save(&learner, &mut pos, false, false);
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
                    saver.save(&learner, &mut pos, false, false);
                }
                break;
            }

            // The last epoch's weights are the run's result, scored once by the caller.
            let last = epoch == num_epochs;
            if !last {
                interrupter.fail_on_error(processor.process_valid(LearnerEvent::StartSplit {
                    epoch_number: epoch,
                    total_items: valid.num_items(),
                }));
                let model = learner.model().valid();
                let mut iterator = valid.iter();
                let mut iteration = 0;
                while let Some(item) = next_item(iterator.next(), &interrupter) {
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
                if let Ok(mut o) = self.outcome.lock() {
                    o.valid_passes += 1;
                }
            }
            interrupter.fail_on_error(processor.process_train(LearnerEvent::EndEpoch(epoch)));
            interrupter.fail_on_error(processor.flush());

            pos.epochs_done = epoch;
            pos.batches_done = 0;
            if let Ok(mut o) = self.outcome.lock() {
                o.completed_epochs.push(epoch);
            }
            if interrupter.should_stop() {
                if interrupter.error().is_none() && self.guard.report().non_finite.is_none() {
                    saver.save(&learner, &mut pos, false, false);
                }
                break;
            }
            let stop = !last
                && early_stopping
                    .as_mut()
                    .is_some_and(|e| e.should_stop(epoch, store));
            let finished = stop || epoch == num_epochs;
            saver.save(&learner, &mut pos, finished, stop);
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
        drop(saver);
        (learner.model(), processor)
    }
}
