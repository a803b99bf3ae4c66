//! Prompt tuning (Lester et al. 2021, "The Power of Scale for Parameter-Efficient Prompt
//! Tuning"): learned soft-prompt embeddings put in front of the input embeddings.
//!
//! The maths follows AdapterHub `adapters` 1.3.0 (`methods/prompt_tuning.py`): the prompt
//! (`prompt_length × d_model`, no position embedding) is concatenated to the OUTPUT of the
//! embedding layer (after BERT's embedding LayerNorm and dropout), in front of it
//! ([`PromptCombine::Prefix`]) or after the first token ([`PromptCombine::PrefixAfterBos`]); the
//! attention mask gets `prompt_length` attended positions in front. The output sequence is
//! `prompt_length` longer, so with `Prefix` BERT's pooler reads the first prompt position, as
//! AdapterHub's does. Only the first adapter of the active setup that is a prompt adapter acts.
//!
//! GPT-2 (which AdapterHub 1.3.0 gives no prompt tuning) follows PEFT 0.21.2's causal-LM prompt
//! tuning instead: the prompt goes in front of the token embeddings BEFORE the position
//! embeddings are added (it takes positions `0..prompt_length`), only with
//! [`PromptCombine::Prefix`]; see `peft_models::gpt2::Gpt2Model::forward`.

use burn::module::{Module, Param};
use burn::nn::Initializer;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{PeftError, Result};

/// Where the prompt goes (AdapterHub's `combine`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptCombine {
    /// In front of the whole input (`prefix`, the default).
    #[default]
    Prefix,
    /// After the first token (`prefix_after_bos`: BERT's `[CLS]` stays first).
    PrefixAfterBos,
}

impl PromptCombine {
    /// The serde name (`prefix`, `prefix_after_bos`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Prefix => "prefix",
            Self::PrefixAfterBos => "prefix_after_bos",
        }
    }
}

/// A prompt-tuning configuration (AdapterHub's `PromptTuningConfig`, `random_uniform` init).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptTuningConfig {
    /// Number of soft-prompt tokens. Default: 10.
    #[serde(default = "default_prompt_length")]
    pub prompt_length: usize,
    /// A fresh prompt is `U(-scale, scale)`. Default: 0.5 (the paper's).
    #[serde(default = "default_scale")]
    pub random_uniform_scale: f64,
    /// Where the prompt goes. Default: [`PromptCombine::Prefix`].
    #[serde(default)]
    pub combine: PromptCombine,
}

fn default_prompt_length() -> usize {
    10
}

fn default_scale() -> f64 {
    0.5
}

impl Default for PromptTuningConfig {
    fn default() -> Self {
        Self {
            prompt_length: default_prompt_length(),
            random_uniform_scale: default_scale(),
            combine: PromptCombine::Prefix,
        }
    }
}

impl PromptTuningConfig {
    /// Lester et al. (2021) as AdapterHub's `prompt_tuning` preset: 10 tokens, `U(-0.5, 0.5)`.
    pub fn lester2021() -> Self {
        Self::default()
    }

    /// Set the number of prompt tokens.
    pub fn with_prompt_length(mut self, n: usize) -> Self {
        self.prompt_length = n;
        self
    }

    /// Set where the prompt goes.
    pub fn with_combine(mut self, combine: PromptCombine) -> Self {
        self.combine = combine;
        self
    }

    /// Check the values (before any tensor op).
    pub fn validate(&self) -> Result<()> {
        if self.prompt_length == 0 {
            return Err(PeftError::InvalidConfig(
                "prompt tuning prompt_length must be at least 1".into(),
            ));
        }
        if !(self.random_uniform_scale.is_finite() && self.random_uniform_scale > 0.0) {
            return Err(PeftError::InvalidConfig(format!(
                "prompt tuning random_uniform_scale must be positive, got {}",
                self.random_uniform_scale
            )));
        }
        Ok(())
    }

    /// A fresh prompt of width `d_model`.
    pub fn init(&self, d_model: usize, device: &Device) -> Result<PromptTuningModule> {
        self.validate()?;
        let s = self.random_uniform_scale;
        Ok(PromptTuningModule {
            prompt_embedding: Initializer::Uniform { min: -s, max: s }
                .init([self.prompt_length, d_model], device),
            combine: self.combine,
        })
    }
}

/// One soft prompt.
#[derive(Module, Debug)]
pub struct PromptTuningModule {
    /// The prompt `[prompt_length, d_model]` (AdapterHub's `prompt_embedding.weight`).
    pub prompt_embedding: Param<Tensor<2>>,
    /// Where it goes.
    #[module(skip)]
    pub combine: PromptCombine,
}

impl PromptTuningModule {
    /// Number of prompt tokens.
    pub fn len(&self) -> usize {
        self.prompt_embedding.dims()[0]
    }

    /// Whether the prompt is empty (never, by construction).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Put the prompt into embeddings `[batch, seq, d]` -> `[batch, prompt_length + seq, d]`.
    pub fn combine(&self, embedded: Tensor<3>) -> Tensor<3> {
        let [b, s, d] = embedded.dims();
        let p = self.len();
        let prompt = self
            .prompt_embedding
            .val()
            .unsqueeze_dim::<3>(0)
            .expand([b, p, d]);
        match self.combine {
            PromptCombine::Prefix => Tensor::cat(vec![prompt, embedded], 1),
            PromptCombine::PrefixAfterBos => Tensor::cat(
                vec![
                    embedded.clone().narrow(1, 0, 1),
                    prompt,
                    embedded.narrow(1, 1, s - 1),
                ],
                1,
            ),
        }
    }
}
