//! BERT self-attention with a padding mask, and its output sub-layer (the first adapter site).

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, LayerNorm, LayerNormConfig, LinearConfig};
use burn::tensor::{Device, Tensor};
use peft_core::dropout::dropout;
use peft_core::kernels::masked_softmax;
use peft_core::{AdapterLayer, LayerPrefix, LinearSite};

use super::config::BertConfig;

/// Multi-head self-attention projections (HF `attention.self`).
#[derive(Module, Debug)]
pub struct BertSelfAttention {
    /// Query projection (a LoRA target).
    pub query: LinearSite,
    /// Key projection (a LoRA target).
    pub key: LinearSite,
    /// Value projection (a LoRA target).
    pub value: LinearSite,
    /// Dropout on attention probabilities.
    pub dropout: Dropout,
    /// Number of heads.
    pub num_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
}

impl BertSelfAttention {
    fn new(config: &BertConfig, device: &Device) -> Self {
        let h = config.hidden_size;
        Self {
            query: LinearSite::from_linear(LinearConfig::new(h, h).init(device)),
            key: LinearSite::from_linear(LinearConfig::new(h, h).init(device)),
            value: LinearSite::from_linear(LinearConfig::new(h, h).init(device)),
            dropout: DropoutConfig::new(config.attention_probs_dropout_prob).init(),
            num_heads: config.num_attention_heads,
            head_dim: config.head_dim(),
        }
    }

    fn split_heads(&self, x: Tensor<3>) -> Tensor<4> {
        let [b, s, _] = x.dims();
        x.reshape([b, s, self.num_heads, self.head_dim])
            .swap_dims(1, 2)
    }

    /// Attend: `x` `[batch, seq, hidden]`, `mask_bias` `[batch, 1, 1, seq]` (0 for tokens,
    /// a large negative number for padding) -> context `[batch, seq, hidden]`.
    pub fn forward(&self, x: Tensor<3>, mask_bias: Tensor<4>) -> Tensor<3> {
        self.forward_with_prefix(x, mask_bias, None)
    }

    /// [`BertSelfAttention::forward`] with prefix-tuning keys/values prepended (AdapterHub's
    /// `prefix_tuning` hook: after the projections, the prefix attended by every query).
    pub fn forward_with_prefix(
        &self,
        x: Tensor<3>,
        mask_bias: Tensor<4>,
        prefix: Option<&LayerPrefix>,
    ) -> Tensor<3> {
        let [b, s, h] = x.dims();
        let q = self.split_heads(self.query.forward(x.clone()));
        let k = self.split_heads(self.key.forward(x.clone()));
        let v = self.split_heads(self.value.forward(x));
        let (k, v, mask_bias) = match prefix {
            Some(p) => {
                let (k, v) = p.prepend(k, v);
                (k, v, p.extend_bias(mask_bias))
            }
            None => (k, v, mask_bias),
        };
        let scale = 1.0 / (self.head_dim as f32).sqrt();
        let probs = dropout(
            &self.dropout,
            masked_softmax(q.matmul(k.swap_dims(2, 3)), mask_bias, scale),
        );
        probs.matmul(v).swap_dims(1, 2).reshape([b, s, h])
    }
}

/// Attention output projection + dropout, then the adapter site, residual add and LayerNorm
/// (HF `attention.output`).
#[derive(Module, Debug)]
pub struct BertSelfOutput {
    /// Output projection (a LoRA target).
    pub dense: LinearSite,
    /// HF `LayerNorm`.
    pub layer_norm: LayerNorm,
    /// Dropout on the projection.
    pub dropout: Dropout,
    /// The adapters at [`peft_core::AdapterSite::AttentionOutput`].
    pub adapters: AdapterLayer,
}

impl BertSelfOutput {
    fn new(config: &BertConfig, device: &Device) -> Self {
        let h = config.hidden_size;
        Self {
            dense: LinearSite::from_linear(LinearConfig::new(h, h).init(device)),
            layer_norm: LayerNormConfig::new(h)
                .with_epsilon(config.layer_norm_eps)
                .init(device),
            dropout: DropoutConfig::new(config.hidden_dropout_prob).init(),
            adapters: AdapterLayer::new(),
        }
    }

    /// `LN(adapter(dropout(dense(context))) + input)`; shapes `[batch, seq, hidden]`.
    pub fn forward(&self, context: Tensor<3>, input: Tensor<3>) -> Tensor<3> {
        let h = dropout(&self.dropout, self.dense.forward(context));
        self.adapters.forward(h, input, Some(&self.layer_norm))
    }
}

/// Self-attention and its output sub-layer (HF `attention`; HF's `self` is `self_attn` here).
#[derive(Module, Debug)]
pub struct BertAttention {
    /// HF `attention.self`.
    pub self_attn: BertSelfAttention,
    /// HF `attention.output`.
    pub output: BertSelfOutput,
}

impl BertAttention {
    pub(crate) fn new(config: &BertConfig, device: &Device) -> Self {
        Self {
            self_attn: BertSelfAttention::new(config, device),
            output: BertSelfOutput::new(config, device),
        }
    }

    /// `[batch, seq, hidden]` -> `[batch, seq, hidden]`.
    pub fn forward(&self, x: Tensor<3>, mask_bias: Tensor<4>) -> Tensor<3> {
        self.forward_with_prefix(x, mask_bias, None)
    }

    /// [`BertAttention::forward`] with a prefix-tuning prefix.
    pub fn forward_with_prefix(
        &self,
        x: Tensor<3>,
        mask_bias: Tensor<4>,
        prefix: Option<&LayerPrefix>,
    ) -> Tensor<3> {
        let context = self
            .self_attn
            .forward_with_prefix(x.clone(), mask_bias, prefix);
        self.output.forward(context, x)
    }
}
