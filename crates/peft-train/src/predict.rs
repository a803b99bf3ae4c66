//! Predictions of a classifier over many examples, in input-order or length-grouped batches.
//!
//! Length grouping ([`BatchOrder::ByLength`]) sorts the examples by token count before cutting
//! them into batches, so that each batch pads to a length close to that of all its examples;
//! the predictions are put back into input order, so callers see no difference except the
//! time (and float rounding: a row's padding changes the reduction lengths, never the maths).

use burn::data::dataloader::batcher::Batcher;
use burn::module::Module;
use burn::tensor::Device;
use burn::train::InferenceStep;
use serde::{Deserialize, Serialize};

use crate::data::{ClassificationBatcher, EncodedItem};
use crate::error::{Result, TrainError};
use crate::task::{ClassificationTask, StepGuard};
use peft_models::head::BertClassifier;

/// How examples are cut into batches for evaluation and inference.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchOrder {
    /// Consecutive examples in input order (the default).
    #[default]
    Input,
    /// Examples sorted by length (stable, longest first), then cut into batches: less
    /// padding; the results come back in input order.
    ByLength,
}

/// The batches of `lengths.len()` examples: each a list of input indices, at most
/// `batch_size` long (`batch_size` 0 counts as 1). Every index appears exactly once.
pub fn batch_plan(lengths: &[usize], batch_size: usize, order: BatchOrder) -> Vec<Vec<usize>> {
    let mut indices: Vec<usize> = (0..lengths.len()).collect();
    if order == BatchOrder::ByLength {
        // Longest first: the first batch is the largest, so memory peaks at once.
        indices.sort_by_key(|&i| std::cmp::Reverse(lengths[i]));
    }
    indices
        .chunks(batch_size.max(1))
        .map(<[usize]>::to_vec)
        .collect()
}

/// What [`predict`] returns, in input order.
#[derive(Clone, Debug, PartialEq)]
pub struct Predictions {
    /// Predicted class (argmax of the logits) per example.
    pub labels: Vec<usize>,
    /// Logits per example, `[examples][classes]`.
    pub logits: Vec<Vec<f32>>,
    /// Cross-entropy per example (against the items' labels).
    pub losses: Vec<f64>,
    /// Padded tokens fed to the model over all batches.
    pub padded_tokens: usize,
}

/// Classify `items` with `model` in eval mode (no dropout), `batch_size` at a time, in the
/// given batch order; the results are in input order whatever the order.
///
/// # Errors
/// [`TrainError::InvalidConfig`] when there is nothing to predict; the errors of
/// [`ClassificationBatcher::check_fits`] for items or a tokenizer that do not fit the model.
pub fn predict(
    model: &BertClassifier,
    items: &[EncodedItem],
    batcher: &ClassificationBatcher,
    batch_size: usize,
    order: BatchOrder,
    device: &Device,
) -> Result<Predictions> {
    if items.is_empty() {
        return Err(TrainError::InvalidConfig("nothing to predict".into()));
    }
    batcher.check_fits(&model.bert.input_limits(), items)?;
    let task = ClassificationTask::new(model.valid(), StepGuard::default());
    let device = device.clone().inner();
    let lengths: Vec<usize> = items.iter().map(|i| i.input_ids.len()).collect();
    let n = items.len();
    let mut logits = vec![Vec::new(); n];
    let mut losses = vec![0f64; n];
    let mut padded_tokens = 0;
    for batch in batch_plan(&lengths, batch_size, order) {
        let picked: Vec<EncodedItem> = batch.iter().map(|&i| items[i].clone()).collect();
        let b = batcher.batch(picked, &device);
        let [rows, seq] = b.input_ids.dims();
        padded_tokens += rows * seq;
        let out = InferenceStep::step(&task, b);
        let [_, classes] = out.output.dims();
        let values = out
            .output
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .map_err(|e| TrainError::Learner(format!("logits: {e:?}")))?;
        for (row, &i) in batch.iter().enumerate() {
            let z = values[row * classes..(row + 1) * classes].to_vec();
            losses[i] = cross_entropy(&z, items[i].label);
            logits[i] = z;
        }
    }
    let labels = logits.iter().map(|z| argmax(z)).collect();
    Ok(Predictions {
        labels,
        logits,
        losses,
        padded_tokens,
    })
}

/// Index of the largest value (the first of ties; 0 for an empty row).
fn argmax(z: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in z.iter().enumerate() {
        if *v > z[best] {
            best = i;
        }
    }
    best
}

/// `-log softmax(z)[label]` in f64 (infinite for a label outside the row).
fn cross_entropy(z: &[f32], label: usize) -> f64 {
    let max = z
        .iter()
        .fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v)));
    let lse = max
        + z.iter()
            .map(|&v| (f64::from(v) - max).exp())
            .sum::<f64>()
            .ln();
    z.get(label).map_or(f64::INFINITY, |&v| lse - f64::from(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_cover_every_index_once_and_group_by_length() {
        let lengths = [3, 9, 1, 9, 4, 2, 7];
        let input = batch_plan(&lengths, 3, BatchOrder::Input);
        assert_eq!(input, vec![vec![0, 1, 2], vec![3, 4, 5], vec![6]]);
        let grouped = batch_plan(&lengths, 3, BatchOrder::ByLength);
        // Longest first, ties in input order.
        assert_eq!(grouped, vec![vec![1, 3, 6], vec![4, 0, 5], vec![2]]);
        let mut all: Vec<usize> = grouped.concat();
        all.sort_unstable();
        assert_eq!(all, (0..lengths.len()).collect::<Vec<_>>());
        assert_eq!(batch_plan(&lengths, 0, BatchOrder::Input).len(), 7);
    }

    #[test]
    fn argmax_and_cross_entropy() {
        assert_eq!(argmax(&[0.1, 2.0, 2.0, -1.0]), 1);
        // log(1 + e) - 0 for z = [0, 1], label 0.
        let ce = cross_entropy(&[0.0, 1.0], 0);
        assert!((ce - (1.0f64 + 1f64.exp()).ln()).abs() < 1e-12);
    }
}
