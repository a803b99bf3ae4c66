//! A concise progress renderer for headless runs.
//!
//! burn's default non-TTY renderer prints a debug line per batch and no metric values. This one
//! prints one line every `every` batches (loss, accuracy and perplexity when registered,
//! learning rate, examples/s) and a summary per epoch, and records the epoch summaries (with
//! every training batch's loss and accuracy) for the run's metrics files. It reads the metrics by their burn-train names: `Loss`, `Accuracy`,
//! `Perplexity`, `Learning Rate`.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use burn::train::logger::{EvaluationProgressLogger, TrainingProgressLogger};
use burn::train::metric::{MetricDefinition, MetricId};
use burn::train::renderer::{
    EvaluationName, MetricState, MetricsRenderer, MetricsRendererEvaluation,
    MetricsRendererTraining,
};
use serde::Serialize;

/// One epoch's numbers.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct EpochSummary {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss.
    pub train_loss: Option<f64>,
    /// Training accuracy in percent.
    pub train_accuracy: Option<f64>,
    /// Validation loss.
    pub valid_loss: Option<f64>,
    /// Validation accuracy in percent.
    pub valid_accuracy: Option<f64>,
    /// Training perplexity (language modelling; `None` when the metric is not registered).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train_perplexity: Option<f64>,
    /// Validation perplexity (language modelling).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_perplexity: Option<f64>,
    /// Training examples per second (wall clock of the training split).
    pub train_examples_per_sec: f64,
    /// Seconds spent in the training split.
    pub train_seconds: f64,
    /// Examples trained on.
    pub train_examples: usize,
    /// Validation examples scored after this epoch (0 for the run's last epoch, which the
    /// run scores once at its end: its validation numbers are that final evaluation's).
    pub valid_examples: usize,
    /// Seconds spent scoring the validation set after this epoch.
    pub valid_seconds: f64,
    /// The training batches of the epoch, in order (their loss and accuracy as burn-train
    /// reported them after each batch).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepPoint>,
}

/// One training batch's numbers.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct StepPoint {
    /// 1-based batch of the epoch.
    pub batch: usize,
    /// Examples of the epoch processed so far.
    pub examples: usize,
    /// Loss of the batch.
    pub loss: Option<f64>,
    /// Accuracy of the batch in percent.
    pub accuracy: Option<f64>,
}

/// The summaries collected by a [`ProgressRenderer`], shared with whoever launched it.
pub type SharedSummaries = Arc<Mutex<Vec<EpochSummary>>>;

#[derive(Default)]
struct SplitState {
    values: HashMap<String, f64>,
    finals: HashMap<String, f64>,
}

/// Prints progress lines and epoch summaries to standard error.
pub struct ProgressRenderer {
    every: usize,
    names: HashMap<MetricId, String>,
    total_epochs: usize,
    epoch: usize,
    split: &'static str,
    split_total: usize,
    batches: usize,
    examples: usize,
    started: Instant,
    train: SplitState,
    valid: SplitState,
    current: EpochSummary,
    summaries: SharedSummaries,
    quiet: bool,
}

impl ProgressRenderer {
    /// A renderer printing every `every` batches (0: only epoch summaries).
    pub fn new(every: usize) -> Self {
        Self {
            every,
            names: HashMap::new(),
            total_epochs: 0,
            epoch: 1,
            split: "train",
            split_total: 0,
            batches: 0,
            examples: 0,
            started: Instant::now(),
            train: SplitState::default(),
            valid: SplitState::default(),
            current: EpochSummary::default(),
            summaries: Arc::default(),
            quiet: false,
        }
    }

    /// A run resumed after `epochs_done` finished epochs: the first epoch this process trains
    /// (and labels its summary with) is `epochs_done + 1`. burn-train's own starting epoch does
    /// not know about our checkpoints.
    pub fn resuming_after(mut self, epochs_done: usize) -> Self {
        self.epoch = epochs_done + 1;
        self
    }

    /// Record summaries without printing anything (tests).
    pub fn quiet(mut self) -> Self {
        self.quiet = true;
        self
    }

    /// The epoch summaries, filled as training runs.
    pub fn summaries(&self) -> SharedSummaries {
        self.summaries.clone()
    }

    fn say(&self, line: String) {
        if !self.quiet {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "{line}");
        }
    }

    fn update(&mut self, state: MetricState, train: bool) {
        let MetricState::Numeric(entry, Some(value)) = state else {
            return;
        };
        let Some(name) = self.names.get(&entry.metric_id).cloned() else {
            return;
        };
        let split = if train {
            &mut self.train
        } else {
            &mut self.valid
        };
        match value {
            burn::train::metric::NumericEntry::Final(v) => {
                split.finals.insert(name, v);
            }
            other => {
                split.values.insert(name, other.current());
            }
        }
    }

    fn line(&self) -> String {
        let get = |k: &str| self.train.values.get(k).copied();
        let secs = self.started.elapsed().as_secs_f64().max(1e-9);
        let mut s = format!(
            "epoch {}/{} | {:>6}/{} examples",
            self.epoch, self.total_epochs, self.examples, self.split_total
        );
        if let Some(l) = get("Loss") {
            s.push_str(&format!(" | loss {l:.4}"));
        }
        if let Some(a) = get("Accuracy") {
            s.push_str(&format!(" | acc {a:.2}%"));
        }
        if let Some(p) = get("Perplexity") {
            s.push_str(&format!(" | ppl {p:.2}"));
        }
        if let Some(lr) = get("Learning Rate") {
            s.push_str(&format!(" | lr {lr:.2e}"));
        }
        s.push_str(&format!(" | {:.1} ex/s", self.examples as f64 / secs));
        s
    }
}

