//! One pre-LN GPT-2 block with its two adapter sites.

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, LayerNorm, LayerNormConfig};
use burn::tensor::{Device, Tensor};
use peft_core::dropout::dropout;
use peft_core::kernels::layer_norm;
use peft_core::{AdapterLayer, LinearSite};

use super::attention::{Gpt2Attention, LayerKv};
use super::config::Gpt2Config;
use super::conv1d::Conv1D;
use crate::bert::HiddenAct;

/// The feed-forward sub-layer (HF `h.N.mlp`), with the adapter of
/// [`peft_core::AdapterSite::FeedForwardOutput`].
#[derive(Module, Debug)]
pub struct Gpt2Mlp {
    /// Up-projection `n_embd -> n_inner`.
    pub c_fc: LinearSite,
    /// Down-projection `n_inner -> n_embd`.
    pub c_proj: LinearSite,
    /// Dropout on the output (`resid_pdrop`).
    pub dropout: Dropout,
    /// The adapters at [`peft_core::AdapterSite::FeedForwardOutput`] (after the output dropout,
    /// before the residual add).
    pub adapters: AdapterLayer,
    /// The non-linearity (`gelu_new` for GPT-2).
    #[module(skip)]
    pub act: HiddenAct,
}

impl Gpt2Mlp {
    /// Build with random weights.
    pub fn new(config: &Gpt2Config, device: &Device) -> Self {
        let std = config.initializer_range;
        Self {
            c_fc: Conv1D::new(config.n_embd, config.n_inner, std, device).into_site(),
            c_proj: Conv1D::new(config.n_inner, config.n_embd, std, device).into_site(),
            dropout: DropoutConfig::new(config.resid_pdrop).init(),
            adapters: AdapterLayer::new(),
            act: config.activation_function,
        }
    }

    /// The sub-layer output `dropout(c_proj(act(c_fc(x))))`, `[batch, seq, n_embd]` ->
    /// `[batch, seq, n_embd]` (without the adapter and the residual add).
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let up = self.act.forward(self.c_fc.forward(x));
        dropout(&self.dropout, self.c_proj.forward(up))
    }
}

/// One decoder block (HF `h.N`): `x + attn(ln_1(x))`, then `x + mlp(ln_2(x))`, each residual add
/// routed through its adapter site.
#[derive(Module, Debug)]
pub struct Gpt2Block {
    /// LayerNorm before attention.
    pub ln_1: LayerNorm,
    /// Causal self-attention.
    pub attn: Gpt2Attention,
    /// LayerNorm before the MLP.
    pub ln_2: LayerNorm,
    /// Feed-forward sub-layer.
    pub mlp: Gpt2Mlp,
}

impl Gpt2Block {
    /// Build with random weights.
    pub fn new(config: &Gpt2Config, device: &Device) -> Self {
        let ln = || {
            LayerNormConfig::new(config.n_embd)
                .with_epsilon(config.layer_norm_epsilon)
                .init(device)
        };
        Self {
            ln_1: ln(),
            attn: Gpt2Attention::new(config, device),
            ln_2: ln(),
            mlp: Gpt2Mlp::new(config, device),
        }
    }

    /// `x` `[batch, seq, n_embd]` -> `[batch, seq, n_embd]`, with `bias`
    /// `[batch or 1, 1, seq, past + seq]` and the cached keys/values of earlier positions.
    /// Also returns the keys/values of all `past + seq` positions.
    ///
    /// Adapter sites (AdapterHub's GPT-2 maths, pre-LN, no LayerNorm at the site): the residual
    /// of each site is the block stream *before* `ln_1` / `ln_2`.
    pub fn forward(
        &self,
        x: Tensor<3>,
        bias: Tensor<4>,
        past: Option<LayerKv>,
    ) -> (Tensor<3>, LayerKv) {
        self.forward_with_prefix(x, bias, past, None)
    }

    /// [`Gpt2Block::forward`] with a prefix-tuning prefix for this block's attention.
    pub fn forward_with_prefix(
        &self,
        x: Tensor<3>,
        bias: Tensor<4>,
        past: Option<LayerKv>,
        prefix: Option<&peft_core::LayerPrefix>,
    ) -> (Tensor<3>, LayerKv) {
        let residual = x.clone();
        let (attn, kv) =
            self.attn
                .forward_with_prefix(layer_norm(&self.ln_1, x), bias, past, prefix);
        let x = self.attn.adapters.forward(attn, residual, None);
        let residual = x.clone();
        let ff = self.mlp.forward(layer_norm(&self.ln_2, x));
        let x = self.mlp.adapters.forward(ff, residual, None);
        (x, kv)
    }
}
