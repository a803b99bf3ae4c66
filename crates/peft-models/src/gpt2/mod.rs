//! GPT-2 (Radford et al. 2019): a pre-LN Transformer decoder with a tied LM head, adapter sites
//! and incremental (KV-cached) generation.
//!
//! Same file layout as [`crate::bert`]: `config.rs` (burn config + HF `config.json`),
//! `embeddings.rs`, `attention.rs`, `block.rs` (one decoder block), `model.rs`, `weights.rs`
//! (checkpoint names), plus `conv1d.rs` (HF's `[in, out]` linear layer) and `generate.rs`
//! (KV cache, greedy and sampled decoding).
//!
//! Adapter sites follow AdapterHub's GPT-2 integration: `h.N.attn.adapter` after
//! `c_proj` + `resid_dropout`, `h.N.mlp.adapter` after the MLP's dropout, each before its
//! residual add, whose residual is the block stream before `ln_1` / `ln_2`.

pub mod attention;
pub mod block;
pub mod config;
pub mod conv1d;
pub mod embeddings;
pub mod generate;
pub mod model;
pub mod weights;

pub use attention::{Gpt2Attention, LayerKv, attention_bias};
pub use block::{Gpt2Block, Gpt2Mlp};
pub use config::{Gpt2Config, HfGpt2Config};
pub use conv1d::Conv1D;
pub use generate::{GenerationConfig, KvCache, SplitMix64};
pub use model::{Gpt2Model, NextTokenTargets, causal_lm_loss, next_token_targets};
pub use weights::GPT2_KEY_REMAP;
