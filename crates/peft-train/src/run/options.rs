//! What a run takes besides its configuration: [`RunOptions`] (interrupter, quiet, overwrite,
//! step hook, base directory) and the [`StepHook`] type.

use std::path::PathBuf;
use std::sync::Arc;

use burn::train::Interrupter;

#[cfg(doc)]
use crate::error::TrainError;

/// Called after every optimizer step with the number of steps done (1-based, counted over
/// the whole run, resumed parts included).
pub type StepHook = Arc<dyn Fn(usize) + Send + Sync>;

/// Options that are not part of the recorded configuration.
#[derive(Clone, Default)]
pub struct RunOptions {
    /// Stops training when triggered (Ctrl-C); a fresh one is used if absent. The run then
    /// checkpoints its last optimizer step, and resumes there next time.
    pub interrupter: Option<Interrupter>,
    /// Print nothing (tests).
    pub quiet: bool,
    /// Start over even if the output directory holds a run (finished or not): its artefacts
    /// ([`crate::run::RUN_ARTEFACTS`]) are removed first. Default: false (resume, or report a
    /// finished run with [`TrainError::RunFinished`]).
    pub overwrite: bool,
    /// Called after every optimizer step with the steps done so far (progress, tests).
    pub on_step: Option<StepHook>,
    /// The directory the base model was loaded from. Full fine-tuning needs it: the result is
    /// saved as a model directory with this directory's `config.json`
    /// ([`crate::adapter_io::save_full_classifier`]).
    /// [`crate::trainer::train_classifier_from_dir`] sets it.
    pub base_dir: Option<PathBuf>,
}
