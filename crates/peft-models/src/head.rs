//! Task heads, and BERT with a sequence-classification head.

use peft_core::dropout::dropout;
use std::path::Path;

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::{Dropout, DropoutConfig, Initializer, Linear, LinearConfig};
use burn::tensor::{Device, Tensor, activation};
use peft_core::{AdapterHost, AdapterSite, BaseModelInfo, BottleneckAdapter, HeadInfo, Trainable};

use crate::bert::{BertConfig, BertInput, BertModel, cls};
use crate::checkpoint::LoadReport;
use crate::error::{ModelError, Result};

/// Regex selecting the parameters of the task head (field `head` of [`BertClassifier`]): its
/// own layers (`dense`, `classifier`) as whole path segments, so that a base module that merely
/// has `head` in its path (`encoder.head.weight`) stays frozen. Not anchored at the start:
/// training checkpoints name the model's tensors under a prefix.
pub const HEAD_PATTERN: &str = r"(^|\.)head\.(dense|classifier)\.(weight|bias)$";

/// How the sentence vector is formed from the encoder output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeadPooling {
    /// The encoder's pre-trained pooler (dense + tanh on `[CLS]`), then dropout and a linear
    /// classifier: Hugging Face `BertForSequenceClassification`.
    Pooler,
    /// `[CLS]` -> dropout -> dense -> tanh -> dropout -> linear, all trained: AdapterHub's
    /// classification head.
    DenseTanh,
}

/// How a fresh head's linear layers are initialised.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeadInit {
    /// PyTorch's default `nn.Linear` init (Kaiming-uniform weights, `a = sqrt(5)`; bias
    /// uniform in `±1/sqrt(fan_in)`), as burn's `LinearConfig` does it. The default.
    PyTorchDefault,
    /// Weights N(0, std), biases zero: BERT's `_init_weights`, which AdapterHub applies to the
    /// heads it adds (`add_classification_head`) with std = `initializer_range` (0.02).
    Normal {
        /// Standard deviation of the weights.
        std: f64,
    },
}

impl HeadInit {
    /// AdapterHub's head init for BERT-style models: N(0, 0.02) weights, zero biases.
    pub const fn adapterhub() -> Self {
        Self::Normal { std: 0.02 }
    }

    fn linear(self, d_input: usize, d_output: usize, device: &Device) -> Linear {
        match self {
            Self::PyTorchDefault => LinearConfig::new(d_input, d_output).init(device),
            Self::Normal { std } => {
                let mut linear = LinearConfig::new(d_input, d_output)
                    .with_initializer(Initializer::Normal { mean: 0.0, std })
                    .init(device);
                linear.bias = Some(Param::from_tensor(Tensor::zeros([d_output], device)));
                linear
            }
        }
    }
}

/// A sequence-classification head.
#[derive(Config, Debug, PartialEq)]
pub struct ClassificationHeadConfig {
    /// Input width (the model's hidden size).
    pub hidden_size: usize,
    /// Number of classes.
    pub num_labels: usize,
    /// Pooling. Default: `dense_tanh` (AdapterHub's head).
    #[config(default = "HeadPooling::DenseTanh")]
    pub pooling: HeadPooling,
    /// Dropout before each linear layer (training only). Default: 0.1.
    #[config(default = 0.1)]
    pub dropout: f64,
    /// Weight init of the head's linear layers. Default: `HeadInit::PyTorchDefault`.
    #[config(default = "HeadInit::PyTorchDefault")]
    pub init: HeadInit,
}

/// `[CLS]`/pooled vector -> logits.
#[derive(Module, Debug)]
pub struct ClassificationHead {
    /// Trained dense layer (`dense_tanh` pooling only).
    pub dense: Option<Linear>,
    /// `hidden -> num_labels`.
    pub classifier: Linear,
    /// Dropout.
    pub dropout: Dropout,
    /// Pooling mode.
    #[module(skip)]
    pub pooling: HeadPooling,
}

