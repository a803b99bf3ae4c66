//! LoRA (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models") and its config.
//!
//! A LoRA module adds a low-rank update to a frozen linear layer:
//! `y = base(x) + scale · B(A(dropout(x)))`, with `A: in -> r`, `B: r -> out` and
//! `scale = alpha / r` (or `alpha / sqrt(r)` with rank-stabilised LoRA, Kalajdzievski 2023).
//! The maths and the initialisations follow Hugging Face PEFT 0.21.2
//! (`peft/tuners/lora/layer.py`, `LoraLayer.update_layer` / `reset_lora_parameters`).
//!
//! The module lives in a [`crate::LinearSite`], the linear layer type models use for the
//! projections a method can target ([`LinearTarget`]).

use burn::module::{Module, Param};
use burn::nn::{Dropout, DropoutConfig, Initializer};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{PeftError, Result};

/// A linear projection of a Transformer block that LoRA or IA³ can target.
///
/// The names are ours; each model maps them to its own module names (PEFT's `target_modules`
/// strings) in its `weights.rs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinearTarget {
    /// The query projection (BERT `attention.self.query`).
    Query,
    /// The key projection (BERT `attention.self.key`).
    Key,
    /// The value projection (BERT `attention.self.value`).
    Value,
    /// A fused query/key/value projection (GPT-2 `attn.c_attn`): one module over the fused
    /// output, as PEFT does.
    QueryKeyValue,
    /// The attention output projection (BERT `attention.output.dense`, GPT-2 `attn.c_proj`).
    AttentionOutput,
    /// The feed-forward input projection (BERT `intermediate.dense`, GPT-2 `mlp.c_fc`).
    FeedForwardIn,
    /// The feed-forward output projection (BERT `output.dense`, GPT-2 `mlp.c_proj`).
    FeedForwardOut,
}

impl LinearTarget {
    /// Every target, in the order they occur in a block.
    pub const ALL: [LinearTarget; 7] = [
        Self::Query,
        Self::Key,
        Self::Value,
        Self::QueryKeyValue,
        Self::AttentionOutput,
        Self::FeedForwardIn,
        Self::FeedForwardOut,
    ];

    /// A short name used in reports and our own files.
    pub fn name(self) -> &'static str {
        match self {
            Self::Query => "query",
            Self::Key => "key",
            Self::Value => "value",
            Self::QueryKeyValue => "query_key_value",
            Self::AttentionOutput => "attention_output",
            Self::FeedForwardIn => "feed_forward_in",
            Self::FeedForwardOut => "feed_forward_out",
        }
    }

    /// Parse [`LinearTarget::name`] (for command lines).
    pub fn parse(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|t| t.name() == name)
            .ok_or_else(|| {
                PeftError::InvalidConfig(format!(
                    "unknown target `{name}` (expected one of: {})",
                    Self::ALL.map(Self::name).join(", ")
                ))
            })
    }
}

/// How a fresh LoRA module is initialised (PEFT's `init_lora_weights`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoraInit {
    /// PEFT's default (`true`): `A` Kaiming-uniform with `a = sqrt(5)` (PyTorch's `nn.Linear`
    /// default, `U(-1/sqrt(in), 1/sqrt(in))`), `B` zero, so a fresh module changes nothing.
    #[default]
    Default,
    /// PEFT's `"gaussian"`: `A ~ N(0, 1/r)` (std `1/r`), `B` zero.
    Gaussian,
    /// PEFT's `false`: both `A` and `B` as `nn.Linear`'s default (Kaiming-uniform), so a fresh
    /// module already changes the output (for tests and debugging).
    Random,
}

/// A LoRA configuration: one low-rank module per targeted projection of every block.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoraConfig {
    /// Rank `r` of the update. Default: 8.
    #[serde(default = "default_rank")]
    pub rank: usize,
    /// `lora_alpha`: the update is scaled by `alpha / r` (or `alpha / sqrt(r)`). Default: 8.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// Dropout on the module's input, in training. Default: 0.
    #[serde(default)]
    pub dropout: f64,
    /// The projections that get a module. Default: query and value (PEFT's default for BERT).
    #[serde(default = "default_targets")]
    pub targets: Vec<LinearTarget>,
    /// Blocks that get no module. Default: none.
    #[serde(default)]
    pub leave_out: Vec<usize>,
    /// Rank-stabilised LoRA (Kalajdzievski 2023): scale `alpha / sqrt(r)`. Default: false.
    #[serde(default)]
    pub use_rslora: bool,
    /// Initialisation. Default: [`LoraInit::Default`].
    #[serde(default)]
    pub init: LoraInit,
}

fn default_rank() -> usize {
    8
}
fn default_alpha() -> f64 {
    8.0
}
fn default_targets() -> Vec<LinearTarget> {
    vec![LinearTarget::Query, LinearTarget::Value]
}

impl Default for LoraConfig {
    fn default() -> Self {
        Self {
            rank: default_rank(),
            alpha: default_alpha(),
            dropout: 0.0,
            targets: default_targets(),
            leave_out: Vec::new(),
            use_rslora: false,
            init: LoraInit::Default,
        }
    }
}

