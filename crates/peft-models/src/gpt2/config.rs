//! GPT-2 configuration: burn's [`Gpt2Config`] and the Hugging Face `config.json` it is read from.

use std::path::Path;

use burn::config::Config;
use serde::Deserialize;

use crate::bert::HiddenAct;
use crate::error::{ModelError, Result};
use crate::json::{parse_json, read_json};

/// Architecture of a GPT-2 decoder (pre-LN, tied LM head), with Hugging Face's defaults for
/// `openai-community/gpt2` (124M).
#[derive(Config, Debug, PartialEq)]
pub struct Gpt2Config {
    /// Vocabulary size. Default: 50257.
    #[config(default = 50257)]
    pub vocab_size: usize,
    /// Size of the learned position table (longest sequence). Default: 1024.
    #[config(default = 1024)]
    pub n_positions: usize,
    /// Model width. Default: 768.
    #[config(default = 768)]
    pub n_embd: usize,
    /// Number of Transformer blocks. Default: 12.
    #[config(default = 12)]
    pub n_layer: usize,
    /// Attention heads per block. Default: 12.
    #[config(default = 12)]
    pub n_head: usize,
    /// Width of the MLP (HF `n_inner`, `null` meaning `4 * n_embd`). Default: 3072.
    #[config(default = 3072)]
    pub n_inner: usize,
    /// MLP non-linearity. Default: `gelu_new` (tanh approximation).
    #[config(default = "HiddenAct::GeluNew")]
    pub activation_function: HiddenAct,
    /// Dropout on the attention and MLP outputs (HF `resid_pdrop`). Default: 0.1.
    #[config(default = 0.1)]
    pub resid_pdrop: f64,
    /// Dropout on the embeddings (HF `embd_pdrop`). Default: 0.1.
    #[config(default = 0.1)]
    pub embd_pdrop: f64,
    /// Dropout on the attention probabilities (HF `attn_pdrop`). Default: 0.1.
    #[config(default = 0.1)]
    pub attn_pdrop: f64,
    /// LayerNorm epsilon. Default: 1e-5.
    #[config(default = 1e-5)]
    pub layer_norm_epsilon: f64,
    /// Standard deviation of the random initialisation (HF `initializer_range`). Default: 0.02.
    #[config(default = 0.02)]
    pub initializer_range: f64,
    /// Beginning-of-sequence token id. Default: 50256.
    #[config(default = 50256)]
    pub bos_token_id: u32,
    /// End-of-sequence token id (also used for padding by most GPT-2 setups). Default: 50256.
    #[config(default = 50256)]
    pub eos_token_id: u32,
}

/// The fields of a Hugging Face GPT-2 `config.json` that matter here; unknown keys are ignored,
/// missing ones take Hugging Face's defaults.
#[derive(Clone, Debug, Deserialize)]
pub struct HfGpt2Config {
    /// `model_type`, checked to be `gpt2` if present.
    #[serde(default)]
    pub model_type: Option<String>,
    /// `vocab_size`.
    #[serde(default = "d_vocab")]
    pub vocab_size: usize,
    /// `n_positions`.
    #[serde(default = "d_positions")]
    pub n_positions: usize,
    /// `n_embd`.
    #[serde(default = "d_embd")]
    pub n_embd: usize,
    /// `n_layer`.
    #[serde(default = "d_layer")]
    pub n_layer: usize,
    /// `n_head`.
    #[serde(default = "d_head")]
    pub n_head: usize,
    /// `n_inner` (`null` or absent: `4 * n_embd`).
    #[serde(default)]
    pub n_inner: Option<usize>,
    /// `activation_function`.
    #[serde(default = "d_act")]
    pub activation_function: String,
    /// `resid_pdrop`.
    #[serde(default = "d_dropout")]
    pub resid_pdrop: f64,
    /// `embd_pdrop`.
    #[serde(default = "d_dropout")]
    pub embd_pdrop: f64,
    /// `attn_pdrop`.
    #[serde(default = "d_dropout")]
    pub attn_pdrop: f64,
    /// `layer_norm_epsilon`.
    #[serde(default = "d_eps")]
    pub layer_norm_epsilon: f64,
    /// `initializer_range`.
    #[serde(default = "d_init")]
    pub initializer_range: f64,
    /// `bos_token_id`.
    #[serde(default = "d_token")]
    pub bos_token_id: u32,
    /// `eos_token_id`.
    #[serde(default = "d_token")]
    pub eos_token_id: u32,
    /// `scale_attn_weights`: must be true (scores divided by `sqrt(head_dim)`).
    #[serde(default = "d_true")]
    pub scale_attn_weights: bool,
    /// `scale_attn_by_inverse_layer_idx`: not supported (must be false).
    #[serde(default)]
    pub scale_attn_by_inverse_layer_idx: bool,
    /// `reorder_and_upcast_attn`: not supported (must be false).
    #[serde(default)]
    pub reorder_and_upcast_attn: bool,
    /// `add_cross_attention`: not supported (must be false).
    #[serde(default)]
    pub add_cross_attention: bool,
    /// `tie_word_embeddings`: must be true (the LM head is the token embedding).
    #[serde(default = "d_true")]
    pub tie_word_embeddings: bool,
}

