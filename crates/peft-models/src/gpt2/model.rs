//! The GPT-2 decoder with its tied LM head, and the causal language-modelling loss.

use burn::module::Module;
use burn::nn::{
    Dropout, DropoutConfig, Embedding, EmbeddingConfig, Initializer, LayerNorm, LayerNormConfig,
};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor};
use peft_core::{
    AdapterHost, AdapterLayer, AdapterSite, BaseModelInfo, LinearSite, LinearTarget, PrefixPool,
};

use super::attention::{LayerKv, attention_bias};
use super::block::Gpt2Block;
use super::config::Gpt2Config;
use super::embeddings::{embed, tied_logits};
use crate::error::{ModelError, Result};
use crate::limits::InputLimits;

/// GPT-2 with adapter sites and its LM head (HF `GPT2LMHeadModel`; the head is tied to `wte`, so
/// it has no parameter of its own).
///
/// Field names are the checkpoint's (without the `transformer.` prefix): `wte`, `wpe`, `h.N.…`,
/// `ln_f`. Adapters live at `h.N.attn.adapters` and `h.N.mlp.adapters`.
#[derive(Module, Debug)]
pub struct Gpt2Model {
    /// Token embeddings `[vocab_size, n_embd]`, also the LM head.
    pub wte: Embedding,
    /// Position embeddings `[n_positions, n_embd]`.
    pub wpe: Embedding,
    /// Dropout on the embeddings (`embd_pdrop`).
    pub drop: Dropout,
    /// The blocks.
    pub h: Vec<Gpt2Block>,
    /// Final LayerNorm.
    pub ln_f: LayerNorm,
    /// Size of the position table (longest accepted sequence).
    pub n_positions: usize,
    /// Model width.
    pub n_embd: usize,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// End-of-sequence token id from the config.
    pub eos_token_id: u32,
    /// Attention heads per block.
    pub n_head: usize,
    /// The prefix-tuning adapters (`prefix.adapters.<name>.…`).
    pub prefix: PrefixPool,
}

impl Gpt2Config {
    /// Build a GPT-2 with random weights (use [`Gpt2Model::from_pretrained`] for real ones).
    pub fn init(&self, device: &Device) -> Result<Gpt2Model> {
        self.validate()?;
        let normal = Initializer::Normal {
            mean: 0.0,
            std: self.initializer_range,
        };
        Ok(Gpt2Model {
            wte: EmbeddingConfig::new(self.vocab_size, self.n_embd)
                .with_initializer(normal.clone())
                .init(device),
            wpe: EmbeddingConfig::new(self.n_positions, self.n_embd)
                .with_initializer(normal)
                .init(device),
            drop: DropoutConfig::new(self.embd_pdrop).init(),
            h: (0..self.n_layer)
                .map(|_| Gpt2Block::new(self, device))
                .collect(),
            ln_f: LayerNormConfig::new(self.n_embd)
                .with_epsilon(self.layer_norm_epsilon)
                .init(device),
            n_positions: self.n_positions,
            n_embd: self.n_embd,
            vocab_size: self.vocab_size,
            eos_token_id: self.eos_token_id,
            n_head: self.n_head,
            prefix: PrefixPool::new(),
        })
    }
}

impl Gpt2Model {
    /// The device the weights live on.
    pub fn device(&self) -> Device {
        self.wte.weight.lazy_device()
    }

    /// Check that `input_ids` `[batch, seq]` (after `past` cached positions) and the optional
    /// `attention_mask` `[batch, past + seq]` fit the model: non-empty, `past + seq <= n_positions`,
    /// token ids in `0..vocab_size` (this reads the ids back from the device).
    pub fn check_input(
        &self,
        input_ids: &Tensor<2, Int>,
        attention_mask: Option<&Tensor<2, Int>>,
        past: usize,
    ) -> Result<()> {
        let [b, s] = input_ids.dims();
        if s == 0 || b == 0 {
            return Err(ModelError::InvalidInput("empty batch or sequence".into()));
        }
        let limits = self.input_limits();
        limits.check_len(past + s)?;
        peft_core::check_active_batch(self, b)?;
        if let Some(mask) = attention_mask
            && mask.dims() != [b, past + s]
        {
            return Err(ModelError::InvalidInput(format!(
                "attention_mask has shape {:?}, expected {:?}",
                mask.dims(),
                [b, past + s]
            )));
        }
        limits.check_token_id_range(
            input_ids.clone().min().into_scalar::<i64>(),
            input_ids.clone().max().into_scalar::<i64>(),
        )
    }

