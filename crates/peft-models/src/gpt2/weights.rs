//! Hugging Face GPT-2 checkpoint names -> our module paths. The only place that knows them.
//!
//! Our field names are the checkpoint's, so the only rewrite is the optional `transformer.`
//! prefix (present in `GPT2LMHeadModel` files, absent in `openai-community/gpt2`). Checkpoint
//! keys the model has no place for are reported as unused: the causal-mask buffers
//! `h.N.attn.bias` (bool) and `h.N.attn.masked_bias`, and `lm_head.weight` (tied to `wte`).
//! LayerNorm `weight`/`bias` become burn's `gamma`/`beta` through burn-store's PyTorch adapter;
//! `Conv1D` weights are `[in, out]` in the file and are not transposed (see [`super::conv1d`]).

use std::path::Path;

use burn::tensor::Device;
use peft_core::adapterhub::HubKeys;
use peft_core::peft::PeftKeys;
use peft_core::{AdapterSite, LinearTarget, Trainable};

use super::config::Gpt2Config;
use super::model::Gpt2Model;
use crate::checkpoint::{LoadReport, find_checkpoint, load_hf_checkpoint};
use crate::error::Result;

/// Hugging Face PEFT's module names for GPT-2's LoRA targets (`GPT2LMHeadModel` puts them
/// under `transformer.`; `c_attn` is the fused query/key/value `Conv1D`, so PEFT's LoRA on it
/// is one module over the fused output).
pub const GPT2_PEFT_KEYS: PeftKeys = PeftKeys {
    model_prefixes: &["transformer.", ""],
    targets: &[
        (LinearTarget::QueryKeyValue, "h.{i}.attn.c_attn"),
        (LinearTarget::AttentionOutput, "h.{i}.attn.c_proj"),
        (LinearTarget::FeedForwardIn, "h.{i}.mlp.c_fc"),
        (LinearTarget::FeedForwardOut, "h.{i}.mlp.c_proj"),
    ],
};

/// Checkpoint key -> module path rewrites: the optional `transformer.` prefix.
pub const GPT2_KEY_REMAP: [(&str, &str); 1] = [(r"^transformer\.", "")];

/// AdapterHub's names for GPT-2's adapter sites (`models/gpt2/mixin_gpt2.py`: the block's
/// `attention_adapters` and `output_adapters`), under `transformer.` (`GPT2LMHeadModel`,
/// `GPT2AdapterModel`); ours live in the attention and MLP modules.
pub const GPT2_HUB_KEYS: HubKeys = HubKeys {
    prefixes: &["transformer."],
    sites: &[
        (
            AdapterSite::AttentionOutput,
            "h.{i}.attention_adapters",
            "h.{i}.attn",
        ),
        (
            AdapterSite::FeedForwardOutput,
            "h.{i}.output_adapters",
            "h.{i}.mlp",
        ),
    ],
    our_adapters: "adapters",
    our_fusions: "adapters",
    our_prefix: "",
    linear: &[
        (LinearTarget::QueryKeyValue, "h.{i}.attn.c_attn"),
        (LinearTarget::FeedForwardIn, "h.{i}.mlp.c_fc"),
        (LinearTarget::FeedForwardOut, "h.{i}.mlp.c_proj"),
    ],
    self_attention: "h.{i}.attn",
};

/// Module paths that a base GPT-2 checkpoint does not hold: adapters.
pub fn gpt2_optional_paths() -> Trainable {
    Trainable::adapters()
}

impl Gpt2Model {
    /// Load weights from a checkpoint file (`.safetensors` or a PyTorch `.bin`) into this model;
    /// adapters keep their values.
    pub fn load_checkpoint(&mut self, path: impl AsRef<Path>) -> Result<LoadReport> {
        load_hf_checkpoint(self, path, &GPT2_KEY_REMAP, &gpt2_optional_paths())
    }

    /// Build from a Hugging Face model directory: `config.json` plus `model.safetensors` or
    /// `pytorch_model.bin`.
    pub fn from_pretrained(dir: impl AsRef<Path>, device: &Device) -> Result<(Self, LoadReport)> {
        let dir = dir.as_ref();
        Self::from_pretrained_file(dir.join("config.json"), find_checkpoint(dir)?, device)
    }

    /// Build from a `config.json` and a checkpoint file given separately.
    pub fn from_pretrained_file(
        config: impl AsRef<Path>,
        checkpoint: impl AsRef<Path>,
        device: &Device,
    ) -> Result<(Self, LoadReport)> {
        let config = Gpt2Config::from_hf_file(config)?;
        let mut model = config.init(device)?;
        let report = model.load_checkpoint(checkpoint)?;
        Ok((model, report))
    }
}