fn d_vocab() -> usize {
    50257
}
fn d_positions() -> usize {
    1024
}
fn d_embd() -> usize {
    768
}
fn d_layer() -> usize {
    12
}
fn d_head() -> usize {
    12
}
fn d_act() -> String {
    "gelu_new".into()
}
fn d_dropout() -> f64 {
    0.1
}
fn d_eps() -> f64 {
    1e-5
}
fn d_init() -> f64 {
    0.02
}
fn d_token() -> u32 {
    50256
}
fn d_true() -> bool {
    true
}

impl HfGpt2Config {
    /// Parse a `config.json` file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        read_json(path.as_ref())
    }

    /// Parse the text of a `config.json` (errors name the file `<inline>`).
    pub fn from_json(text: &str) -> Result<Self> {
        parse_json(text, Path::new("<inline>"))
    }
}

impl TryFrom<HfGpt2Config> for Gpt2Config {
    type Error = ModelError;

    fn try_from(hf: HfGpt2Config) -> Result<Self> {
        let invalid = |m: String| Err(ModelError::InvalidConfig(m));
        if let Some(t) = hf.model_type.as_deref()
            && t != "gpt2"
        {
            return invalid(format!("model_type `{t}` is not a GPT-2 model"));
        }
        for (name, set, want) in [
            ("scale_attn_weights", hf.scale_attn_weights, true),
            (
                "scale_attn_by_inverse_layer_idx",
                hf.scale_attn_by_inverse_layer_idx,
                false,
            ),
            ("reorder_and_upcast_attn", hf.reorder_and_upcast_attn, false),
            ("add_cross_attention", hf.add_cross_attention, false),
            ("tie_word_embeddings", hf.tie_word_embeddings, true),
        ] {
            if set != want {
                return invalid(format!("{name} = {set} is not supported (only {want})"));
            }
        }
        let n_inner = match hf.n_inner {
            Some(n) => n,
            None => hf.n_embd.checked_mul(4).ok_or_else(|| {
                ModelError::InvalidConfig(format!("n_embd {} is too large", hf.n_embd))
            })?,
        };
        for (name, v) in [
            ("vocab_size", hf.vocab_size),
            ("n_positions", hf.n_positions),
            ("n_embd", hf.n_embd),
            ("n_layer", hf.n_layer),
            ("n_head", hf.n_head),
            ("n_inner", n_inner),
        ] {
            if v == 0 {
                return invalid(format!("{name} must be positive"));
            }
        }
        if !hf.n_embd.is_multiple_of(hf.n_head) {
            return invalid(format!(
                "n_embd {} is not divisible by n_head {}",
                hf.n_embd, hf.n_head
            ));
        }
        for (name, p) in [
            ("resid_pdrop", hf.resid_pdrop),
            ("embd_pdrop", hf.embd_pdrop),
            ("attn_pdrop", hf.attn_pdrop),
        ] {
            if !(0.0..1.0).contains(&p) {
                return invalid(format!("{name} must be in [0, 1), got {p}"));
            }
        }
        if hf.layer_norm_epsilon.is_nan() || hf.layer_norm_epsilon <= 0.0 {
            return invalid(format!(
                "layer_norm_epsilon must be positive, got {}",
                hf.layer_norm_epsilon
            ));
        }
        if !(hf.initializer_range.is_finite() && hf.initializer_range >= 0.0) {
            return invalid(format!(
                "initializer_range must be finite and non-negative, got {}",
                hf.initializer_range
            ));
        }
        let act: HiddenAct =
            serde_json::from_value(serde_json::Value::String(hf.activation_function.clone()))
                .map_err(|_| {
                    ModelError::InvalidConfig(format!(
                        "activation_function `{}` is not supported",
                        hf.activation_function
                    ))
                })?;
        for (name, id) in [
            ("bos_token_id", hf.bos_token_id),
            ("eos_token_id", hf.eos_token_id),
        ] {
            if id as usize >= hf.vocab_size {
                return invalid(format!("{name} {id} >= vocab_size {}", hf.vocab_size));
            }
        }
        Ok(Gpt2Config::new()
            .with_vocab_size(hf.vocab_size)
            .with_n_positions(hf.n_positions)
            .with_n_embd(hf.n_embd)
            .with_n_layer(hf.n_layer)
            .with_n_head(hf.n_head)
            .with_n_inner(n_inner)
            .with_activation_function(act)
            .with_resid_pdrop(hf.resid_pdrop)
            .with_embd_pdrop(hf.embd_pdrop)
            .with_attn_pdrop(hf.attn_pdrop)
            .with_layer_norm_epsilon(hf.layer_norm_epsilon)
            .with_initializer_range(hf.initializer_range)
            .with_bos_token_id(hf.bos_token_id)
            .with_eos_token_id(hf.eos_token_id))
    }
}

impl Gpt2Config {
    /// Read and validate a Hugging Face `config.json`.
    pub fn from_hf_file(path: impl AsRef<Path>) -> Result<Self> {
        HfGpt2Config::from_file(path)?.try_into()
    }