/// The largest rank accepted (a file asking for more is corrupt or hostile).
pub const MAX_LORA_RANK: usize = 4096;

impl LoraConfig {
    /// Hu et al. 2021's setting for GLUE with RoBERTa/BERT: rank `r`, `alpha`, on the query and
    /// value projections.
    pub fn new(rank: usize, alpha: f64) -> Self {
        Self {
            rank,
            alpha,
            ..Self::default()
        }
    }

    /// Set the targeted projections.
    pub fn with_targets(mut self, targets: Vec<LinearTarget>) -> Self {
        self.targets = targets;
        self
    }

    /// Set the input dropout.
    pub fn with_dropout(mut self, dropout: f64) -> Self {
        self.dropout = dropout;
        self
    }

    /// Set rank-stabilised scaling.
    pub fn with_rslora(mut self, use_rslora: bool) -> Self {
        self.use_rslora = use_rslora;
        self
    }

    /// Set the initialisation.
    pub fn with_init(mut self, init: LoraInit) -> Self {
        self.init = init;
        self
    }

    /// The factor the update is multiplied by: `alpha / r`, or `alpha / sqrt(r)` with rsLoRA.
    pub fn scale(&self) -> f64 {
        if self.use_rslora {
            self.alpha / (self.rank as f64).sqrt()
        } else {
            self.alpha / self.rank as f64
        }
    }

    /// Whether block `layer`, projection `target` gets a module.
    pub fn targets(&self, layer: usize, target: LinearTarget) -> bool {
        self.targets.contains(&target) && !self.leave_out.contains(&layer)
    }

    /// Check the values (before any tensor op).
    pub fn validate(&self) -> Result<()> {
        if self.rank == 0 || self.rank > MAX_LORA_RANK {
            return Err(PeftError::InvalidConfig(format!(
                "LoRA rank must be in 1..={MAX_LORA_RANK}, got {}",
                self.rank
            )));
        }
        if !self.alpha.is_finite() {
            return Err(PeftError::InvalidConfig(format!(
                "LoRA alpha must be finite, got {}",
                self.alpha
            )));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(PeftError::InvalidConfig(format!(
                "LoRA dropout must be in [0, 1), got {}",
                self.dropout
            )));
        }
        if self.targets.is_empty() {
            return Err(PeftError::InvalidConfig(
                "LoRA targets no projection".into(),
            ));
        }
        Ok(())
    }

    /// A fresh module for a projection `d_in -> d_out`.
    pub fn init(&self, d_in: usize, d_out: usize, device: &Device) -> Result<LoraModule> {
        self.validate()?;
        let r = self.rank;
        // PyTorch's kaiming_uniform_(a = sqrt(5)) on a `[out, in]` weight: U(-1/sqrt(fan_in), ..).
        let kaiming = |fan_in: usize| {
            let bound = 1.0 / (fan_in as f64).sqrt();
            Initializer::Uniform {
                min: -bound,
                max: bound,
            }
        };
        let a = match self.init {
            LoraInit::Default | LoraInit::Random => kaiming(d_in),
            LoraInit::Gaussian => Initializer::Normal {
                mean: 0.0,
                std: 1.0 / r as f64,
            },
        };
        let b = match self.init {
            LoraInit::Random => kaiming(r),
            LoraInit::Default | LoraInit::Gaussian => Initializer::Zeros,
        };
        Ok(LoraModule {
            lora_a: a.init([d_in, r], device),
            lora_b: b.init([r, d_out], device),
            dropout: DropoutConfig::new(self.dropout).init(),
            scale: self.scale(),
        })
    }
}

/// One LoRA module: `scale · B(A(dropout(x)))`.
///
/// Weights are stored in burn's `[in, out]` layout: `lora_a` is `[in, r]` (PEFT's
/// `lora_A.weight` transposed), `lora_b` is `[r, out]` (PEFT's `lora_B.weight` transposed).
#[derive(Module, Debug)]
pub struct LoraModule {
    /// `A`, `[in, r]`.
    pub lora_a: Param<Tensor<2>>,
    /// `B`, `[r, out]`.
    pub lora_b: Param<Tensor<2>>,
    /// Dropout on the input.
    pub dropout: Dropout,
    /// `alpha / r` (or `alpha / sqrt(r)`).
    pub scale: f64,
}

impl LoraModule {
    /// The rank.
    pub fn rank(&self) -> usize {
        self.lora_a.lazy_shape().dims::<2>()[1]
    }

    /// The update `scale · B(A(dropout(x)))`: `[..., in]` -> `[..., out]`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let x = crate::dropout::dropout(&self.dropout, x);
        let down = burn::tensor::module::linear(x, self.lora_a.val(), None);
        burn::tensor::module::linear(down, self.lora_b.val(), None) * self.scale
    }

    /// The update as a weight delta `scale · A B`, `[in, out]` (what merging adds).
    pub fn delta_weight(&self) -> Tensor<2> {
        self.lora_a.val().matmul(self.lora_b.val()) * self.scale
    }
}
