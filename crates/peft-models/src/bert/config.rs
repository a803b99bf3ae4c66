//! BERT configuration: burn's [`BertConfig`] and the Hugging Face `config.json` it is read from.

use std::path::Path;

use burn::config::Config;
use serde::Deserialize;

use crate::error::{ModelError, Result};
use crate::json::{parse_json, read_json};
use crate::limits::InputLimits;

/// Architecture of a BERT encoder (post-LN), with Hugging Face's defaults for `bert-base-uncased`.
#[derive(Config, Debug, PartialEq)]
pub struct BertConfig {
    /// Vocabulary size. Default: 30522.
    #[config(default = 30522)]
    pub vocab_size: usize,
    /// Model width. Default: 768.
    #[config(default = 768)]
    pub hidden_size: usize,
    /// Number of encoder layers. Default: 12.
    #[config(default = 12)]
    pub num_hidden_layers: usize,
    /// Attention heads per layer. Default: 12.
    #[config(default = 12)]
    pub num_attention_heads: usize,
    /// Width of the feed-forward block. Default: 3072.
    #[config(default = 3072)]
    pub intermediate_size: usize,
    /// Feed-forward non-linearity. Default: `gelu` (erf form).
    #[config(default = "HiddenAct::Gelu")]
    pub hidden_act: HiddenAct,
    /// Dropout on embeddings and sub-layer outputs. Default: 0.1.
    #[config(default = 0.1)]
    pub hidden_dropout_prob: f64,
    /// Dropout on attention probabilities. Default: 0.1.
    #[config(default = 0.1)]
    pub attention_probs_dropout_prob: f64,
    /// Size of the learned position table. Default: 512.
    #[config(default = 512)]
    pub max_position_embeddings: usize,
    /// Number of token types (segments). Default: 2.
    #[config(default = 2)]
    pub type_vocab_size: usize,
    /// LayerNorm epsilon (BERT uses 1e-12, not burn's 1e-5). Default: 1e-12.
    #[config(default = 1e-12)]
    pub layer_norm_eps: f64,
    /// Padding token id (RoBERTa: also the position offset). Default: 0.
    #[config(default = 0)]
    pub pad_token_id: usize,
    /// Whether the model has the pooler (dense + tanh on `[CLS]`). Default: true.
    #[config(default = true)]
    pub add_pooling_layer: bool,
    /// How position ids are formed (BERT or RoBERTa). Default: `PositionScheme::Sequential`.
    #[config(default = "PositionScheme::Sequential")]
    pub position_scheme: PositionScheme,
}

/// How a BERT-family encoder numbers positions (selects the family: it is the only
/// architectural difference between BERT and RoBERTa, besides the checkpoint key prefix).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PositionScheme {
    /// BERT: positions `0..seq` in every row; usable length `max_position_embeddings`.
    #[default]
    Sequential,
    /// RoBERTa, XLM-RoBERTa, CamemBERT (fairseq, HF `create_position_ids_from_input_ids`):
    /// from the token ids, a pad token (`pad_token_id`) gets position `pad_token_id`, the k-th
    /// non-pad token of a row (k = 1, 2, ...) gets `pad_token_id + k`; usable length
    /// `max_position_embeddings - pad_token_id - 1` (514 -> 512 for roberta-base).
    PaddingOffset,
}

impl PositionScheme {
    /// The architecture name written into adapter files (`bert` or `roberta`).
    pub fn architecture(self) -> &'static str {
        match self {
            Self::Sequential => "bert",
            Self::PaddingOffset => "roberta",
        }
    }
}

/// Feed-forward activations found in BERT-family checkpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HiddenAct {
    /// GELU, erf form.
    Gelu,
    /// GELU, tanh approximation.
    #[serde(alias = "gelu_pytorch_tanh", alias = "gelu_fast")]
    GeluNew,
    /// ReLU.
    Relu,
    /// SiLU / swish.
    #[serde(alias = "swish")]
    Silu,
}