    /// Parse and validate the text of a Hugging Face `config.json`.
    pub fn from_hf_json(text: &str) -> Result<Self> {
        HfGpt2Config::from_json(text)?.try_into()
    }

    /// Validate a config built in code (the same checks as for `config.json`).
    pub fn validate(&self) -> Result<()> {
        let activation_function = serde_json::to_value(self.activation_function)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_else(|| "gelu_new".into());
        let hf = HfGpt2Config {
            model_type: None,
            vocab_size: self.vocab_size,
            n_positions: self.n_positions,
            n_embd: self.n_embd,
            n_layer: self.n_layer,
            n_head: self.n_head,
            n_inner: Some(self.n_inner),
            activation_function,
            resid_pdrop: self.resid_pdrop,
            embd_pdrop: self.embd_pdrop,
            attn_pdrop: self.attn_pdrop,
            layer_norm_epsilon: self.layer_norm_epsilon,
            initializer_range: self.initializer_range,
            bos_token_id: self.bos_token_id,
            eos_token_id: self.eos_token_id,
            scale_attn_weights: true,
            scale_attn_by_inverse_layer_idx: false,
            reorder_and_upcast_attn: false,
            add_cross_attention: false,
            tie_word_embeddings: true,
        };
        Gpt2Config::try_from(hf).map(|_| ())
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.n_embd / self.n_head.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TINY: &str = r#"{"activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"],
        "attn_pdrop": 0.1, "bos_token_id": 96, "dtype": "float32", "embd_pdrop": 0.1,
        "eos_token_id": 96, "initializer_range": 0.1, "layer_norm_epsilon": 1e-05,
        "model_type": "gpt2", "n_embd": 16, "n_head": 2, "n_inner": null, "n_layer": 2,
        "n_positions": 32, "reorder_and_upcast_attn": false, "resid_pdrop": 0.1,
        "scale_attn_by_inverse_layer_idx": false, "scale_attn_weights": true,
        "summary_activation": null, "summary_first_dropout": 0.1, "summary_proj_to_labels": true,
        "summary_type": "cls_index", "summary_use_proj": true, "transformers_version": "4.57.6",
        "use_cache": true, "vocab_size": 97}"#;

    #[test]
    fn tiny_config_parses_with_unknown_keys_and_null_n_inner() {
        let c = Gpt2Config::from_hf_json(TINY).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((c.n_embd, c.n_layer, c.n_head, c.head_dim()), (16, 2, 2, 8));
        assert_eq!(c.n_inner, 64, "null n_inner is 4 * n_embd");
        assert_eq!((c.vocab_size, c.n_positions), (97, 32));
        assert_eq!(c.activation_function, HiddenAct::GeluNew);
        assert_eq!((c.bos_token_id, c.eos_token_id), (96, 96));
        assert_eq!(c.layer_norm_epsilon, 1e-5);
        c.validate().unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn defaults_are_gpt2_small() {
        let c = Gpt2Config::from_hf_json("{}").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c, Gpt2Config::new());
        let with_inner = Gpt2Config::from_hf_json(
            r#"{"n_inner": 100, "activation_function": "gelu_pytorch_tanh"}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(with_inner.n_inner, 100);
        assert_eq!(with_inner.activation_function, HiddenAct::GeluNew);
    }

    #[test]
    fn inconsistent_unsupported_and_malformed_configs_are_typed_errors() {
        let e = Gpt2Config::from_hf_json(r#"{"n_embd": 17, "n_head": 2}"#);
        assert!(matches!(e, Err(ModelError::InvalidConfig(m)) if m.contains("not divisible")));
        let e = Gpt2Config::from_hf_json(r#"{"n_embd": "big"}"#);
        assert!(matches!(e, Err(ModelError::MalformedJson { .. })));
        let e = Gpt2Config::from_hf_json(r#"{"n_embd": 16,"#);
        assert!(matches!(e, Err(ModelError::MalformedJson { .. })));
        for bad in [
            r#"{"model_type": "bert"}"#,
            r#"{"scale_attn_weights": false}"#,
            r#"{"scale_attn_by_inverse_layer_idx": true}"#,
            r#"{"reorder_and_upcast_attn": true}"#,
            r#"{"tie_word_embeddings": false}"#,
            r#"{"activation_function": "quick_gelu"}"#,
            r#"{"n_layer": 0}"#,
            r#"{"resid_pdrop": 1.0}"#,
            r#"{"layer_norm_epsilon": 0.0}"#,
            r#"{"vocab_size": 10}"#,
        ] {
            let e = Gpt2Config::from_hf_json(bad);
            assert!(
                matches!(e, Err(ModelError::InvalidConfig(_))),
                "{bad}: {e:?}"
            );
        }
    }

    #[test]
    fn validate_checks_configs_built_in_code() {
        assert!(Gpt2Config::new().validate().is_ok());
        let bad = Gpt2Config::new().with_n_embd(17).with_n_head(2);
        assert!(matches!(bad.validate(), Err(ModelError::InvalidConfig(_))));
        let relu = Gpt2Config::new().with_activation_function(HiddenAct::Relu);
        assert!(relu.validate().is_ok());
    }
}