impl ClassificationHeadConfig {
    /// Build the head, its weights initialised as [`ClassificationHeadConfig::init`] says.
    pub fn init(&self, device: &Device) -> Result<ClassificationHead> {
        if self.num_labels == 0 || self.hidden_size == 0 {
            return Err(ModelError::InvalidConfig(
                "classification head needs num_labels >= 1 and hidden_size >= 1".into(),
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(ModelError::InvalidConfig(format!(
                "head dropout must be in [0, 1), got {}",
                self.dropout
            )));
        }
        if let HeadInit::Normal { std } = self.init
            && !(std.is_finite() && std > 0.0)
        {
            return Err(ModelError::InvalidConfig(format!(
                "head init std must be positive, got {std}"
            )));
        }
        Ok(ClassificationHead {
            dense: (self.pooling == HeadPooling::DenseTanh)
                .then(|| self.init.linear(self.hidden_size, self.hidden_size, device)),
            classifier: self.init.linear(self.hidden_size, self.num_labels, device),
            dropout: DropoutConfig::new(self.dropout).init(),
            pooling: self.pooling,
        })
    }
}

impl ClassificationHead {
    /// Logits `[batch, num_labels]` from the encoder output `[batch, seq, hidden]` and, for
    /// [`HeadPooling::Pooler`], the pooled output `[batch, hidden]`.
    pub fn forward(&self, hidden: Tensor<3>, pooled: Option<Tensor<2>>) -> Tensor<2> {
        let x = match (self.pooling, pooled) {
            (HeadPooling::Pooler, Some(p)) => p,
            _ => cls(hidden),
        };
        let x = dropout(&self.dropout, x);
        let x = match &self.dense {
            Some(dense) => dropout(&self.dropout, activation::tanh(dense.forward(x))),
            None => x,
        };
        self.classifier.forward(x)
    }

    /// Number of classes.
    pub fn num_labels(&self) -> usize {
        self.classifier.weight.dims()[1]
    }
}

/// BERT with a sequence-classification head: the model users fine-tune on GLUE-style tasks.
#[derive(Module, Debug)]
pub struct BertClassifier {
    /// The encoder (frozen in adapter training).
    pub bert: BertModel,
    /// The task head (trained).
    pub head: ClassificationHead,
}

impl BertClassifier {
    /// Wrap an encoder with a fresh head.
    pub fn new(bert: BertModel, head: &ClassificationHeadConfig, device: &Device) -> Result<Self> {
        if head.pooling == HeadPooling::Pooler && bert.pooler.is_none() {
            return Err(ModelError::InvalidConfig(
                "head pooling `pooler` needs a model with a pooler".into(),
            ));
        }
        if head.hidden_size != bert.hidden_size {
            return Err(ModelError::InvalidConfig(format!(
                "head hidden_size {} differs from the model's {}",
                head.hidden_size, bert.hidden_size
            )));
        }
        Ok(Self {
            head: head.init(device)?,
            bert,
        })
    }

    /// Load a pre-trained encoder from a Hugging Face directory and add a fresh head.
    pub fn from_pretrained(
        dir: impl AsRef<Path>,
        num_labels: usize,
        pooling: HeadPooling,
        device: &Device,
    ) -> Result<(Self, LoadReport)> {
        let (bert, report) = BertModel::from_pretrained(dir, device)?;
        let head =
            ClassificationHeadConfig::new(bert.hidden_size, num_labels).with_pooling(pooling);
        Ok((Self::new(bert, &head, device)?, report))
    }

    /// Random-weight model from a config (tests, benchmarks).
    pub fn random(config: &BertConfig, num_labels: usize, device: &Device) -> Result<Self> {
        let bert = config.init(device)?;
        let head = ClassificationHeadConfig::new(config.hidden_size, num_labels);
        Self::new(bert, &head, device)
    }

    /// Logits `[batch, num_labels]`.
    pub fn forward(&self, input: BertInput) -> Tensor<2> {
        let out = self.bert.forward(input);
        self.head.forward(out.last_hidden_state, out.pooler_output)
    }

    /// The parameters adapter training updates: adapters and the head.
    pub fn adapter_trainable() -> Trainable {
        Trainable::adapters().with_pattern(HEAD_PATTERN)
    }

    /// The head description stored in adapter files.
    pub fn head_info(&self) -> HeadInfo {
        HeadInfo {
            kind: match self.head.pooling {
                HeadPooling::Pooler => "sequence_classification_pooler".into(),
                HeadPooling::DenseTanh => "sequence_classification".into(),
            },
            num_labels: self.head.num_labels(),
            label_names: Vec::new(),
        }
    }

    /// Description of the base model for adapter files.
    pub fn base_info(&self) -> BaseModelInfo {
        self.bert.base_info()
    }
}

impl AdapterHost for BertClassifier {
    fn num_layers(&self) -> usize {
        self.bert.num_layers()
    }

    fn d_model(&self) -> usize {
        self.bert.d_model()
    }

    fn adapter_slot(
        &mut self,
        layer: usize,
        site: AdapterSite,
    ) -> Option<&mut Option<BottleneckAdapter>> {
        self.bert.adapter_slot(layer, site)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(t: Tensor<2>) -> (f64, f64, f64) {
        let v = t.into_data().try_to_vec::<f32>().unwrap_or_default();
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        let max = v.iter().map(|&x| (x as f64).abs()).fold(0.0, f64::max);
        (mean, var.sqrt(), max)
    }

    #[test]
    fn adapterhub_head_init_is_normal_002_with_zero_bias() {
        let device = Device::default();
        let head = ClassificationHeadConfig::new(384, 2)
            .with_init(HeadInit::adapterhub())
            .init(&device)
            .unwrap_or_else(|e| panic!("{e}"));
        let dense = head
            .dense
            .unwrap_or_else(|| panic!("dense_tanh has a dense layer"));
        let (mean, std, max) = stats(dense.weight.val());
        assert!(mean.abs() < 1e-3, "mean {mean}");
        assert!((std - 0.02).abs() < 0.02 * 0.02, "std {std}");
        // A normal sample of 147k values reaches beyond 4 std; a uniform one in ±0.051 does not.
        assert!(max > 0.08, "max {max}");
        for bias in [dense.bias, head.classifier.bias] {
            let b = bias.unwrap_or_else(|| panic!("bias")).val();
            assert_eq!(b.abs().max().into_scalar::<f32>(), 0.0);
        }
    }

    #[test]
    fn default_head_init_is_pytorch_kaiming_uniform() {
        let device = Device::default();
        let head = ClassificationHeadConfig::new(384, 2)
            .init(&device)
            .unwrap_or_else(|e| panic!("{e}"));
        let dense = head
            .dense
            .unwrap_or_else(|| panic!("dense_tanh has a dense layer"));
        let bound = 1.0 / (384f64).sqrt();
        let (_, std, max) = stats(dense.weight.val());
        assert!(
            max <= bound && max > 0.99 * bound,
            "max {max} vs bound {bound}"
        );
        // U(-b, b) has std b / sqrt(3).
        assert!(
            (std - bound / 3f64.sqrt()).abs() < 0.02 * bound,
            "std {std}"
        );
    }

    #[test]
    fn non_positive_head_init_std_is_an_error() {
        let err = ClassificationHeadConfig::new(8, 2)
            .with_init(HeadInit::Normal { std: 0.0 })
            .init(&Device::default());
        assert!(matches!(err, Err(ModelError::InvalidConfig(m)) if m.contains("std")));
    }
}
