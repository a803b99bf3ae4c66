//! The run machinery shared by [`crate::trainer::train_classifier`] and
//! [`crate::lm::train_causal_lm`]: one run loop (`train_task`: resume checks, seeding, loaders,
//! step guard, optimizer and schedule, restoring a checkpoint, launching the Learner), and the
//! training loop it launches (a burn-train learning strategy) that checkpoints every
//! `checkpoint_every` optimizer steps, at every epoch end and when interrupted.
//!
//! Private submodules, one per seam: `options` ([`RunOptions`], [`StepHook`]), `files` (the
//! output directory: [`RUN_ARTEFACTS`], [`clear_run`], JSON and adapter files), `start` (data
//! fingerprint, resume checks, restoring a checkpoint), `strategy` (the step-checkpointing
//! learning strategy), `launch` (the Learner launch every task shares) and `session` (the run
//! loop and the `RunTask` trait the tasks implement).

mod files;
mod launch;
mod options;
mod session;
mod start;
mod strategy;

pub use files::{RUN_ARTEFACTS, RunState, clear_run, run_state};
pub use options::{RunOptions, StepHook};

pub(crate) use files::{io_err, save_adapter_artefact, write_json};
pub(crate) use session::{
    LoopConfig, RunData, RunSpec, RunTask, Trained, check_not_empty, fill_final, loop_config,
    train_task, training_device,
};
pub(crate) use start::Fingerprint;
