//! Evaluation of a classifier on a data set: accuracy, loss and, for two-class heads, GLUE's
//! F1 and Matthews correlation ([`EvalReport`], [`evaluate`], [`evaluate_with_order`]).

use std::time::Instant;

use burn::tensor::Device;
use peft_models::head::BertClassifier;
use serde::Serialize;

use crate::data::{ClassificationBatcher, EncodedItem};
use crate::error::{Result, TrainError};
use crate::glue_metrics::BinaryCounts;
use crate::predict::{BatchOrder, predict};
use crate::render::EpochSummary;

/// Accuracy and loss of a model on a data set.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct EvalReport {
    /// Accuracy in percent.
    pub accuracy: f64,
    /// Correct predictions.
    pub correct: usize,
    /// Examples evaluated.
    pub examples: usize,
    /// Mean cross-entropy.
    pub loss: f64,
    /// Examples per second.
    pub examples_per_sec: f64,
    /// F1 of class 1 in percent, for a two-class head (GLUE's MRPC/QQP metric); `None` for
    /// other heads and for a score taken from an epoch summary (early stopping).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub f1: Option<f64>,
    /// Matthews correlation × 100, for a two-class head (GLUE's CoLA metric); `None` as
    /// [`EvalReport::f1`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matthews: Option<f64>,
}

impl EvalReport {
    /// The report of the validation pass recorded in `epoch` (how early stopping scored the
    /// final weights), or `None` if that epoch was not scored.
    pub(crate) fn from_summary(epoch: &EpochSummary) -> Option<Self> {
        let (accuracy, loss) = (epoch.valid_accuracy?, epoch.valid_loss?);
        let examples = epoch.valid_examples;
        if examples == 0 {
            return None;
        }
        Some(Self {
            accuracy,
            correct: (accuracy * examples as f64 / 100.0).round() as usize,
            examples,
            loss,
            examples_per_sec: examples as f64 / epoch.valid_seconds.max(1e-9),
            f1: None,
            matthews: None,
        })
    }
}

/// Evaluate `model` (used in eval mode: no dropout) on `items`, after checking that they and
/// the batcher's tokenizer fit the model; batches in input order.
pub fn evaluate(
    model: &BertClassifier,
    items: &[EncodedItem],
    batcher: &ClassificationBatcher,
    batch_size: usize,
    device: &Device,
) -> Result<EvalReport> {
    evaluate_with_order(model, items, batcher, batch_size, BatchOrder::Input, device)
}

/// [`evaluate`] with a choice of batch order ([`BatchOrder::ByLength`]: length-grouped
/// batches, less padding, the same accuracy).
pub fn evaluate_with_order(
    model: &BertClassifier,
    items: &[EncodedItem],
    batcher: &ClassificationBatcher,
    batch_size: usize,
    order: BatchOrder,
    device: &Device,
) -> Result<EvalReport> {
    if items.is_empty() {
        return Err(TrainError::InvalidConfig("nothing to evaluate".into()));
    }
    let started = Instant::now();
    let p = predict(model, items, batcher, batch_size, order, device)?;
    let correct = p
        .labels
        .iter()
        .zip(items)
        .filter(|(l, item)| **l == item.label)
        .count();
    let n = items.len();
    // F1 and MCC only for a two-class head (a 3-class dev set may hold only 0/1 labels).
    let binary = (model.head()?.num_labels() == 2)
        .then(|| {
            BinaryCounts::from_pairs(p.labels.iter().copied().zip(items.iter().map(|i| i.label)))
        })
        .flatten();
    Ok(EvalReport {
        accuracy: 100.0 * correct as f64 / n as f64,
        correct,
        examples: n,
        loss: p.losses.iter().sum::<f64>() / n as f64,
        examples_per_sec: n as f64 / started.elapsed().as_secs_f64().max(1e-9),
        f1: binary.map(|c| 100.0 * c.f1()),
        matthews: binary.map(|c| 100.0 * c.matthews()),
    })
}