impl HiddenAct {
    /// Apply it.
    pub fn forward<const D: usize>(self, x: burn::tensor::Tensor<D>) -> burn::tensor::Tensor<D> {
        use burn::tensor::activation;
        match self {
            Self::Gelu => peft_core::activation::gelu(x),
            Self::GeluNew => activation::gelu_approximate(x),
            Self::Relu => activation::relu(x),
            Self::Silu => activation::silu(x),
        }
    }
}

/// The fields of a Hugging Face BERT `config.json` that matter here; unknown keys are ignored
/// (HF configs carry many), missing ones take Hugging Face's defaults.
#[derive(Clone, Debug, Deserialize)]
pub struct HfBertConfig {
    /// `model_type`, checked to be BERT-like if present.
    #[serde(default)]
    pub model_type: Option<String>,
    /// `vocab_size`.
    #[serde(default = "d_vocab")]
    pub vocab_size: usize,
    /// `hidden_size`.
    #[serde(default = "d_hidden")]
    pub hidden_size: usize,
    /// `num_hidden_layers`.
    #[serde(default = "d_layers")]
    pub num_hidden_layers: usize,
    /// `num_attention_heads`.
    #[serde(default = "d_heads")]
    pub num_attention_heads: usize,
    /// `intermediate_size`.
    #[serde(default = "d_intermediate")]
    pub intermediate_size: usize,
    /// `hidden_act`.
    #[serde(default = "d_act")]
    pub hidden_act: String,
    /// `hidden_dropout_prob`.
    #[serde(default = "d_dropout")]
    pub hidden_dropout_prob: f64,
    /// `attention_probs_dropout_prob`.
    #[serde(default = "d_dropout")]
    pub attention_probs_dropout_prob: f64,
    /// `max_position_embeddings`.
    #[serde(default = "d_positions")]
    pub max_position_embeddings: usize,
    /// `type_vocab_size`.
    #[serde(default = "d_types")]
    pub type_vocab_size: usize,
    /// `layer_norm_eps`.
    #[serde(default = "d_eps")]
    pub layer_norm_eps: f64,
    /// `pad_token_id`.
    #[serde(default)]
    pub pad_token_id: Option<usize>,
    /// `position_embedding_type`: only `absolute` is supported.
    #[serde(default)]
    pub position_embedding_type: Option<String>,
}

fn d_vocab() -> usize {
    30522
}
fn d_hidden() -> usize {
    768
}
fn d_layers() -> usize {
    12
}
fn d_heads() -> usize {
    12
}
fn d_intermediate() -> usize {
    3072
}
fn d_act() -> String {
    "gelu".into()
}
fn d_dropout() -> f64 {
    0.1
}
fn d_positions() -> usize {
    512
}
fn d_types() -> usize {
    2
}
fn d_eps() -> f64 {
    1e-12
}

impl HfBertConfig {
    /// Parse a `config.json` file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        read_json(path.as_ref())
    }

    /// Parse the text of a `config.json` (errors name the file `<inline>`).
    pub fn from_json(text: &str) -> Result<Self> {
        parse_json(text, Path::new("<inline>"))
    }
}

impl TryFrom<HfBertConfig> for BertConfig {
    type Error = ModelError;

