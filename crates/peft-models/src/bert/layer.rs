//! One post-LN BERT encoder layer with its two adapter sites.

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, LayerNorm, LayerNormConfig, LinearConfig};
use burn::tensor::{Device, Tensor};
use peft_core::dropout::dropout;
use peft_core::{AdapterLayer, LayerPrefix, LinearSite};

use super::attention::BertAttention;
use super::config::{BertConfig, HiddenAct};

/// Feed-forward up-projection and activation (HF `intermediate`).
#[derive(Module, Debug)]
pub struct BertIntermediate {
    /// `hidden -> intermediate` (a LoRA target).
    pub dense: LinearSite,
    /// The activation.
    #[module(skip)]
    pub act: HiddenAct,
}

/// Feed-forward down-projection + dropout, the adapter site, residual add and LayerNorm
/// (HF `output`).
#[derive(Module, Debug)]
pub struct BertOutput {
    /// `intermediate -> hidden` (a LoRA target).
    pub dense: LinearSite,
    /// HF `LayerNorm`.
    pub layer_norm: LayerNorm,
    /// Dropout on the projection.
    pub dropout: Dropout,
    /// The adapters at [`peft_core::AdapterSite::FeedForwardOutput`].
    pub adapters: AdapterLayer,
}

/// One encoder layer (HF `encoder.layer.N`).
#[derive(Module, Debug)]
pub struct BertLayer {
    /// Attention sub-layer.
    pub attention: BertAttention,
    /// Feed-forward up-projection.
    pub intermediate: BertIntermediate,
    /// Feed-forward output sub-layer.
    pub output: BertOutput,
}

impl BertLayer {
    /// Build with random weights.
    pub fn new(config: &BertConfig, device: &Device) -> Self {
        let h = config.hidden_size;
        Self {
            attention: BertAttention::new(config, device),
            intermediate: BertIntermediate {
                dense: LinearSite::from_linear(
                    LinearConfig::new(h, config.intermediate_size).init(device),
                ),
                act: config.hidden_act,
            },
            output: BertOutput {
                dense: LinearSite::from_linear(
                    LinearConfig::new(config.intermediate_size, h).init(device),
                ),
                layer_norm: LayerNormConfig::new(h)
                    .with_epsilon(config.layer_norm_eps)
                    .init(device),
                dropout: DropoutConfig::new(config.hidden_dropout_prob).init(),
                adapters: AdapterLayer::new(),
            },
        }
    }

    /// `[batch, seq, hidden]` -> `[batch, seq, hidden]`; `mask_bias` `[batch, 1, 1, seq]`.
    pub fn forward(&self, x: Tensor<3>, mask_bias: Tensor<4>) -> Tensor<3> {
        self.forward_with_prefix(x, mask_bias, None)
    }

    /// [`BertLayer::forward`] with a prefix-tuning prefix `[batch, heads, prefix, head_dim]`.
    pub fn forward_with_prefix(
        &self,
        x: Tensor<3>,
        mask_bias: Tensor<4>,
        prefix: Option<&LayerPrefix>,
    ) -> Tensor<3> {
        let x = self.attention.forward_with_prefix(x, mask_bias, prefix);
        let up = self
            .intermediate
            .act
            .forward(self.intermediate.dense.forward(x.clone()));
        let h = dropout(&self.output.dropout, self.output.dense.forward(up));
        self.output
            .adapters
            .forward(h, x, Some(&self.output.layer_norm))
    }
}