    /// The ids and lengths this model accepts: `n_positions` tokens (cache included), ids in
    /// `0..vocab_size`, one segment type.
    pub fn input_limits(&self) -> InputLimits {
        InputLimits {
            vocab_size: self.vocab_size,
            max_len: self.n_positions,
            type_vocab_size: 1,
        }
    }

    /// [`Gpt2Model::forward`] after [`Gpt2Model::check_input`]: errors instead of panicking on
    /// too long sequences, bad shapes or out-of-range ids.
    pub fn try_forward(
        &self,
        input_ids: Tensor<2, Int>,
        attention_mask: Option<Tensor<2, Int>>,
    ) -> Result<Tensor<3>> {
        self.check_input(&input_ids, attention_mask.as_ref(), 0)?;
        Ok(self.forward(input_ids, attention_mask))
    }

    /// Next-token logits `[batch, seq, vocab_size]` for token ids `[batch, seq]` and an optional
    /// padding mask `[batch, seq]` (1 = token, 0 = padding; all ones when absent). Positions are
    /// `0..seq` for every row. Requires `seq <= n_positions` (see [`Gpt2Model::try_forward`]).
    pub fn forward(
        &self,
        input_ids: Tensor<2, Int>,
        attention_mask: Option<Tensor<2, Int>>,
    ) -> Tensor<3> {
        self.logits(self.hidden_states(input_ids, attention_mask))
    }

    /// The final hidden states (after `ln_f`, what transformers calls `last_hidden_state`),
    /// `[batch, seq, n_embd]`, for the same inputs as [`Gpt2Model::forward`].
    pub fn hidden_states(
        &self,
        input_ids: Tensor<2, Int>,
        attention_mask: Option<Tensor<2, Int>>,
    ) -> Tensor<3> {
        self.forward_blocks(input_ids, attention_mask, Vec::new()).0
    }

    /// The tied LM head: `[batch, seq, n_embd]` -> `[batch, seq, vocab_size]`.
    pub fn logits(&self, hidden: Tensor<3>) -> Tensor<3> {
        tied_logits(hidden, &self.wte)
    }

    /// Embeddings, blocks and `ln_f` for `input_ids` `[batch, seq]` after the cached positions in
    /// `past` (one entry per block, or empty for none). `attention_mask` is `[batch, past + seq]`.
    /// Returns the final hidden states `[batch, seq, n_embd]` and every block's keys/values.
    pub(crate) fn forward_blocks(
        &self,
        input_ids: Tensor<2, Int>,
        attention_mask: Option<Tensor<2, Int>>,
        past: Vec<LayerKv>,
    ) -> (Tensor<3>, Vec<LayerKv>) {
        let past_len = past.first().map_or(0, LayerKv::len);
        let [_, seq] = input_ids.dims();
        let device = input_ids.device();
        // One bias for all blocks: causal + padding.
        let bias = attention_bias(attention_mask, past_len, seq, &device);
        let x = embed(&self.wte, &self.wpe, &self.drop, input_ids, past_len);
        // A `Parallel` adapter setup runs every adapter on its own copy of the batch (the cache
        // of such a run already holds the copies).
        let channels = peft_core::parallel_channels(self);
        let mut x = peft_core::replicate_batch(x, channels);
        let bias = if bias.dims()[0] > 1 {
            peft_core::replicate_batch(bias, channels)
        } else {
            bias
        };
        let mut past = past.into_iter();
        let mut present = Vec::with_capacity(self.h.len());
        let prefixes = self.prefix.layer_prefixes(self.h.len(), x.dims()[0]);
        for (block, prefix) in self.h.iter().zip(&prefixes) {
            let (out, kv) =
                block.forward_with_prefix(x, bias.clone(), past.next(), prefix.as_ref());
            x = out;
            present.push(kv);
        }
        (peft_core::kernels::layer_norm(&self.ln_f, x), present)
    }

