//! `--resume` and `--overwrite`: what a training command does with an output directory that
//! already holds a run, decided before anything is loaded or downloaded.

use std::path::Path;

use clap::Args;

use crate::train::run::{RunState, run_state};

/// The output-directory flags of a training command (`burn-peft train`, the examples).
#[derive(Args, Clone, Debug, Default)]
pub struct RunDirArgs {
    /// Continue the unfinished run in the output directory from its last checkpoint (the same
    /// settings are required; raise --epochs to continue a finished one)
    #[arg(long, conflicts_with = "overwrite")]
    pub resume: bool,
    /// Start over in the output directory, removing the earlier run's checkpoints and results
    #[arg(long)]
    pub overwrite: bool,
}

impl RunDirArgs {
    /// Error (one line, naming the flag to add) unless a run of `epochs` epochs may go ahead
    /// in `out`: an empty directory needs no flag; one holding a run needs `--resume` (to
    /// continue it: it must be unfinished for `epochs`) or `--overwrite`; `--resume` needs a
    /// checkpoint to continue.
    ///
    /// # Errors
    /// The message to print, as described above; also when `out`'s checkpoint state cannot be
    /// read.
    pub fn check(&self, out: &Path, epochs: usize) -> Result<(), String> {
        if self.overwrite {
            return Ok(());
        }
        let dir = out.display();
        let state = run_state(out).map_err(|e| format!("{dir}: {e}"))?;
        let (epochs_done, step, early_stopped) = match state {
            RunState::Empty if self.resume => {
                return Err(format!(
                    "--resume: {dir} holds no run to resume (no checkpoint in {dir}/checkpoints)"
                ));
            }
            RunState::Empty => return Ok(()),
            RunState::NoCheckpoint => {
                return Err(format!(
                    "{dir} holds an earlier run's files but no checkpoint to --resume from: add \
                     --overwrite to start over, or choose another --out"
                ));
            }
            RunState::Checkpointed {
                epochs_done,
                step,
                early_stopped,
            } => (epochs_done, step, early_stopped),
        };
        let resumable = state.resumable(epochs);
        match (self.resume, resumable) {
            (true, true) => Ok(()),
            (false, true) => Err(format!(
                "{dir} holds an unfinished run ({epochs_done} of {epochs} epoch(s), step \
                 {step}): add --resume to continue it, or --overwrite to start over"
            )),
            (resume, false) => {
                let flag = if resume { "--resume: " } else { "" };
                let (why, more) = if early_stopped {
                    (format!("stopped early after {epochs_done} epoch(s)"), "")
                } else {
                    (
                        format!("{epochs_done} epoch(s), --epochs {epochs}"),
                        ", or --resume with more --epochs to continue it",
                    )
                };
                Err(format!(
                    "{flag}{dir} holds a finished run ({why}; results in {dir}/adapter): add \
                     --overwrite to start over{more}"
                ))
            }
        }
    }
}
