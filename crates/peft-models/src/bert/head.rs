//! Task heads, and BERT with named sequence-classification heads.

use peft_core::dropout::dropout;
use std::path::Path;

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::{Dropout, DropoutConfig, Initializer, Linear, LinearConfig};
use burn::tensor::{Device, Tensor, activation};
use peft_core::{
    AdapterHost, AdapterLayer, AdapterSite, BaseModelInfo, DEFAULT_ADAPTER, HeadInfo, LinearSite,
    LinearTarget, Named, Setup, Trainable,
};

use super::{BertConfig, BertInput, BertModel, cls};
use crate::checkpoint::LoadReport;
use crate::error::{ModelError, Result};

/// Regex selecting the parameters of every task head (field `heads` of [`BertClassifier`],
/// `heads.<name>.…`): their own layers (`dense`, `classifier`) as whole path segments, so that a
/// base module that merely has `head` in its path (`encoder.head.weight`) stays frozen. Not
/// anchored at the start: training checkpoints name the model's tensors under a prefix.
pub const HEAD_PATTERN: &str = r"(^|\.)heads\.[A-Za-z0-9_-]+\.(dense|classifier)\.(weight|bias)$";

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

/// `(head, batch rows, rows of the encoder output)`.
type HeadRows = (String, Vec<usize>, Vec<usize>);

/// What a classifier keeps about a head besides its weights.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeadMeta {
    /// Class names by id (AdapterHub's `label2id`, inverted), if known.
    pub labels: Vec<String>,
}

/// The logits of one head for some rows of a batch (see [`BertClassifier::forward_heads`]).
#[derive(Clone, Debug)]
pub struct HeadOutput {
    /// The head's name.
    pub head: String,
    /// The batch rows these logits belong to, in order.
    pub rows: Vec<usize>,
    /// `[rows.len(), num_labels]`.
    pub logits: Tensor<2>,
}

/// BERT with named sequence-classification heads: the model users fine-tune on GLUE-style
/// tasks, one head per task (AdapterHub's flexible heads).
///
/// A forward pass uses the head named like the active adapter when the setup ends in a single
/// adapter that has a head (AdapterHub's rule), else the active head
/// ([`BertClassifier::set_active_head`]); `Parallel`, `BatchSplit` and routes feed one head per
/// part ([`BertClassifier::forward_heads`]).
#[derive(Module, Debug)]
pub struct BertClassifier {
    /// The encoder (frozen in adapter training).
    pub bert: BertModel,
    /// The task heads, by name (`heads.<name>.…`).
    pub heads: Named<ClassificationHead, HeadMeta>,
    /// The head used when the active setup does not name one (see the type's docs).
    #[module(skip)]
    pub active_head: String,
}

impl BertClassifier {
    /// Wrap an encoder with one fresh head named [`DEFAULT_ADAPTER`], active.
    pub fn new(bert: BertModel, head: &ClassificationHeadConfig, device: &Device) -> Result<Self> {
        Self::new_named(bert, DEFAULT_ADAPTER, head, device)
    }

    /// Wrap an encoder with one fresh head named `name`, active.
    pub fn new_named(
        bert: BertModel,
        name: &str,
        head: &ClassificationHeadConfig,
        device: &Device,
    ) -> Result<Self> {
        let mut model = Self {
            bert,
            heads: Named::new(),
            active_head: name.to_string(),
        };
        model.add_head(name, head, device)?;
        Ok(model)
    }

    /// Add a fresh head named `name` (it becomes the active head if the model had none).
    pub fn add_head(
        &mut self,
        name: &str,
        head: &ClassificationHeadConfig,
        device: &Device,
    ) -> Result<()> {
        if head.pooling == HeadPooling::Pooler && self.bert.pooler.is_none() {
            return Err(ModelError::InvalidConfig(
                "head pooling `pooler` needs a model with a pooler".into(),
            ));
        }
        if head.hidden_size != self.bert.hidden_size {
            return Err(ModelError::InvalidConfig(format!(
                "head hidden_size {} differs from the model's {}",
                head.hidden_size, self.bert.hidden_size
            )));
        }
        let module = head.init(device)?;
        self.insert_head(name, HeadMeta::default(), module)
    }

    /// Add a head built elsewhere (e.g. loaded from a file).
    pub fn insert_head(
        &mut self,
        name: &str,
        meta: HeadMeta,
        head: ClassificationHead,
    ) -> Result<()> {
        if head.pooling == HeadPooling::Pooler && self.bert.pooler.is_none() {
            return Err(ModelError::InvalidConfig(
                "head pooling `pooler` needs a model with a pooler".into(),
            ));
        }
        self.heads.insert("head", name, meta, head)?;
        if self.heads.len() == 1 {
            self.active_head = name.to_string();
        }
        Ok(())
    }

