//! The results table the `sst2` example and `burn-peft train` / `eval` print (Markdown).

use crate::models::download::human_bytes;
use crate::train::data::GlueMetric;
use crate::train::serve::AdapterEval;
use crate::train::trainer::{EvalReport, TrainingReport};

/// One row of the results table.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ResultRow {
    /// The method, or the adapter directory and its kind.
    pub method: String,
    /// Trainable parameters (of this adapter and its head).
    pub trainable: usize,
    /// All parameters of the model.
    pub total: usize,
    /// The metric's name, e.g. `accuracy`.
    pub metric: String,
    /// Its value (percent for accuracy).
    pub value: f64,
    /// Training seconds, for a training run.
    pub train_secs: Option<f64>,
    /// Examples per second (training, else evaluation).
    pub examples_per_sec: Option<f64>,
    /// Size of the adapter's weights file.
    pub adapter_bytes: Option<u64>,
}

impl ResultRow {
    /// The row of a finished training run.
    pub fn from_training(report: &TrainingReport) -> Self {
        let train_secs: f64 = report.epochs.iter().map(|e| e.train_seconds).sum();
        let examples: usize = report.epochs.iter().map(|e| e.train_examples).sum();
        Self {
            method: report.method.clone(),
            trainable: report.trainable_params,
            total: report.total_params,
            metric: "accuracy".into(),
            value: report.final_eval.accuracy,
            train_secs: Some(train_secs),
            examples_per_sec: Some(examples as f64 / train_secs.max(1e-9)),
            adapter_bytes: Some(report.adapter_bytes),
        }
    }

    /// The row of one adapter evaluated on a shared base.
    pub fn from_eval(e: &AdapterEval) -> Self {
        Self {
            method: format!(
                "{} (`{}`, {})",
                e.adapter.dir.display(),
                e.adapter.name,
                e.adapter.kind
            ),
            trainable: e.params,
            total: e.total_params,
            metric: "accuracy".into(),
            value: e.eval.accuracy,
            train_secs: None,
            examples_per_sec: Some(e.eval.examples_per_sec),
            adapter_bytes: Some(e.adapter.weights_bytes),
        }
    }
}

impl ResultRow {
    /// The row reporting `metric` of `eval` instead of accuracy (GLUE's metric of the task:
    /// [`crate::train::data::GlueTask::metric`]); accuracy stays where `eval` lacks it (not a
    /// two-class head).
    pub fn with_metric(mut self, eval: &EvalReport, metric: GlueMetric) -> Self {
        let value = match metric {
            GlueMetric::Accuracy => Some(eval.accuracy),
            GlueMetric::F1 => eval.f1,
            GlueMetric::Matthews => eval.matthews,
        };
        if let Some(value) = value {
            self.metric = metric.name().into();
            self.value = value;
        }
        self
    }
}

/// The rows as a Markdown table; `base_bytes` is the base model's checkpoint size.
pub fn results_table(rows: &[ResultRow], base_bytes: u64) -> String {
    let metric = rows
        .first()
        .map(|r| r.metric.as_str())
        .unwrap_or("accuracy");
    let mut s = format!(
        "| method | trainable params | dev {metric} | train time | ex/s | adapter file | base model |\n\
         |---|---|---|---|---|---|---|\n"
    );
    for r in rows {
        s.push_str(&format!(
            "| {} | {} ({:.2}%) | {:.2}{} | {} | {} | {} | {} |\n",
            r.method,
            r.trainable,
            100.0 * r.trainable as f64 / r.total.max(1) as f64,
            r.value,
            if r.metric == "accuracy" { "%" } else { "" },
            r.train_secs
                .map(|s| format!("{s:.1} s"))
                .unwrap_or("-".into()),
            r.examples_per_sec
                .map(|s| format!("{s:.1}"))
                .unwrap_or("-".into()),
            r.adapter_bytes.map(human_bytes).unwrap_or("-".into()),
            human_bytes(base_bytes),
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(f1: Option<f64>, matthews: Option<f64>) -> EvalReport {
        EvalReport {
            accuracy: 80.0,
            f1,
            matthews,
            ..EvalReport::default()
        }
    }

    fn row() -> ResultRow {
        ResultRow {
            method: "m".into(),
            trainable: 1,
            total: 10,
            metric: "accuracy".into(),
            value: 80.0,
            train_secs: None,
            examples_per_sec: None,
            adapter_bytes: None,
        }
    }

    #[test]
    fn the_task_metric_replaces_accuracy_where_the_report_has_it() {
        let r = row().with_metric(&eval(Some(75.5), Some(41.0)), GlueMetric::F1);
        assert_eq!((r.metric.as_str(), r.value), ("f1", 75.5));
        let table = results_table(&[r], 1);
        assert!(
            table.contains("| dev f1 |") && table.contains("| 75.50 |"),
            "{table}"
        );
        let r = row().with_metric(&eval(Some(75.5), Some(41.0)), GlueMetric::Matthews);
        assert_eq!((r.metric.as_str(), r.value), ("matthews", 41.0));
        // A head without the metric (not two classes) keeps accuracy.
        let r = row().with_metric(&eval(None, None), GlueMetric::Matthews);
        assert_eq!((r.metric.as_str(), r.value), ("accuracy", 80.0));
        assert!(results_table(&[r], 1).contains("| 80.00% |"));
    }
}
