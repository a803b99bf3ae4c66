//! Hugging Face BERT checkpoint names -> our module paths. The only place that knows them.

use std::path::Path;

use burn::tensor::Device;
use peft_core::adapterhub::HubKeys;
use peft_core::peft::PeftKeys;
use peft_core::{AdapterSite, LinearTarget, Trainable};

use super::config::{BertConfig, PositionScheme};
use super::model::BertModel;
use crate::checkpoint::{LoadReport, find_checkpoint, load_hf_checkpoint};
use crate::error::Result;

/// Hugging Face PEFT's module names for BERT's LoRA targets: `BertModel`'s own names, under
/// `bert.` in `BertFor*` models (and `roberta.` for RoBERTa); we write `BertModel`'s.
pub const BERT_PEFT_KEYS: PeftKeys = PeftKeys {
    model_prefixes: &["", "bert.", "roberta."],
    targets: &BERT_PEFT_TARGETS,
};

/// The same for `BertForSequenceClassification` files (PEFT's `SEQ_CLS`): we write `bert.`.
pub const BERT_SEQ_CLS_PEFT_KEYS: PeftKeys = PeftKeys {
    model_prefixes: &["bert.", "", "roberta."],
    targets: &BERT_PEFT_TARGETS,
};

const BERT_PEFT_TARGETS: [(LinearTarget, &str); 6] = [
    (
        LinearTarget::Query,
        "encoder.layer.{i}.attention.self.query",
    ),
    (LinearTarget::Key, "encoder.layer.{i}.attention.self.key"),
    (
        LinearTarget::Value,
        "encoder.layer.{i}.attention.self.value",
    ),
    (
        LinearTarget::AttentionOutput,
        "encoder.layer.{i}.attention.output.dense",
    ),
    (
        LinearTarget::FeedForwardIn,
        "encoder.layer.{i}.intermediate.dense",
    ),
    (
        LinearTarget::FeedForwardOut,
        "encoder.layer.{i}.output.dense",
    ),
];

/// Checkpoint key -> module path rewrites: optional `bert.` prefix (`BertFor*` heads),
/// `LayerNorm` -> `layer_norm`, `attention.self` -> `attention.self_attn`.
pub const BERT_KEY_REMAP: [(&str, &str); 3] = [
    (r"^bert\.", ""),
    (r"\.LayerNorm\.", ".layer_norm."),
    (r"\.attention\.self\.", ".attention.self_attn."),
];

/// The same for RoBERTa checkpoints, whose `RobertaFor*` heads prefix keys with `roberta.`
/// (XLM-RoBERTa and CamemBERT checkpoints use it too).
pub const ROBERTA_KEY_REMAP: [(&str, &str); 3] = [
    (r"^roberta\.", ""),
    (r"\.LayerNorm\.", ".layer_norm."),
    (r"\.attention\.self\.", ".attention.self_attn."),
];

/// AdapterHub's names for BERT's adapter sites (`adapters` 1.3.0, `models/bert/mixin_bert.py`):
/// the same module paths as ours, under `bert.` in `BertAdapterModel` files (none for
/// `adapters.init(BertModel)`).
pub const BERT_HUB_KEYS: HubKeys = HubKeys {
    prefixes: &["bert."],
    sites: &BERT_HUB_SITES,
    our_adapters: "adapters",
    our_fusions: "adapters",
    our_prefix: "",
    linear: &[
        (
            LinearTarget::Query,
            "encoder.layer.{i}.attention.self.query",
        ),
        (LinearTarget::Key, "encoder.layer.{i}.attention.self.key"),
        (
            LinearTarget::Value,
            "encoder.layer.{i}.attention.self.value",
        ),
        (
            LinearTarget::FeedForwardIn,
            "encoder.layer.{i}.intermediate.dense",
        ),
        (
            LinearTarget::FeedForwardOut,
            "encoder.layer.{i}.output.dense",
        ),
    ],
    self_attention: "encoder.layer.{i}.attention.self",
};

/// The same for RoBERTa (`roberta.` in `RobertaAdapterModel` files).
pub const ROBERTA_HUB_KEYS: HubKeys = HubKeys {
    prefixes: &["roberta."],
    ..BERT_HUB_KEYS
};

const BERT_HUB_SITES: [(AdapterSite, &str, &str); 2] = [
    (
        AdapterSite::AttentionOutput,
        "encoder.layer.{i}.attention.output",
        "encoder.layer.{i}.attention.output",
    ),
    (
        AdapterSite::FeedForwardOutput,
        "encoder.layer.{i}.output",
        "encoder.layer.{i}.output",
    ),
];

/// AdapterHub's key names for a model family.
pub fn hub_keys(scheme: PositionScheme) -> HubKeys {
    match scheme {
        PositionScheme::Sequential => BERT_HUB_KEYS,
        PositionScheme::PaddingOffset => ROBERTA_HUB_KEYS,
    }
}

/// The key rewrites for a model family.
pub fn key_remap(scheme: PositionScheme) -> &'static [(&'static str, &'static str)] {
    match scheme {
        PositionScheme::Sequential => &BERT_KEY_REMAP,
        PositionScheme::PaddingOffset => &ROBERTA_KEY_REMAP,
    }
}

/// Module paths that a base BERT checkpoint does not hold: adapters (and, in a wrapper,
/// heads, which callers add to the selection).
pub fn bert_optional_paths() -> Trainable {
    Trainable::adapters()
}

impl BertModel {
    /// Load weights from a checkpoint file into this model (adapters keep their values).
    pub fn load_checkpoint(&mut self, path: impl AsRef<Path>) -> Result<LoadReport> {
        let remap = key_remap(self.embeddings.position_scheme);
        load_hf_checkpoint(self, path, remap, &bert_optional_paths())
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
        let config = BertConfig::from_hf_file(config)?;
        let mut model = config.init(device)?;
        let report = model.load_checkpoint(checkpoint)?;
        Ok((model, report))
    }
}