    /// Delete head `name`; the last head cannot be deleted.
    pub fn delete_head(&mut self, name: &str) -> Result<ClassificationHead> {
        self.heads.require("head", name)?;
        if self.heads.len() == 1 {
            return Err(ModelError::InvalidConfig(format!(
                "`{name}` is the model's only head; add another before deleting it"
            )));
        }
        let head = self.heads.remove(name).ok_or_else(|| {
            ModelError::InvalidConfig(format!("head `{name}` vanished while deleting it"))
        })?;
        if self.active_head == name {
            self.active_head = self.heads.names().first().cloned().unwrap_or_default();
        }
        Ok(head)
    }

    /// Make `name` the active head.
    pub fn set_active_head(&mut self, name: &str) -> Result<()> {
        self.heads.require("head", name)?;
        self.active_head = name.to_string();
        Ok(())
    }

    /// The head a plain forward pass uses (see the type's docs).
    pub fn head(&self) -> Result<&ClassificationHead> {
        Ok(self.heads.require("head", &self.current_head_name())?)
    }

    /// The same, mutable.
    pub fn head_mut(&mut self) -> Result<&mut ClassificationHead> {
        let name = self.current_head_name();
        self.heads.require("head", &name)?;
        self.heads
            .get_mut(&name)
            .ok_or_else(|| ModelError::InvalidConfig(format!("head `{name}` vanished")))
    }

    /// The name of the head a plain forward pass uses: AdapterHub's
    /// `parse_heads_from_composition` for a single final adapter (the setup itself, or a
    /// `Stack`'s last child, when a head has its name), else the active head.
    pub fn current_head_name(&self) -> String {
        self.head_for(peft_core::active_setup(self).as_ref())
    }