    /// Description of this base model for adapter files.
    pub fn base_info(&self) -> BaseModelInfo {
        BaseModelInfo {
            architecture: "gpt2".into(),
            hidden_size: self.n_embd,
            num_layers: self.h.len(),
            name_or_path: None,
        }
    }
}

impl AdapterHost for Gpt2Model {
    fn num_layers(&self) -> usize {
        self.h.len()
    }

    fn d_model(&self) -> usize {
        self.n_embd
    }

    fn prefix_pool(&self) -> Option<&PrefixPool> {
        Some(&self.prefix)
    }

    fn prefix_pool_mut(&mut self) -> Option<&mut PrefixPool> {
        Some(&mut self.prefix)
    }

    fn num_attention_heads(&self) -> usize {
        self.n_head
    }

    fn attention_dropout(&self) -> f64 {
        self.h.first().map_or(0.0, |b| b.attn.attn_dropout.prob)
    }

    fn adapter_layer(&self, layer: usize, site: AdapterSite) -> Option<&AdapterLayer> {
        let block = self.h.get(layer)?;
        Some(match site {
            AdapterSite::AttentionOutput => &block.attn.adapters,
            AdapterSite::FeedForwardOutput => &block.mlp.adapters,
        })
    }

    fn adapter_layer_mut(&mut self, layer: usize, site: AdapterSite) -> Option<&mut AdapterLayer> {
        let block = self.h.get_mut(layer)?;
        Some(match site {
            AdapterSite::AttentionOutput => &mut block.attn.adapters,
            AdapterSite::FeedForwardOutput => &mut block.mlp.adapters,
        })
    }

    fn linear_site(&self, layer: usize, target: LinearTarget) -> Option<&LinearSite> {
        let block = self.h.get(layer)?;
        Some(match target {
            LinearTarget::QueryKeyValue => &block.attn.c_attn,
            LinearTarget::AttentionOutput => &block.attn.c_proj,
            LinearTarget::FeedForwardIn => &block.mlp.c_fc,
            LinearTarget::FeedForwardOut => &block.mlp.c_proj,
            LinearTarget::Query | LinearTarget::Key | LinearTarget::Value => return None,
        })
    }

    fn linear_site_mut(&mut self, layer: usize, target: LinearTarget) -> Option<&mut LinearSite> {
        let block = self.h.get_mut(layer)?;
        Some(match target {
            LinearTarget::QueryKeyValue => &mut block.attn.c_attn,
            LinearTarget::AttentionOutput => &mut block.attn.c_proj,
            LinearTarget::FeedForwardIn => &mut block.mlp.c_fc,
            LinearTarget::FeedForwardOut => &mut block.mlp.c_proj,
            LinearTarget::Query | LinearTarget::Key | LinearTarget::Value => return None,
        })
    }
}

/// Causal language-modelling loss: mean next-token cross-entropy over the real targets.
///
/// - `logits`: `[batch, seq, vocab]` (position `t` predicts token `t + 1`);
/// - `input_ids`: `[batch, seq]`, the targets after shifting by one;
/// - `attention_mask`: `[batch, seq]`, 1 = token, 0 = padding; a target that is padding is
///   ignored (transformers' `labels = -100`).
///
/// Returns `[1]`. With fewer than two positions or no real target there is nothing to predict
/// and the loss is 0 (still connected to `logits`, with zero gradient).
pub fn causal_lm_loss(
    logits: Tensor<3>,
    input_ids: Tensor<2, Int>,
    attention_mask: Tensor<2, Int>,
) -> Tensor<1> {
    let [b, s, v] = logits.dims();
    if s < 2 || b == 0 || v == 0 {
        return logits.sum().mul_scalar(0.0);
    }
    let log_probs = log_softmax(logits.narrow(1, 0, s - 1), 2);
    let targets = input_ids.narrow(1, 1, s - 1).reshape([b, s - 1, 1]);
    let weights = attention_mask.narrow(1, 1, s - 1).float();
    let picked = log_probs.gather(2, targets).reshape([b, s - 1]);
    let count = weights.clone().sum().clamp_min(1.0);
    (picked * weights).sum().neg() / count
}
