//! GPT-2 embeddings (token `wte` + learned position `wpe`, then `drop`) and the LM head tied to
//! `wte`.
//!
//! The tables are fields of [`super::Gpt2Model`] itself, as in the Hugging Face checkpoint
//! (`wte.weight`, `wpe.weight`); this file holds the maths.

use burn::nn::{Dropout, Embedding};
use burn::tensor::{Device, Int, Tensor};
use peft_core::PromptTuningModule;

/// Position ids `[batch, seq]`: `past..past + seq` for every row (transformers' default in a
/// plain forward; it does not derive positions from the attention mask).
pub fn position_ids(batch: usize, past: usize, seq: usize, device: &Device) -> Tensor<2, Int> {
    Tensor::<1, Int>::arange(past as i64..(past + seq) as i64, device)
        .unsqueeze::<2>()
        .expand([batch, seq])
}

/// `drop(cat(prompt, wte[input_ids]) + wpe[positions])`: token ids `[batch, seq]`, after an
/// optional prompt-tuning prompt of `p` positions, at positions `past..past + p + seq` ->
/// `[batch, p + seq, n_embd]`.
///
/// The prompt goes in front of the token embeddings and takes positions like any token, as PEFT's
/// GPT-2 prompt tuning does (it feeds `inputs_embeds = cat(prompt, wte(ids))` and drops
/// `position_ids`). `past + p + seq` must not exceed the position table (checked by
/// [`super::Gpt2Model::try_forward`]).
pub fn embed(
    wte: &Embedding,
    wpe: &Embedding,
    drop: &Dropout,
    input_ids: Tensor<2, Int>,
    past: usize,
    prompt: Option<&PromptTuningModule>,
) -> Tensor<3> {
    let tokens = wte.forward(input_ids);
    let x = match prompt {
        Some(prompt) => prompt.combine(tokens),
        None => tokens,
    };
    let [batch, seq, _] = x.dims();
    let positions = position_ids(batch, past, seq, &x.device());
    drop.forward(x + wpe.forward(positions))
}

/// The tied LM head: `hidden @ wte^T`, `[batch, seq, n_embd]` -> `[batch, seq, vocab]`.
pub fn tied_logits(hidden: Tensor<3>, wte: &Embedding) -> Tensor<3> {
    burn::tensor::module::linear(hidden, wte.weight.val().transpose(), None)
}
