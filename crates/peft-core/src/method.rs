//! [`MethodConfig`]: the config of any kind of named adapter.
//!
//! Every method is one more kind of named adapter: [`crate::add_adapter`] takes any of them,
//! and [`crate::set_active`], [`crate::delete_adapter`], [`crate::adapters`] and the freezing
//! selections ([`crate::Trainable::adapter`]) treat them alike.

use serde::{Deserialize, Serialize};

use crate::config::AdapterConfig;
use crate::error::Result;
use crate::ia3::Ia3Config;
use crate::lora::LoraConfig;
use crate::prefix::PrefixTuningConfig;
use crate::prompt::PromptTuningConfig;

/// The config of a named adapter, tagged by method.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", content = "config", rename_all = "snake_case")]
pub enum MethodConfig {
    /// Bottleneck adapters (Houlsby, Pfeiffer, parallel) at the residual sites.
    Bottleneck(AdapterConfig),
    /// LoRA modules on linear projections (Hu et al. 2021).
    Lora(LoraConfig),
    /// IA³ vectors on linear projections (Liu et al. 2022).
    Ia3(Ia3Config),
    /// Key/value prefixes inside self-attention (Li & Liang 2021).
    PrefixTuning(PrefixTuningConfig),
    /// Soft-prompt embeddings in front of the input (Lester et al. 2021).
    PromptTuning(PromptTuningConfig),
}

/// The kind of a [`MethodConfig`], for reports and command lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MethodKind {
    /// [`MethodConfig::Bottleneck`].
    Bottleneck,
    /// [`MethodConfig::Lora`].
    Lora,
    /// [`MethodConfig::Ia3`].
    Ia3,
    /// [`MethodConfig::PrefixTuning`].
    PrefixTuning,
    /// [`MethodConfig::PromptTuning`].
    PromptTuning,
}

impl MethodKind {
    /// A short name (`bottleneck`, `lora`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Bottleneck => "bottleneck",
            Self::Lora => "lora",
            Self::Ia3 => "ia3",
            Self::PrefixTuning => "prefix_tuning",
            Self::PromptTuning => "prompt_tuning",
        }
    }

    /// Whether this method's modules can be merged into the frozen weights.
    pub fn mergeable(self) -> bool {
        matches!(self, Self::Lora | Self::Ia3)
    }

    /// Whether this method composes only as a single name or a `Stack` of names.
    pub fn single_or_stack(self) -> bool {
        self.on_linear() || matches!(self, Self::PrefixTuning | Self::PromptTuning)
    }

    /// Whether this method's modules sit on linear projections ([`crate::LinearSite`]).
    pub fn on_linear(self) -> bool {
        matches!(self, Self::Lora | Self::Ia3)
    }
}

impl MethodConfig {
    /// Check the values.
    pub fn validate(&self) -> Result<()> {
        match self {
            Self::Bottleneck(c) => c.validate(),
            Self::Lora(c) => c.validate(),
            Self::Ia3(c) => c.validate(),
            Self::PrefixTuning(c) => c.validate(),
            Self::PromptTuning(c) => c.validate(),
        }
    }

    /// The method.
    pub fn kind(&self) -> MethodKind {
        match self {
            Self::Bottleneck(_) => MethodKind::Bottleneck,
            Self::Lora(_) => MethodKind::Lora,
            Self::Ia3(_) => MethodKind::Ia3,
            Self::PrefixTuning(_) => MethodKind::PrefixTuning,
            Self::PromptTuning(_) => MethodKind::PromptTuning,
        }
    }

    /// The bottleneck config, if this is one.
    pub fn bottleneck(&self) -> Option<&AdapterConfig> {
        match self {
            Self::Bottleneck(c) => Some(c),
            _ => None,
        }
    }

    /// The LoRA config, if this is one.
    pub fn lora(&self) -> Option<&LoraConfig> {
        match self {
            Self::Lora(c) => Some(c),
            _ => None,
        }
    }
}

impl From<AdapterConfig> for MethodConfig {
    fn from(c: AdapterConfig) -> Self {
        Self::Bottleneck(c)
    }
}

impl From<&AdapterConfig> for MethodConfig {
    fn from(c: &AdapterConfig) -> Self {
        Self::Bottleneck(c.clone())
    }
}

impl From<LoraConfig> for MethodConfig {
    fn from(c: LoraConfig) -> Self {
        Self::Lora(c)
    }
}

impl From<&LoraConfig> for MethodConfig {
    fn from(c: &LoraConfig) -> Self {
        Self::Lora(c.clone())
    }
}

impl From<Ia3Config> for MethodConfig {
    fn from(c: Ia3Config) -> Self {
        Self::Ia3(c)
    }
}

impl From<&Ia3Config> for MethodConfig {
    fn from(c: &Ia3Config) -> Self {
        Self::Ia3(c.clone())
    }
}

impl From<&MethodConfig> for MethodConfig {
    fn from(c: &MethodConfig) -> Self {
        c.clone()
    }
}

impl From<PrefixTuningConfig> for MethodConfig {
    fn from(c: PrefixTuningConfig) -> Self {
        Self::PrefixTuning(c)
    }
}

impl From<&PrefixTuningConfig> for MethodConfig {
    fn from(c: &PrefixTuningConfig) -> Self {
        Self::PrefixTuning(c.clone())
    }
}

impl From<PromptTuningConfig> for MethodConfig {
    fn from(c: PromptTuningConfig) -> Self {
        Self::PromptTuning(c)
    }
}

impl From<&PromptTuningConfig> for MethodConfig {
    fn from(c: &PromptTuningConfig) -> Self {
        Self::PromptTuning(c.clone())
    }
}
