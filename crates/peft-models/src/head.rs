//! Task heads, and BERT with a sequence-classification head.

use peft_core::dropout::dropout;
use std::path::Path;

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
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
    /// Build the head. Weights: PyTorch's default Linear init.
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
        Ok(ClassificationHead {
            dense: (self.pooling == HeadPooling::DenseTanh)
                .then(|| LinearConfig::new(self.hidden_size, self.hidden_size).init(device)),
            classifier: LinearConfig::new(self.hidden_size, self.num_labels).init(device),
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