    fn try_from(hf: HfBertConfig) -> Result<Self> {
        let invalid = |m: String| Err(ModelError::InvalidConfig(m));
        let position_scheme = match hf.model_type.as_deref() {
            None | Some("bert") => PositionScheme::Sequential,
            Some("roberta" | "xlm-roberta" | "camembert") => PositionScheme::PaddingOffset,
            Some(t) => return invalid(format!("model_type `{t}` is not a BERT model")),
        };
        if let Some(p) = hf.position_embedding_type.as_deref()
            && p != "absolute"
        {
            return invalid(format!(
                "position_embedding_type `{p}` is not supported (only `absolute`)"
            ));
        }
        for (name, v) in [
            ("vocab_size", hf.vocab_size),
            ("hidden_size", hf.hidden_size),
            ("num_hidden_layers", hf.num_hidden_layers),
            ("num_attention_heads", hf.num_attention_heads),
            ("intermediate_size", hf.intermediate_size),
            ("max_position_embeddings", hf.max_position_embeddings),
            ("type_vocab_size", hf.type_vocab_size),
        ] {
            if v == 0 {
                return invalid(format!("{name} must be positive"));
            }
        }
        if !hf.hidden_size.is_multiple_of(hf.num_attention_heads) {
            return invalid(format!(
                "hidden_size {} is not divisible by num_attention_heads {}",
                hf.hidden_size, hf.num_attention_heads
            ));
        }
        for (name, p) in [
            ("hidden_dropout_prob", hf.hidden_dropout_prob),
            (
                "attention_probs_dropout_prob",
                hf.attention_probs_dropout_prob,
            ),
        ] {
            if !(0.0..1.0).contains(&p) {
                return invalid(format!("{name} must be in [0, 1), got {p}"));
            }
        }
        if hf.layer_norm_eps.is_nan() || hf.layer_norm_eps <= 0.0 {
            return invalid(format!(
                "layer_norm_eps must be positive, got {}",
                hf.layer_norm_eps
            ));
        }
        let hidden_act: HiddenAct = serde_json::from_value(serde_json::Value::String(
            hf.hidden_act.clone(),
        ))
        .map_err(|_| {
            ModelError::InvalidConfig(format!("hidden_act `{}` is not supported", hf.hidden_act))
        })?;
        // transformers' defaults: BertConfig pad 0, RobertaConfig (and its kin) pad 1.
        let pad = hf.pad_token_id.unwrap_or(match position_scheme {
            PositionScheme::Sequential => 0,
            PositionScheme::PaddingOffset => 1,
        });
        if pad >= hf.vocab_size {
            return invalid(format!(
                "pad_token_id {pad} >= vocab_size {}",
                hf.vocab_size
            ));
        }
        if position_scheme == PositionScheme::PaddingOffset && hf.max_position_embeddings <= pad + 1
        {
            return invalid(format!(
                "max_position_embeddings {} leaves no position after the padding offset \
                 (pad_token_id {pad} + 1)",
                hf.max_position_embeddings
            ));
        }
        Ok(BertConfig::new()
            .with_vocab_size(hf.vocab_size)
            .with_hidden_size(hf.hidden_size)
            .with_num_hidden_layers(hf.num_hidden_layers)
            .with_num_attention_heads(hf.num_attention_heads)
            .with_intermediate_size(hf.intermediate_size)
            .with_hidden_act(hidden_act)
            .with_hidden_dropout_prob(hf.hidden_dropout_prob)
            .with_attention_probs_dropout_prob(hf.attention_probs_dropout_prob)
            .with_max_position_embeddings(hf.max_position_embeddings)
            .with_type_vocab_size(hf.type_vocab_size)
            .with_layer_norm_eps(hf.layer_norm_eps)
            .with_pad_token_id(pad)
            .with_position_scheme(position_scheme))
    }
}

impl BertConfig {
    /// Read and validate a Hugging Face `config.json`.
    pub fn from_hf_file(path: impl AsRef<Path>) -> Result<Self> {
        HfBertConfig::from_file(path)?.try_into()
    }

    /// Parse and validate the text of a Hugging Face `config.json`.
    pub fn from_hf_json(text: &str) -> Result<Self> {
        HfBertConfig::from_json(text)?.try_into()
    }

    /// Validate a config built in code (the same checks as for `config.json`).
    pub fn validate(&self) -> Result<()> {
        let hf = HfBertConfig {
            model_type: Some(
                match self.position_scheme {
                    PositionScheme::Sequential => "bert",
                    PositionScheme::PaddingOffset => "roberta",
                }
                .into(),
            ),
            vocab_size: self.vocab_size,
            hidden_size: self.hidden_size,
            num_hidden_layers: self.num_hidden_layers,
            num_attention_heads: self.num_attention_heads,
            intermediate_size: self.intermediate_size,
            hidden_act: "gelu".into(),
            hidden_dropout_prob: self.hidden_dropout_prob,
            attention_probs_dropout_prob: self.attention_probs_dropout_prob,
            max_position_embeddings: self.max_position_embeddings,
            type_vocab_size: self.type_vocab_size,
            layer_norm_eps: self.layer_norm_eps,
            pad_token_id: Some(self.pad_token_id),
            position_embedding_type: None,
        };
        BertConfig::try_from(hf).map(|_| ())
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads.max(1)
    }

