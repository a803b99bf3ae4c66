//! [`TrainingMethod`]: what a classification run trains (and how it is saved).

use peft_core::{
    AdapterConfig, FusionConfig, Ia3Config, LoraConfig, MethodConfig, PrefixTuningConfig,
    PromptTuningConfig, Trainable,
};
use peft_models::head::{BertClassifier, head_pattern};
use serde::{Deserialize, Serialize};

/// What trains.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TrainingMethod {
    /// Bottleneck adapters (and the head); the base is frozen.
    Adapter {
        /// The adapter setup.
        config: AdapterConfig,
    },
    /// LoRA modules (Hu et al. 2021) and the head; the base is frozen.
    Lora {
        /// The LoRA setup.
        config: LoraConfig,
    },
    /// IA³ vectors (Liu et al. 2022) and the head; the base is frozen.
    Ia3 {
        /// The IA³ setup.
        config: Ia3Config,
    },
    /// Prefix tuning (Li & Liang 2021) and the head; the base is frozen.
    PrefixTuning {
        /// The prefix-tuning setup.
        config: PrefixTuningConfig,
    },
    /// Prompt tuning (Lester et al. 2021) and the head; the base is frozen.
    PromptTuning {
        /// The prompt-tuning setup.
        config: PromptTuningConfig,
    },
    /// Only the head; the base is frozen.
    HeadOnly,
    /// AdapterFusion (Pfeiffer et al. 2021) over adapters the model already holds: the fusion
    /// layer and the task's head train; the fused adapters stay frozen (AdapterHub's
    /// `train_adapter_fusion`).
    Fusion {
        /// The fused adapters, in order.
        adapters: Vec<String>,
        /// The fusion layer. Default in AdapterHub: `dynamic`.
        config: FusionConfig,
    },
    /// Every parameter (full fine-tuning, the baseline).
    Full,
}

impl TrainingMethod {
    /// The parameters that train (and are saved) for task `task` (the adapter and head name).
    pub fn trainable(&self, task: &str) -> Trainable {
        match self {
            Self::Adapter { .. }
            | Self::Lora { .. }
            | Self::Ia3 { .. }
            | Self::PrefixTuning { .. }
            | Self::PromptTuning { .. } => BertClassifier::task_trainable(task),
            Self::HeadOnly => Trainable::none().with_pattern(head_pattern(task)),
            Self::Fusion { adapters, .. } => Trainable::none()
                .with_fusion(adapters)
                .with_pattern(head_pattern(task)),
            Self::Full => Trainable::none().with_pattern(".*"),
        }
    }

    /// The config of the named adapter this method adds (`None` for head-only, fusion and
    /// full fine-tuning).
    pub fn adapter_config(&self) -> Option<MethodConfig> {
        match self {
            Self::Adapter { config } => Some(MethodConfig::from(config)),
            Self::Lora { config } => Some(MethodConfig::from(config)),
            Self::Ia3 { config } => Some(MethodConfig::from(config)),
            Self::PrefixTuning { config } => Some(MethodConfig::from(config)),
            Self::PromptTuning { config } => Some(MethodConfig::from(config)),
            Self::HeadOnly | Self::Fusion { .. } | Self::Full => None,
        }
    }

    /// A short name for reports.
    pub fn name(&self) -> String {
        match self {
            Self::Adapter { config } => format!(
                "adapter ({} site{}, {:?})",
                config.placement.sites.len(),
                if config.placement.sites.len() == 1 {
                    ""
                } else {
                    "s"
                },
                config.placement.composition
            ),
            Self::Lora { config } => format!(
                "lora (r {}, alpha {}, {})",
                config.rank,
                config.alpha,
                config
                    .targets
                    .iter()
                    .map(|t| t.name())
                    .collect::<Vec<_>>()
                    .join("+")
            ),
            Self::PrefixTuning { config } => format!(
                "prefix tuning (length {}, {})",
                config.prefix_length,
                if config.flat {
                    "flat".to_string()
                } else {
                    format!("MLP {}", config.bottleneck_size)
                }
            ),
            Self::PromptTuning { config } => {
                format!("prompt tuning (length {})", config.prompt_length)
            }
            Self::Ia3 { config } => format!(
                "ia3 ({})",
                config
                    .targets
                    .iter()
                    .map(|t| t.name())
                    .collect::<Vec<_>>()
                    .join("+")
            ),
            Self::HeadOnly => "head-only".into(),
            Self::Fusion { adapters, .. } => format!("fusion of {}", adapters.join(", ")),
            Self::Full => "full".into(),
        }
    }
}
