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

    /// Check that `input_ids` `[batch, seq]` (after `past` cached tokens, a cached prompt not
    /// counted) and the optional `attention_mask` `[batch, past + seq]` fit the model: non-empty,
    /// `past + seq` within [`Gpt2Model::input_limits`] (`n_positions` less the active prompt),
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

    /// The ids and lengths this model accepts: `n_positions` less the active prompt's length
    /// tokens (cache included), ids in `0..vocab_size`, one segment type.
    pub fn input_limits(&self) -> InputLimits {
        InputLimits {
            vocab_size: self.vocab_size,
            max_len: self.n_positions.saturating_sub(self.prompt_len()),
            type_vocab_size: 1,
        }
    }

    /// Number of soft-prompt positions the active prompt-tuning adapter puts in front of the
    /// tokens (0 without one).
    pub fn prompt_len(&self) -> usize {
        self.prefix.active_prompt().map_or(0, |p| p.len())
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
    ///
    /// With an active prompt-tuning adapter of `p` tokens the prompt goes in front of the token
    /// embeddings, always attended, and the logits are `[batch, p + seq, vocab_size]` (PEFT's
    /// layout: positions `0..p + seq`, the prompt first); [`causal_lm_loss`] takes them as
    /// they are.
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
        self.forward_blocks(input_ids, attention_mask, Vec::new(), 0)
            .0
    }

    /// The tied LM head: `[batch, seq, n_embd]` -> `[batch, seq, vocab_size]`.
    pub fn logits(&self, hidden: Tensor<3>) -> Tensor<3> {
        tied_logits(hidden, &self.wte)
    }

    /// Embeddings, blocks and `ln_f` for `input_ids` `[batch, seq]` after the cached positions in
    /// `past` (one entry per block, or empty for none), the first `past_prompt` of which are a
    /// soft prompt. `attention_mask` covers the tokens only: `[batch, past tokens + seq]`.
    ///
    /// With an empty `past` the active prompt (if any, `p` positions) goes in front: the result
    /// is the final hidden states `[batch, p + seq, n_embd]` (`[batch, seq, n_embd]` otherwise),
    /// every block's keys/values (the prompt included) and the number of prompt positions they
    /// hold. A later step (non-empty `past`) reuses the cached prompt: it goes in once.
    pub(crate) fn forward_blocks(
        &self,
        input_ids: Tensor<2, Int>,
        attention_mask: Option<Tensor<2, Int>>,
        past: Vec<LayerKv>,
        past_prompt: usize,
    ) -> (Tensor<3>, Vec<LayerKv>, usize) {
        let past_len = past.first().map_or(0, LayerKv::len);
        let [batch, _] = input_ids.dims();
        let device = input_ids.device();
        let prompt = if past_len == 0 {
            self.prefix.active_prompt()
        } else {
            None
        };
        let prompt_len = past_prompt + prompt.map_or(0, |p| p.len());
        let x = embed(
            &self.wte, &self.wpe, &self.drop, input_ids, past_len, prompt,
        );
        let seq = x.dims()[1];
        // The prompt positions are always attended (PEFT prepends ones to the mask).
        let attention_mask = match attention_mask {
            Some(mask) if prompt_len > 0 => Some(Tensor::cat(
                vec![Tensor::ones([batch, prompt_len], &device), mask],
                1,
            )),
            other => other,
        };
        // One bias for all blocks: causal + padding.
        let bias = attention_bias(attention_mask, past_len, seq, &device);
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
        (
            peft_core::kernels::layer_norm(&self.ln_f, x),
            present,
            prompt_len,
        )
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

    /// In front of the token embeddings only (PEFT's GPT-2 prompt tuning; there is no BOS
    /// token to keep first).
    fn takes_prompt(&self, combine: peft_core::PromptCombine) -> bool {
        combine == peft_core::PromptCombine::Prefix
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

/// Which logits predict which tokens in a causal-LM batch (see [`next_token_targets`]).
#[derive(Clone, Debug)]
pub struct NextTokenTargets {
    /// The logits that predict a token, `[batch, n, vocab]`.
    pub logits: Tensor<3>,
    /// The token each predicts, `[batch, n]`.
    pub targets: Tensor<2, Int>,
    /// 1 where the target is a real token, 0 where it is padding, `[batch, n]`.
    pub weights: Tensor<2, Int>,
}

/// Line up next-token logits with their targets.
///
/// - `logits`: `[batch, len, vocab]`, position `t` predicting position `t + 1` of the sequence
///   the model saw;
/// - `input_ids`, `attention_mask`: `[batch, seq]` (1 = token, 0 = padding).
///
/// When `len == seq`, logits `0..seq - 1` predict tokens `1..seq` (`n = seq - 1`). When
/// `len > seq` the first `len - seq` positions are a prompt-tuning prompt that is never a target
/// (PEFT prepends label `-100` for it): logits `len - seq - 1..len - 1` predict all `seq`
/// tokens, the first one from the last prompt position (`n = seq`). `None` when nothing is
/// predicted (`n == 0`, an empty batch or vocabulary, or `len < seq`).
pub fn next_token_targets(
    logits: Tensor<3>,
    input_ids: Tensor<2, Int>,
    attention_mask: Tensor<2, Int>,
) -> Option<NextTokenTargets> {
    let [b, len, v] = logits.dims();
    let [_, seq] = input_ids.dims();
    if b == 0 || v == 0 || len < seq || seq == 0 {
        return None;
    }
    let prompt = len - seq;
    if prompt == 0 {
        if seq < 2 {
            return None;
        }
        return Some(NextTokenTargets {
            logits: logits.narrow(1, 0, seq - 1),
            targets: input_ids.narrow(1, 1, seq - 1),
            weights: attention_mask.narrow(1, 1, seq - 1),
        });
    }
    Some(NextTokenTargets {
        logits: logits.narrow(1, prompt - 1, seq),
        targets: input_ids,
        weights: attention_mask,
    })
}

/// Causal language-modelling loss: mean next-token cross-entropy over the real targets.
///
/// - `logits`: `[batch, len, vocab]` (position `t` predicts token `t + 1`), `len = seq`, or
///   `p + seq` with a `p`-token prompt in front (see [`next_token_targets`]);
/// - `input_ids`: `[batch, seq]`, the targets after shifting by one;
/// - `attention_mask`: `[batch, seq]`, 1 = token, 0 = padding; a target that is padding is
///   ignored (transformers' `labels = -100`).
///
/// Returns `[1]`. With nothing to predict or no real target the loss is 0 (still connected to
/// `logits`, with zero gradient).
pub fn causal_lm_loss(
    logits: Tensor<3>,
    input_ids: Tensor<2, Int>,
    attention_mask: Tensor<2, Int>,
) -> Tensor<1> {
    let Some(t) = next_token_targets(logits.clone(), input_ids, attention_mask) else {
        return logits.sum().mul_scalar(0.0);
    };
    let [b, n] = t.targets.dims();
    let log_probs = log_softmax(t.logits, 2);
    let weights = t.weights.float();
    let picked = log_probs
        .gather(2, t.targets.reshape([b, n, 1]))
        .reshape([b, n]);
    let count = weights.clone().sum().clamp_min(1.0);
    (picked * weights).sum().neg() / count
}
