//! [`LmTask`]: a [`Gpt2Model`] as a burn-train task, and its output [`LmOutput`] adapted to
//! burn-train's loss and perplexity metrics.

use burn::module::Module;
use burn::tensor::activation::log_softmax;
use burn::tensor::{ExecutionError, Int, Tensor, TensorData};
use burn::train::metric::{Adaptor, ItemLazy, LossInput, PerplexityInput, PerplexityMetric};
use peft_models::gpt2::{Gpt2Model, causal_lm_loss, next_token_targets};

use super::data::LmBatch;
use crate::task::{StepGuard, guarded_task};

/// The output of an LM step, for burn-train's [`LossMetric`](burn::train::metric::LossMetric) and [`PerplexityMetric`].
///
/// burn's `SequenceOutput` would hand the metric every position, padding included, and
/// `PerplexityMetric` can only skip padding by a target id (which would also skip real
/// occurrences of that id). The [`PerplexityInput`] built here instead has two "classes" per
/// predicted position: `[log p, log(1 - p)]`, with `p` the model's probability of the true next
/// token, so the metric's `log_softmax` gives back exactly `log p` for class 0; masked targets
/// get class [`LmOutput::MASKED_TARGET`], which [`LmOutput::perplexity_metric`] skips. The
/// metric's epoch value is then `exp(total NLL / real targets)`, the same token-weighted
/// perplexity as [`super::evaluate_lm`].
#[derive(Debug)]
pub struct LmOutput {
    /// Mean next-token cross-entropy over the real targets, `[1]`.
    pub loss: Tensor<1>,
    /// Next-token logits `[batch, seq, vocab]` (`[batch, p + seq, vocab]` behind a `p`-token
    /// prompt-tuning prompt).
    pub logits: Tensor<3>,
    /// Token ids `[batch, seq]` (the targets, shifted by one).
    pub input_ids: Tensor<2, Int>,
    /// 1 for tokens, 0 for padding, `[batch, seq]`.
    pub attention_mask: Tensor<2, Int>,
}

impl LmOutput {
    /// The perplexity-input class of positions whose target is padding.
    pub const MASKED_TARGET: usize = 1;

    /// burn-train's perplexity metric set up for this output (skipping padding targets).
    pub fn perplexity_metric() -> PerplexityMetric {
        PerplexityMetric::new().with_pad_token(Self::MASKED_TARGET)
    }
}

impl ItemLazy for LmOutput {
    fn sync(self) -> std::result::Result<Self, ExecutionError> {
        // As burn's own outputs: no read-back, leave the autodiff graph.
        self.loss.device().flush()?;
        Ok(Self {
            loss: self.loss.without_autodiff(),
            logits: self.logits.without_autodiff(),
            input_ids: self.input_ids.without_autodiff(),
            attention_mask: self.attention_mask.without_autodiff(),
        })
    }
}

impl Adaptor<LossInput> for LmOutput {
    fn adapt(&self) -> LossInput {
        LossInput::new(self.loss.clone())
    }
}

impl Adaptor<PerplexityInput> for LmOutput {
    fn adapt(&self) -> PerplexityInput {
        let device = self.logits.device();
        let Some(t) = next_token_targets(
            self.logits.clone(),
            self.input_ids.clone(),
            self.attention_mask.clone(),
        ) else {
            // Nothing to predict: one masked row.
            return PerplexityInput::new(
                Tensor::zeros([1, 2], &device),
                Tensor::from_data(
                    TensorData::new(vec![Self::MASKED_TARGET as i64], [1]),
                    &device,
                ),
            );
        };
        let [b, s] = t.targets.dims();
        let n = b * s;
        let log_probs = log_softmax(t.logits, 2);
        let log_p: Tensor<1> = log_probs
            .gather(2, t.targets.reshape([b, s, 1]))
            .reshape([n]);
        // log(1 - p); -inf when p rounds to 1, clamped so log_softmax stays finite.
        let log_not_p = log_p.clone().exp().neg().log1p().clamp_min(-1.0e4);
        let outputs: Tensor<2> = Tensor::stack(vec![log_p, log_not_p], 1);
        let masked = t.weights.reshape([n]).equal_elem(0).int();
        PerplexityInput::new(outputs, masked)
    }
}

/// A [`Gpt2Model`] as a burn-train causal-LM task.
#[derive(Module, Debug)]
pub struct LmTask {
    /// The model (frozen base, trainable adapters).
    pub model: Gpt2Model,
    /// Clipping, loss scaling, non-finite guard.
    #[module(skip)]
    pub guard: StepGuard,
}

impl LmTask {
    /// Wrap a model.
    pub fn new(model: Gpt2Model, guard: StepGuard) -> Self {
        Self { model, guard }
    }

    /// Logits `[batch, seq, vocab]` and the mean next-token cross-entropy `[1]` over the real
    /// targets of a batch (`input_ids`, `attention_mask`: `[batch, seq]`,
    /// `seq <= n_positions`).
    pub fn forward_lm(&self, batch: LmBatch) -> LmOutput {
        let LmBatch {
            input_ids,
            attention_mask,
        } = batch;
        let logits = self
            .model
            .forward(input_ids.clone(), Some(attention_mask.clone()));
        let loss = causal_lm_loss(logits.clone(), input_ids.clone(), attention_mask.clone());
        LmOutput {
            loss,
            logits,
            input_ids,
            attention_mask,
        }
    }
}

guarded_task!(LmTask, Gpt2Model, LmBatch => LmOutput, forward_lm);

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    #[test]
    fn perplexity_input_reproduces_the_masked_loss() {
        use burn::train::metric::{Metric, MetricMetadata, Numeric};
        let device = Device::flex();
        let logits: Tensor<3> = Tensor::random(
            [2, 5, 7],
            burn::tensor::Distribution::Normal(0.0, 2.0),
            &device,
        );
        let ids = Tensor::<2, Int>::from_data(
            TensorData::new(vec![1i64, 4, 6, 0, 2, 3, 3, 5, 0, 0], [2, 5]),
            &device,
        );
        let mask = Tensor::<2, Int>::from_data(
            TensorData::new(vec![1i64, 1, 1, 1, 1, 1, 1, 1, 0, 0], [2, 5]),
            &device,
        );
        let loss = causal_lm_loss(logits.clone(), ids.clone(), mask.clone());
        let out = LmOutput {
            loss: loss.clone(),
            logits,
            input_ids: ids,
            attention_mask: mask,
        };
        let mut metric = LmOutput::perplexity_metric();
        let input: PerplexityInput = out.adapt();
        let metadata = MetricMetadata {
            progress: burn::data::dataloader::Progress::new(1, 1, None),
            iteration: Some(0),
            lr: None,
        };
        let updated = metric.update(&input, &metadata);
        assert!(updated.is_ok());
        let ppl = metric.final_value().current();
        let want = loss.into_scalar::<f64>().exp();
        assert!(
            (ppl - want).abs() < 1e-4 * want,
            "metric {ppl} vs exp(loss) {want}"
        );
    }
}