    /// Longest usable sequence, special tokens included: `max_position_embeddings`, minus
    /// `pad_token_id + 1` under [`PositionScheme::PaddingOffset`].
    pub fn max_sequence_len(&self) -> usize {
        match self.position_scheme {
            PositionScheme::Sequential => self.max_position_embeddings,
            PositionScheme::PaddingOffset => self
                .max_position_embeddings
                .saturating_sub(self.pad_token_id + 1),
        }
    }

    /// The ids and lengths this model accepts (check data and tokenizers against them).
    pub fn input_limits(&self) -> InputLimits {
        InputLimits {
            vocab_size: self.vocab_size,
            max_len: self.max_sequence_len(),
            type_vocab_size: self.type_vocab_size,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<BertConfig> {
        let hf: HfBertConfig =
            serde_json::from_str(json).map_err(|e| ModelError::MalformedJson {
                path: "inline".into(),
                message: e.to_string(),
            })?;
        hf.try_into()
    }

    #[test]
    fn minilm_config_parses_with_unknown_keys() {
        let json = r#"{"_name_or_path": "x", "architectures": ["BertModel"], "attention_probs_dropout_prob": 0.1,
            "gradient_checkpointing": false, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
            "hidden_size": 384, "initializer_range": 0.02, "intermediate_size": 1536,
            "layer_norm_eps": 1e-12, "max_position_embeddings": 512, "model_type": "bert",
            "num_attention_heads": 12, "num_hidden_layers": 6, "pad_token_id": 0,
            "position_embedding_type": "absolute", "transformers_version": "4.8.2",
            "type_vocab_size": 2, "use_cache": true, "vocab_size": 30522}"#;
        let c = parse(json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (c.hidden_size, c.num_hidden_layers, c.head_dim()),
            (384, 6, 32)
        );
        assert_eq!(c.layer_norm_eps, 1e-12);
        assert_eq!(c.hidden_act, HiddenAct::Gelu);
    }

    #[test]
    fn inconsistent_and_malformed_configs_are_typed_errors() {
        let e = parse(r#"{"hidden_size": 100, "num_attention_heads": 12}"#);
        assert!(matches!(e, Err(ModelError::InvalidConfig(m)) if m.contains("not divisible")));
        let e = parse(r#"{"hidden_size": "big"}"#);
        assert!(matches!(e, Err(ModelError::MalformedJson { .. })));
        let e = parse(r#"{"hidden_act": "sigmoid"}"#);
        assert!(matches!(e, Err(ModelError::InvalidConfig(m)) if m.contains("sigmoid")));
        let e = parse(r#"{"model_type": "gpt2"}"#);
        assert!(matches!(e, Err(ModelError::InvalidConfig(_))));
        let e = parse(r#"{"num_hidden_layers": 0}"#);
        assert!(matches!(e, Err(ModelError::InvalidConfig(_))));
        let e = parse(r#"{"model_type": "roberta", "max_position_embeddings": 2}"#);
        assert!(matches!(e, Err(ModelError::InvalidConfig(m)) if m.contains("padding offset")));
    }

    #[test]
    fn roberta_family_uses_the_padding_offset_scheme() {
        for t in ["roberta", "xlm-roberta", "camembert"] {
            let c = parse(&format!(
                r#"{{"model_type": "{t}", "max_position_embeddings": 514, "type_vocab_size": 1}}"#
            ))
            .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(c.position_scheme, PositionScheme::PaddingOffset, "{t}");
            assert_eq!(c.pad_token_id, 1, "{t}: RobertaConfig's default pad id");
            assert_eq!(c.max_sequence_len(), 512, "{t}");
            assert_eq!(c.input_limits().type_vocab_size, 1);
        }
        let c = parse(r#"{"model_type": "bert"}"#).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.position_scheme, PositionScheme::Sequential);
        assert_eq!((c.pad_token_id, c.max_sequence_len()), (0, 512));
    }
}