    /// The head for `setup` by the rule of [`BertClassifier::current_head_name`].
    fn head_for(&self, setup: Option<&Setup>) -> String {
        let last = match setup {
            Some(Setup::Stack(children)) => children.last(),
            other => other,
        };
        match last {
            Some(Setup::Single(name)) if self.heads.get(name).is_some() => name.clone(),
            _ => self.active_head.clone(),
        }
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

    /// Logits `[batch, num_labels]` of the current head (see the type's docs). With a
    /// `Parallel` setup use [`BertClassifier::forward_heads`], which gives each head its rows.
    pub fn forward(&self, input: BertInput) -> Tensor<2> {
        let out = self.bert.forward(input);
        match self.heads.get(&self.current_head_name()) {
            Some(head) => head.forward(out.last_hidden_state, out.pooler_output),
            // Unreachable through the public API (a classifier always has a head); an empty
            // result rather than a panic.
            None => {
                let [b, _, _] = out.last_hidden_state.dims();
                Tensor::zeros([b, 0], &out.last_hidden_state.device())
            }
        }
    }

    /// Checked forward pass with one output per head, for every setup: `Parallel` gives each
    /// channel to the head named after that child's last adapter (AdapterHub's rule), a
    /// `BatchSplit` each slice to its child's head, a `Route` each example to its route's head;
    /// otherwise all rows go to the current head.
    pub fn forward_heads(&self, input: BertInput) -> Result<Vec<HeadOutput>> {
        self.bert.check_input(&input)?;
        let [batch, _] = input.input_ids.dims();
        let plan = self.head_plan(batch)?;
        let out = self.bert.forward(input);
        let device = out.last_hidden_state.device();
        let mut outputs = Vec::with_capacity(plan.len());
        for (head_name, rows, source) in plan {
            let head = self.heads.require("head", &head_name)?;
            let ids: Vec<i64> = source.iter().map(|&r| r as i64).collect();
            let idx = Tensor::<1, burn::tensor::Int>::from_data(
                burn::tensor::TensorData::new(ids, [source.len()]),
                &device,
            );
            let hidden = out.last_hidden_state.clone().select(0, idx.clone());
            let pooled = out.pooler_output.clone().map(|p| p.select(0, idx));
            outputs.push(HeadOutput {
                head: head_name,
                rows,
                logits: head.forward(hidden, pooled),
            });
        }
        Ok(outputs)
    }

    /// `(head, batch rows, rows of the encoder output)` for each head a forward pass feeds.
    fn head_plan(&self, batch: usize) -> Result<Vec<HeadRows>> {
        let current = self.current_head_name();
        let head_of = |s: &Setup| {
            s.last()
                .map(str::to_string)
                .filter(|n| self.heads.get(n).is_some())
                .unwrap_or_else(|| current.clone())
        };
        let all: Vec<usize> = (0..batch).collect();
        let setup = peft_core::active_setup(self);
        // The Parallel block that decides the heads: the setup itself, or a Stack's last child.
        let parallel = match &setup {
            Some(Setup::Parallel(c)) => Some(c.clone()),
            Some(Setup::Stack(c)) => match c.last() {
                Some(Setup::Parallel(p)) => Some(p.clone()),
                _ => None,
            },
            _ => None,
        };
        if let Some(children) = parallel {
            return Ok(children
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    (
                        head_of(c),
                        all.clone(),
                        all.iter().map(|r| i * batch + r).collect(),
                    )
                })
                .collect());
        }
        let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
        let mut push = |name: String, row: usize| match groups.iter_mut().find(|(n, _)| *n == name)
        {
            Some((_, rows)) => rows.push(row),
            None => groups.push((name, vec![row])),
        };
        match &setup {
            Some(Setup::Route(routes)) => {
                for (row, r) in routes.iter().enumerate() {
                    push(self.head_for(r.as_ref()), row);
                }
            }
            Some(Setup::BatchSplit {
                children,
                batch_sizes,
            }) => {
                let mut row = 0;
                for (c, &n) in children.iter().zip(batch_sizes) {
                    for _ in 0..n {
                        push(head_of(c), row);
                        row += 1;
                    }
                }
            }
            _ => groups.push((current.clone(), all)),
        }
        Ok(groups
            .into_iter()
            .map(|(n, rows)| (n, rows.clone(), rows))
            .collect())
    }

    /// The parameters adapter training updates: every adapter and every head. To train one
    /// task, use [`BertClassifier::task_trainable`].
    pub fn adapter_trainable() -> Trainable {
        Trainable::adapters().with_pattern(HEAD_PATTERN)
    }

    /// What training the task `name` updates (AdapterHub's `train_adapter`): adapter `name`
    /// and the head `name`; every other adapter, head and the base stay frozen.
    pub fn task_trainable(name: &str) -> Trainable {
        Trainable::adapter(name).with_pattern(head_pattern(name))
    }

    /// The head description stored in adapter files (the current head).
    pub fn head_info(&self) -> HeadInfo {
        let name = self.current_head_name();
        let labels = self
            .heads
            .meta(&name)
            .map(|m| m.labels.clone())
            .unwrap_or_default();
        match self.heads.get(&name) {
            Some(head) => HeadInfo {
                kind: match head.pooling {
                    HeadPooling::Pooler => "sequence_classification_pooler".into(),
                    HeadPooling::DenseTanh => "sequence_classification".into(),
                },
                num_labels: head.num_labels(),
                label_names: labels,
                problem_type: Default::default(),
            },
            None => HeadInfo {
                kind: "sequence_classification".into(),
                num_labels: 0,
                label_names: labels,
                problem_type: Default::default(),
            },
        }
    }

    /// Description of the base model for adapter files.
    pub fn base_info(&self) -> BaseModelInfo {
        self.bert.base_info()
    }
}

/// The parameters of head `name` (`heads.<name>.dense|classifier.…`).
pub fn head_pattern(name: &str) -> String {
    format!(
        r"(^|\.)heads\.{}\.(dense|classifier)\.(weight|bias)$",
        peft_core::freeze::escape_name(name)
    )
}

impl AdapterHost for BertClassifier {
    fn num_layers(&self) -> usize {
        self.bert.num_layers()
    }

    fn d_model(&self) -> usize {
        self.bert.d_model()
    }

    fn attention_dropout(&self) -> f64 {
        self.bert.attention_dropout()
    }

    fn adapter_layer(&self, layer: usize, site: AdapterSite) -> Option<&AdapterLayer> {
        self.bert.adapter_layer(layer, site)
    }

    fn adapter_layer_mut(&mut self, layer: usize, site: AdapterSite) -> Option<&mut AdapterLayer> {
        self.bert.adapter_layer_mut(layer, site)
    }

    fn linear_site(&self, layer: usize, target: LinearTarget) -> Option<&LinearSite> {
        self.bert.linear_site(layer, target)
    }

    fn linear_site_mut(&mut self, layer: usize, target: LinearTarget) -> Option<&mut LinearSite> {
        self.bert.linear_site_mut(layer, target)
    }

    fn prefix_pool(&self) -> Option<&peft_core::PrefixPool> {
        self.bert.prefix_pool()
    }

    fn prefix_pool_mut(&mut self) -> Option<&mut peft_core::PrefixPool> {
        self.bert.prefix_pool_mut()
    }

    fn num_attention_heads(&self) -> usize {
        self.bert.num_attention_heads()
    }

    fn takes_prompt(&self, combine: peft_core::PromptCombine) -> bool {
        self.bert.takes_prompt(combine)
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
