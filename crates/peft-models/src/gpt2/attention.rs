//! GPT-2 causal self-attention (fused `c_attn`, output `c_proj`) with the first adapter site, and
//! the additive attention bias shared by all blocks.

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig};
use burn::tensor::{Bool, Device, Int, Tensor};
use peft_core::dropout::dropout;
use peft_core::kernels::masked_softmax;
use peft_core::{AdapterLayer, LayerPrefix, LinearSite};

use super::config::Gpt2Config;
use super::conv1d::Conv1D;

/// The keys and values one attention layer has seen so far (a KV cache entry), each
/// `[batch, n_head, past_len, head_dim]`.
#[derive(Clone, Debug)]
pub struct LayerKv {
    /// Keys `[batch, n_head, len, head_dim]`.
    pub key: Tensor<4>,
    /// Values `[batch, n_head, len, head_dim]`.
    pub value: Tensor<4>,
}

impl LayerKv {
    /// Number of cached positions.
    pub fn len(&self) -> usize {
        self.key.dims()[2]
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Causal multi-head self-attention (HF `h.N.attn`), with the adapter of
/// [`peft_core::AdapterSite::AttentionOutput`].
#[derive(Module, Debug)]
pub struct Gpt2Attention {
    /// Fused query/key/value projection `n_embd -> 3 * n_embd` (`[in, out]` weight).
    pub c_attn: LinearSite,
    /// Output projection `n_embd -> n_embd`.
    pub c_proj: LinearSite,
    /// Dropout on attention probabilities (`attn_pdrop`).
    pub attn_dropout: Dropout,
    /// Dropout on the projected output (`resid_pdrop`).
    pub resid_dropout: Dropout,
    /// The adapters at [`peft_core::AdapterSite::AttentionOutput`] (after `c_proj` and
    /// `resid_dropout`, before the residual add).
    pub adapters: AdapterLayer,
    /// Number of heads.
    pub n_head: usize,
    /// Width of one head.
    pub head_dim: usize,
}

impl Gpt2Attention {
    /// Build with random weights.
    pub fn new(config: &Gpt2Config, device: &Device) -> Self {
        let d = config.n_embd;
        let std = config.initializer_range;
        Self {
            c_attn: Conv1D::new(d, 3 * d, std, device).into_site(),
            c_proj: Conv1D::new(d, d, std, device).into_site(),
            attn_dropout: DropoutConfig::new(config.attn_pdrop).init(),
            resid_dropout: DropoutConfig::new(config.resid_pdrop).init(),
            adapters: AdapterLayer::new(),
            n_head: config.n_head,
            head_dim: config.head_dim(),
        }
    }

    fn split_heads(&self, x: Tensor<3>) -> Tensor<4> {
        let [b, s, _] = x.dims();
        x.reshape([b, s, self.n_head, self.head_dim])
            .swap_dims(1, 2)
    }

    /// Attend over the cached and the new positions.
    ///
    /// - `x`: the `ln_1` output for the new positions, `[batch, seq, n_embd]`;
    /// - `bias`: additive attention bias `[batch or 1, 1, seq, past + seq]` from
    ///   [`attention_bias`] (0 where allowed, `f32::MIN` where masked);
    /// - `past`: the keys/values of earlier positions, if decoding incrementally.
    ///
    /// Returns the sub-layer output `resid_dropout(c_proj(context))`, `[batch, seq, n_embd]`
    /// (the adapter site and the residual add are the block's business), and the keys/values of
    /// all `past + seq` positions.
    pub fn forward(
        &self,
        x: Tensor<3>,
        bias: Tensor<4>,
        past: Option<LayerKv>,
    ) -> (Tensor<3>, LayerKv) {
        self.forward_with_prefix(x, bias, past, None)
    }

    /// [`Gpt2Attention::forward`] with prefix-tuning keys/values prepended after the cache
    /// (AdapterHub's hook): every query attends the prefix, which holds no position. The
    /// returned keys/values (the cache) never hold the prefix, so each decoding step prepends
    /// it exactly once and position ids are not shifted by it.
    pub fn forward_with_prefix(
        &self,
        x: Tensor<3>,
        bias: Tensor<4>,
        past: Option<LayerKv>,
        prefix: Option<&LayerPrefix>,
    ) -> (Tensor<3>, LayerKv) {
        let [b, s, d] = x.dims();
        let qkv = self.c_attn.forward(x);
        let q = self.split_heads(qkv.clone().narrow(2, 0, d));
        let k = self.split_heads(qkv.clone().narrow(2, d, d));
        let v = self.split_heads(qkv.narrow(2, 2 * d, d));
        let (k, v) = match past {
            Some(p) if !p.is_empty() => (
                Tensor::cat(vec![p.key, k], 2),
                Tensor::cat(vec![p.value, v], 2),
            ),
            _ => (k, v),
        };
        let present = LayerKv {
            key: k.clone(),
            value: v.clone(),
        };
        let (k, v, bias) = match prefix {
            Some(p) => {
                let (k, v) = p.prepend(k, v);
                (k, v, p.extend_bias(bias))
            }
            None => (k, v, bias),
        };
        // transformers (eager): (q k^T) / sqrt(head_dim), + mask, softmax, dropout, @ v.
        let scale = 1.0 / (self.head_dim as f32).sqrt();
        let probs = dropout(
            &self.attn_dropout,
            masked_softmax(q.matmul(k.swap_dims(2, 3)), bias, scale),
        );
        let context = probs.matmul(v).swap_dims(1, 2).reshape([b, s, d]);
        let out = dropout(&self.resid_dropout, self.c_proj.forward(context));
        (out, present)
    }
}

/// The additive attention bias `[batch, 1, seq, past + seq]` for `seq` new query positions after
/// `past` cached ones: 0 where a query may attend, `f32::MIN` where the key is in the future or
/// padding (what transformers adds). Built once per forward and shared by all blocks.
///
/// `attention_mask` is `[batch, past + seq]` with 1 for tokens and 0 for padding; without one
/// the bias is `[1, 1, seq, past + seq]` (broadcast over the batch).
pub fn attention_bias(
    attention_mask: Option<Tensor<2, Int>>,
    past: usize,
    seq: usize,
    device: &Device,
) -> Tensor<4> {
    let total = past + seq;
    // true above the (shifted) diagonal: key j is in the future of query i when j > past + i.
    let future =
        Tensor::<2, Bool>::tril_mask([seq, total], past as i64, device).reshape([1, 1, seq, total]);
    let masked = match attention_mask {
        Some(mask) => {
            let [b, _] = mask.dims();
            let padding = mask.equal_elem(0).reshape([b, 1, 1, total]);
            future
                .expand([b, 1, seq, total])
                .bool_or(padding.expand([b, 1, seq, total]))
        }
        None => future,
    };
    let dims = masked.dims();
    Tensor::<4>::zeros(dims, device).mask_fill(masked, f32::MIN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    #[test]
    fn bias_masks_future_and_padding_keys() {
        let device = Device::flex();
        let mask = Tensor::<2, Int>::from_data(TensorData::new(vec![1i64, 1, 0], [1, 3]), &device);
        let bias = attention_bias(Some(mask), 0, 3, &device);
        let got: Vec<bool> = bias.equal_elem(0.0).into_data().iter::<bool>().collect();
        #[rustfmt::skip]
        let expected = vec![
            true, false, false,
            true, true, false,
            true, true, false,
        ];
        assert_eq!(got, expected);
    }

    #[test]
    fn bias_with_past_lets_new_queries_see_the_cache() {
        let device = Device::flex();
        let bias = attention_bias(None, 2, 2, &device);
        assert_eq!(bias.dims(), [1, 1, 2, 4]);
        let got: Vec<bool> = bias.equal_elem(0.0).into_data().iter::<bool>().collect();
        assert_eq!(got, vec![true, true, true, false, true, true, true, true]);
    }
}
