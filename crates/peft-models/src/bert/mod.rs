//! BERT (Devlin et al. 2019) and RoBERTa (Liu et al. 2019): a post-LN Transformer encoder with
//! adapter sites. RoBERTa differs only in its position ids ([`PositionScheme::PaddingOffset`],
//! set from `model_type` in `config.json`) and its checkpoint key prefix.
//!
//! Same file layout for every model family: `config.rs` (burn config + HF `config.json`),
//! `embeddings.rs`, `attention.rs`, `layer.rs`, `model.rs`, `weights.rs` (checkpoint names);
//! BERT also has `head.rs` (task heads and [`head::BertClassifier`]).

pub mod attention;
pub mod config;
pub mod embeddings;
pub mod head;
pub mod layer;
pub mod model;
pub mod weights;

pub use config::{BertConfig, HfBertConfig, HiddenAct, PositionScheme};
pub use model::{BertInput, BertModel, BertModelOutput, cls, mask_bias};
pub use weights::{BERT_KEY_REMAP, ROBERTA_KEY_REMAP};
