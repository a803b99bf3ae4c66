//! IA³ (Liu et al. 2022, "Few-Shot Parameter-Efficient Fine-Tuning is Better and Cheaper than
//! In-Context Learning"): learned vectors that rescale activations.
//!
//! The maths follows Hugging Face PEFT 0.21.2 (`peft/tuners/ia3/layer.py`, `Linear.forward`):
//! on a feed-forward target the vector scales the layer's INPUT (`base(x ⊙ l)`, `l` of width
//! `in`), on any other target its OUTPUT (`base(x) ⊙ l`, `l` of width `out`, bias included).
//! PEFT initialises `l` to ones, so a fresh module changes nothing. Several active modules
//! multiply their vectors. The module lives in a [`crate::LinearSite`].

use burn::module::{Module, Param};
use burn::nn::Initializer;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{PeftError, Result};
use crate::lora::LinearTarget;

/// How a fresh IA³ vector is initialised.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ia3Init {
    /// PEFT's default (`init_ia3_weights: true`): ones, a fresh module changes nothing.
    #[default]
    Ones,
    /// PEFT's `init_ia3_weights: false`: `N(0, 1)` (for tests and debugging).
    Random,
}

/// An IA³ configuration: one vector per targeted projection of every block.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ia3Config {
    /// The projections that get a vector. Default: key, value and the feed-forward output
    /// projection (the paper's keys, values and FFN intermediate activation).
    #[serde(default = "default_targets")]
    pub targets: Vec<LinearTarget>,
    /// The targets treated as feed-forward layers (PEFT's `feedforward_modules`): their vector
    /// scales the input. Default: the feed-forward output projection.
    #[serde(default = "default_feedforward")]
    pub feedforward: Vec<LinearTarget>,
    /// Blocks that get no vector. Default: none.
    #[serde(default)]
    pub leave_out: Vec<usize>,
    /// Initialisation. Default: [`Ia3Init::Ones`].
    #[serde(default)]
    pub init: Ia3Init,
}

fn default_targets() -> Vec<LinearTarget> {
    vec![
        LinearTarget::Key,
        LinearTarget::Value,
        LinearTarget::FeedForwardOut,
    ]
}

fn default_feedforward() -> Vec<LinearTarget> {
    vec![LinearTarget::FeedForwardOut]
}

impl Default for Ia3Config {
    fn default() -> Self {
        Self {
            targets: default_targets(),
            feedforward: default_feedforward(),
            leave_out: Vec::new(),
            init: Ia3Init::Ones,
        }
    }
}

impl Ia3Config {
    /// The paper's placement for BERT-like models (key, value, FFN intermediate): the default.
    pub fn liu2022() -> Self {
        Self::default()
    }

    /// The paper's placement on GPT-2 (the fused `c_attn`, whose output holds key and value,
    /// and the FFN intermediate = the input of `mlp.c_proj`).
    pub fn liu2022_fused_qkv() -> Self {
        Self {
            targets: vec![LinearTarget::QueryKeyValue, LinearTarget::FeedForwardOut],
            ..Self::default()
        }
    }

    /// Set the targets and the feed-forward ones among them.
    pub fn with_targets(
        mut self,
        targets: Vec<LinearTarget>,
        feedforward: Vec<LinearTarget>,
    ) -> Self {
        self.targets = targets;
        self.feedforward = feedforward;
        self
    }

    /// Set the initialisation.
    pub fn with_init(mut self, init: Ia3Init) -> Self {
        self.init = init;
        self
    }

    /// Whether block `layer`, projection `target` gets a vector.
    pub fn targets(&self, layer: usize, target: LinearTarget) -> bool {
        self.targets.contains(&target) && !self.leave_out.contains(&layer)
    }

    /// Check the values (before any tensor op).
    pub fn validate(&self) -> Result<()> {
        if self.targets.is_empty() {
            return Err(PeftError::InvalidConfig("IA³ targets no projection".into()));
        }
        if let Some(t) = self.feedforward.iter().find(|t| !self.targets.contains(t)) {
            return Err(PeftError::InvalidConfig(format!(
                "IA³ feedforward target {} is not among the targets",
                t.name()
            )));
        }
        Ok(())
    }

    /// A fresh vector for `target` on a projection `d_in -> d_out`.
    pub fn init(
        &self,
        target: LinearTarget,
        d_in: usize,
        d_out: usize,
        device: &Device,
    ) -> Result<Ia3Module> {
        self.validate()?;
        let feedforward = self.feedforward.contains(&target);
        let width = if feedforward { d_in } else { d_out };
        let init = match self.init {
            Ia3Init::Ones => Initializer::Ones,
            Ia3Init::Random => Initializer::Normal {
                mean: 0.0,
                std: 1.0,
            },
        };
        Ok(Ia3Module {
            ia3_l: init.init([width], device),
            feedforward,
        })
    }
}

/// One IA³ vector.
#[derive(Module, Debug)]
pub struct Ia3Module {
    /// `l`: `[in]` on a feed-forward target, `[out]` otherwise (PEFT's `ia3_l`, `[1, in]` or
    /// `[out, 1]` in files).
    pub ia3_l: Param<Tensor<1>>,
    /// Whether it scales the input (feed-forward target) or the output.
    pub feedforward: bool,
}

impl Ia3Module {
    /// `x ⊙ l` over the last dimension.
    pub fn scale<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        x * self.ia3_l.val().unsqueeze::<D>()
    }
}