impl MetricsRendererTraining for ProgressRenderer {
    fn update_train(&mut self, state: MetricState) {
        self.update(state, true);
    }

    fn update_valid(&mut self, state: MetricState) {
        self.update(state, false);
    }
}

impl MetricsRendererEvaluation for ProgressRenderer {
    fn update_test(&mut self, _name: EvaluationName, state: MetricState) {
        self.update(state, false);
    }
}

impl TrainingProgressLogger for ProgressRenderer {
    fn start(
        &mut self,
        total_epochs: usize,
        starting_epoch: usize,
        _total_items: Option<usize>,
        _label: Option<&str>,
    ) {
        self.total_epochs = total_epochs;
        // Never below the epoch set by `resuming_after`.
        self.epoch = self.epoch.max(starting_epoch).max(1);
    }

    fn update_epoch(&mut self, epoch: usize) {
        self.epoch = epoch + 1;
    }

    fn start_split(&mut self, split: &str, total_items: usize) {
        self.split = if split.eq_ignore_ascii_case("train") {
            "train"
        } else {
            "valid"
        };
        self.split_total = total_items;
        self.batches = 0;
        self.examples = 0;
        self.started = Instant::now();
        if self.split == "train" {
            self.train = SplitState::default();
            self.current = EpochSummary {
                epoch: self.epoch,
                ..EpochSummary::default()
            };
        } else {
            self.valid = SplitState::default();
        }
    }

    fn update_split(&mut self, items_processed: usize) {
        self.batches += 1;
        self.examples = items_processed;
        if self.split == "train" {
            let point = StepPoint {
                batch: self.batches,
                examples: items_processed,
                loss: self.train.values.get("Loss").copied(),
                accuracy: self.train.values.get("Accuracy").copied(),
            };
            self.current.steps.push(point);
        }
        if self.split == "train" && self.every > 0 && self.batches.is_multiple_of(self.every) {
            self.say(self.line());
        }
    }

    fn end_split(&mut self) {
        let secs = self.started.elapsed().as_secs_f64();
        let pick = |s: &SplitState, k: &str| s.finals.get(k).or(s.values.get(k)).copied();
        // The summary is recorded when the training split ends (the run's last epoch has no
        // validation split) and completed by the validation split that follows, if any.
        if self.split == "train" {
            self.current.train_loss = pick(&self.train, "Loss");
            self.current.train_accuracy = pick(&self.train, "Accuracy");
            self.current.train_perplexity = pick(&self.train, "Perplexity");
            self.current.train_seconds = secs;
            self.current.train_examples = self.examples;
            self.current.train_examples_per_sec = self.examples as f64 / secs.max(1e-9);
            if let Ok(mut s) = self.summaries.lock() {
                s.push(self.current.clone());
            }
            let c = &self.current;
            if self.epoch >= self.total_epochs && self.examples >= self.split_total {
                self.say(format!(
                    "epoch {} done: train loss {} | {:.1} ex/s, {:.1}s (validation: once, at the \
                     end of the run)",
                    c.epoch,
                    c.train_loss.map_or("-".into(), |v| format!("{v:.4}")),
                    c.train_examples_per_sec,
                    c.train_seconds
                ));
            }
        } else {
            self.current.valid_loss = pick(&self.valid, "Loss");
            self.current.valid_accuracy = pick(&self.valid, "Accuracy");
            self.current.valid_perplexity = pick(&self.valid, "Perplexity");
            self.current.valid_examples = self.examples;
            self.current.valid_seconds = secs;
            let c = &self.current;
            let fmt = |v: Option<f64>, pct: bool| match v {
                Some(v) if pct => format!("{v:.2}%"),
                Some(v) => format!("{v:.4}"),
                None => "-".into(),
            };
            // Accuracy is shown unless the run only has perplexity (language modelling).
            let lm = c.train_perplexity.is_some() || c.valid_perplexity.is_some();
            let show_acc = !lm || c.train_accuracy.is_some() || c.valid_accuracy.is_some();
            let extra = |acc: Option<f64>, ppl: Option<f64>| {
                let mut e = String::new();
                if show_acc {
                    e.push_str(&format!(" acc {}", fmt(acc, true)));
                }
                if lm {
                    e.push_str(&format!(" ppl {}", fmt(ppl, false)));
                }
                e
            };
            self.say(format!(
                "epoch {} done: train loss {}{} | valid loss {}{} | {:.1} ex/s, {:.1}s",
                c.epoch,
                fmt(c.train_loss, false),
                extra(c.train_accuracy, c.train_perplexity),
                fmt(c.valid_loss, false),
                extra(c.valid_accuracy, c.valid_perplexity),
                c.train_examples_per_sec,
                c.train_seconds
            ));
            if let Ok(mut s) = self.summaries.lock()
                && let Some(last) = s.last_mut().filter(|e| e.epoch == c.epoch)
            {
                *last = c.clone();
            }
        }
    }

    fn end(&mut self) {}

    fn log_event_training(&mut self, _event: String) {}
}

impl EvaluationProgressLogger for ProgressRenderer {
    fn start_global_progress(&mut self, _total_tests: usize) {}
    fn start_test(&mut self, _name: &str, _total_items: usize) {}
    fn update_test_progress(&mut self, _items_processed: usize) {}
    fn end_test(&mut self) {}
    fn end_global_progress(&mut self) {}
    fn log_event_evaluation(&mut self, _event: String) {}
}

impl MetricsRenderer for ProgressRenderer {
    fn manual_close(&mut self) {}

    fn register_metric(&mut self, definition: MetricDefinition) {
        self.names
            .insert(definition.metric_id.clone(), definition.name.to_string());
    }
}
