//! Prefix tuning (Li & Liang 2021, "Prefix-Tuning: Optimizing Continuous Prompts for
//! Generation"): learned key/value prefixes prepended inside every self-attention layer.
//!
//! The maths follows AdapterHub `adapters` 1.3.0 (`methods/prefix_tuning.py`): one module per
//! adapter produces the prefixes of all its layers at once. With `flat: false` (the default) a
//! `prefix_length × d_model` embedding goes through the re-parameterisation MLP
//! `Linear(d_model, bottleneck_size) -> non_linearity -> Linear(bottleneck_size, n_layers·2·d_model)`
//! during training; [`PrefixTuningModule::eject`] collapses it to the plain prefixes
//! (`flat: true`) for saving and inference. The prefix keys are attended by every query
//! (no causal mask, no padding mask over them) and carry no position. Models hold one
//! [`PrefixPool`] and pass each layer's [`LayerPrefix`] to its attention.

use burn::module::{
    Content, Devices, Module, ModuleDisplay, ModuleDisplayDefault, ModuleMapper, ModuleVisitor,
    Param,
};
use burn::nn::{Dropout, DropoutConfig, Initializer, Linear, LinearConfig};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::activation::Activation;
use crate::error::{PeftError, Result};
use crate::named::Named;
use crate::prompt::{PromptTuningConfig, PromptTuningModule};
use crate::setup::Setup;

/// A prefix-tuning configuration (AdapterHub's `PrefixTuningConfig`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrefixTuningConfig {
    /// Number of prefix positions per layer. Default: 30.
    #[serde(default = "default_prefix_length")]
    pub prefix_length: usize,
    /// Width of the re-parameterisation MLP (`flat: false`). Default: 512.
    #[serde(default = "default_bottleneck_size")]
    pub bottleneck_size: usize,
    /// Train the prefixes directly (true) or through the MLP (false). Default: false.
    #[serde(default)]
    pub flat: bool,
    /// Non-linearity of the MLP. Default: tanh.
    #[serde(default = "default_non_linearity")]
    pub non_linearity: Activation,
    /// Dropout on the prefixes (training only). Default: 0.
    #[serde(default)]
    pub dropout: f64,
    /// Blocks that get no prefix. Default: none.
    #[serde(default)]
    pub leave_out: Vec<usize>,
}

fn default_prefix_length() -> usize {
    30
}

fn default_bottleneck_size() -> usize {
    512
}

fn default_non_linearity() -> Activation {
    Activation::Tanh
}

impl Default for PrefixTuningConfig {
    fn default() -> Self {
        Self {
            prefix_length: default_prefix_length(),
            bottleneck_size: default_bottleneck_size(),
            flat: false,
            non_linearity: default_non_linearity(),
            dropout: 0.0,
            leave_out: Vec::new(),
        }
    }
}

impl PrefixTuningConfig {
    /// Li & Liang (2021) as AdapterHub's `prefix_tuning` preset: 30 positions, MLP of 512.
    pub fn li_liang2021() -> Self {
        Self::default()
    }

    /// Set the prefix length.
    pub fn with_prefix_length(mut self, n: usize) -> Self {
        self.prefix_length = n;
        self
    }

    /// Set the MLP width.
    pub fn with_bottleneck_size(mut self, n: usize) -> Self {
        self.bottleneck_size = n;
        self
    }

    /// Set `flat`.
    pub fn with_flat(mut self, flat: bool) -> Self {
        self.flat = flat;
        self
    }

    /// Set the blocks that get no prefix.
    pub fn with_leave_out(mut self, layers: Vec<usize>) -> Self {
        self.leave_out = layers;
        self
    }

    /// Set the dropout.
    pub fn with_dropout(mut self, p: f64) -> Self {
        self.dropout = p;
        self
    }

    /// Check the values (before any tensor op).
    pub fn validate(&self) -> Result<()> {
        if self.prefix_length == 0 {
            return Err(PeftError::InvalidConfig(
                "prefix tuning prefix_length must be at least 1".into(),
            ));
        }
        if !self.flat && self.bottleneck_size == 0 {
            return Err(PeftError::InvalidConfig(
                "prefix tuning bottleneck_size must be at least 1 (or flat: true)".into(),
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(PeftError::InvalidConfig(format!(
                "prefix tuning dropout must be in [0, 1), got {}",
                self.dropout
            )));
        }
        Ok(())
    }

    /// The blocks (of `num_layers`) that get a prefix, in order.
    pub fn layers(&self, num_layers: usize) -> Vec<usize> {
        (0..num_layers)
            .filter(|l| !self.leave_out.contains(l))
            .collect()
    }

    /// A fresh module for the blocks `layers` of a model with `n_heads` heads of `head_dim`.
    ///
    /// AdapterHub's init: the embedding `N(0, 1)`, the MLP PyTorch's `Linear` default
    /// (Kaiming-uniform); a flat module `N(0, 1)`.
    pub fn init(
        &self,
        layers: Vec<usize>,
        n_heads: usize,
        head_dim: usize,
        device: &Device,
    ) -> Result<PrefixTuningModule> {
        self.validate()?;
        if layers.is_empty() {
            return Err(PeftError::NothingMatched(
                "prefix tuning leaves out every layer".into(),
            ));
        }
        let d = n_heads * head_dim;
        let width = layers.len() * 2 * d;
        let normal = Initializer::Normal {
            mean: 0.0,
            std: 1.0,
        };
        let (wte, down, up, flat) = if self.flat {
            (
                None,
                None,
                None,
                Some(normal.init([self.prefix_length, width], device)),
            )
        } else {
            (
                Some(normal.init([self.prefix_length, d], device)),
                Some(LinearConfig::new(d, self.bottleneck_size).init(device)),
                Some(LinearConfig::new(self.bottleneck_size, width).init(device)),
                None,
            )
        };
        Ok(PrefixTuningModule {
            prefix_wte: wte,
            prefix_down: down,
            prefix_up: up,
            prefix_flat: flat,
            dropout: DropoutConfig::new(self.dropout).init(),
            non_linearity: self.non_linearity,
            layers,
            n_heads,
            head_dim,
        })
    }
}

/// The key and value prefix of one layer, each `[batch, n_heads, prefix_length, head_dim]`.
#[derive(Clone, Debug)]
pub struct LayerPrefix {
    /// Keys.
    pub key: Tensor<4>,
    /// Values.
    pub value: Tensor<4>,
}

impl LayerPrefix {
    /// Number of prefix positions.
    pub fn len(&self) -> usize {
        self.key.dims()[2]
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Prepend to keys and values `[batch, n_heads, len, head_dim]`.
    pub fn prepend(&self, key: Tensor<4>, value: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        (
            Tensor::cat(vec![self.key.clone(), key], 2),
            Tensor::cat(vec![self.value.clone(), value], 2),
        )
    }

    /// Prepend zeros (attend everywhere) for the prefix to an additive attention bias
    /// `[batch or 1, 1, queries, keys]`.
    pub fn extend_bias(&self, bias: Tensor<4>) -> Tensor<4> {
        let [b, one, q, _] = bias.dims();
        let zeros = Tensor::<4>::zeros([b, one, q, self.len()], &bias.device());
        Tensor::cat(vec![zeros, bias], 3)
    }
}

/// One prefix-tuning adapter: the prefixes of all its layers.
#[derive(Module, Debug)]
pub struct PrefixTuningModule {
    /// The prefix embedding `[prefix_length, d_model]` (AdapterHub's `wte.weight`), `flat: false`.
    pub prefix_wte: Option<Param<Tensor<2>>>,
    /// MLP down-projection (`control_trans.0`), `flat: false`.
    pub prefix_down: Option<Linear>,
    /// MLP up-projection to `n_layers·2·d_model` (`control_trans.2`), `flat: false`.
    pub prefix_up: Option<Linear>,
    /// The plain prefixes `[prefix_length, n_layers·2·d_model]` (AdapterHub's flat
    /// `control_trans`, 1-D there), `flat: true`.
    pub prefix_flat: Option<Param<Tensor<2>>>,
    /// Dropout on the prefixes.
    pub dropout: Dropout,
    /// MLP non-linearity.
    #[module(skip)]
    pub non_linearity: Activation,
    /// The model blocks that get a prefix, in order (row `i` of the output is block `layers[i]`).
    #[module(skip)]
    pub layers: Vec<usize>,
    /// Heads per layer.
    #[module(skip)]
    pub n_heads: usize,
    /// Width of one head.
    #[module(skip)]
    pub head_dim: usize,
}

impl PrefixTuningModule {
    /// Whether the module holds plain prefixes (ejected or `flat: true`).
    pub fn is_flat(&self) -> bool {
        self.prefix_flat.is_some()
    }

    /// The prefixes of all layers before dropout, `[prefix_length, n_layers·2·d_model]`.
    pub fn key_values(&self) -> Tensor<2> {
        if let Some(flat) = &self.prefix_flat {
            return flat.val();
        }
        match (&self.prefix_wte, &self.prefix_down, &self.prefix_up) {
            (Some(wte), Some(down), Some(up)) => {
                up.forward(self.non_linearity.forward(down.forward(wte.val())))
            }
            // Unreachable by construction (init and eject keep one of the two forms).
            _ => Tensor::zeros([0, 0], &Device::default()),
        }
    }

    /// Collapse the MLP into plain prefixes (AdapterHub's `eject`): the output is unchanged,
    /// the MLP is dropped. A flat module is returned as it is.
    pub fn eject(self) -> Self {
        if self.is_flat() {
            return self;
        }
        let kv = self.key_values();
        Self {
            prefix_wte: None,
            prefix_down: None,
            prefix_up: None,
            prefix_flat: Some(Param::from_tensor(kv)),
            ..self
        }
    }

    /// The per-layer prefixes for a batch of `batch`: one `(block, prefix)` per entry of
    /// [`PrefixTuningModule::layers`].
    pub fn forward(&self, batch: usize) -> Vec<(usize, LayerPrefix)> {
        let kv = self.key_values();
        let [p, width] = kv.dims();
        let n = self.layers.len();
        let (h, hd) = (self.n_heads, self.head_dim);
        let kv = kv.unsqueeze_dim::<3>(0).expand([batch, p, width]);
        let kv = crate::dropout::dropout(&self.dropout, kv).reshape([batch, p, n, 2, h, hd]);
        self.layers
            .iter()
            .enumerate()
            .map(|(i, &layer)| {
                let one = kv.clone().narrow(2, i, 1);
                let part = |j: usize| {
                    one.clone()
                        .narrow(3, j, 1)
                        .reshape([batch, p, h, hd])
                        .swap_dims(1, 2)
                };
                (
                    layer,
                    LayerPrefix {
                        key: part(0),
                        value: part(1),
                    },
                )
            })
            .collect()
    }
}

/// The prefix-tuning and prompt-tuning adapters of a model and the active setup: what a model
/// holds once (both prepend learned vectors: to the keys/values of every attention layer, or to
/// the input embeddings).
///
/// Module paths are `<field>.adapters.<name>.prefix_…` and `<field>.adapters.<name>.prompt_embedding`.
#[derive(Debug, Clone, Default)]
pub struct PrefixPool {
    adapters: Named<PrefixTuningModule, PrefixTuningConfig>,
    prompts: Named<PromptTuningModule, PromptTuningConfig>,
    active: Option<Setup>,
}

impl PrefixPool {
    /// No adapters.
    pub fn new() -> Self {
        Self::default()
    }

    /// The adapters.
    pub fn adapters(&self) -> &Named<PrefixTuningModule, PrefixTuningConfig> {
        &self.adapters
    }

    /// The prompt-tuning adapters.
    pub fn prompts(&self) -> &Named<PromptTuningModule, PromptTuningConfig> {
        &self.prompts
    }

    /// The prompt-tuning module of adapter `name`, mutable.
    pub fn prompt_mut(&mut self, name: &str) -> Option<&mut PromptTuningModule> {
        self.prompts.get_mut(name)
    }

    /// Add (or replace) prompt-tuning adapter `name`.
    pub fn insert_prompt(
        &mut self,
        name: &str,
        config: PromptTuningConfig,
        module: PromptTuningModule,
    ) {
        self.prompts.put(name, config, module);
    }

    /// The prompt that acts: the first adapter of the active setup that is a prompt adapter
    /// (AdapterHub's `adapter_setup.first()`).
    pub fn active_prompt(&self) -> Option<&PromptTuningModule> {
        let setup = self.active.as_ref()?;
        setup_order(setup).iter().find_map(|n| self.prompts.get(n))
    }

    /// The module of adapter `name`, mutable (to set or inspect its weights).
    pub fn get_mut(&mut self, name: &str) -> Option<&mut PrefixTuningModule> {
        self.adapters.get_mut(name)
    }

    /// Add (or replace) `name`.
    pub fn insert(&mut self, name: &str, config: PrefixTuningConfig, module: PrefixTuningModule) {
        self.adapters.put(name, config, module);
    }

    /// Remove `name`; whether it was there.
    pub fn remove(&mut self, name: &str) -> bool {
        let prefix = self.adapters.remove(name).is_some();
        self.prompts.remove(name).is_some() || prefix
    }

    /// Remove every adapter; returns how many there were.
    pub fn clear(&mut self) -> usize {
        let n = self.adapters.len() + self.prompts.len();
        self.adapters = Named::new();
        self.prompts = Named::new();
        self.active = None;
        n
    }

    /// Set the active setup (names of other methods are ignored here).
    pub fn set_active(&mut self, setup: Option<Setup>) {
        self.active = setup;
    }

    /// Collapse adapter `name`'s MLP into plain prefixes (see [`PrefixTuningModule::eject`]);
    /// its config becomes `flat: true`. Whether it was there.
    pub fn eject(&mut self, name: &str) -> bool {
        let Some(config) = self.adapters.meta(name).cloned() else {
            return false;
        };
        let Some(module) = self.adapters.remove(name) else {
            return false;
        };
        self.adapters
            .put(name, config.with_flat(true), module.eject());
        true
    }

    /// The prefixes of the active adapters for a batch of `batch`, indexed by block
    /// (`num_layers` entries; `None` where no active adapter has a prefix). Several active
    /// adapters (a `Stack`) prepend theirs one after another, as AdapterHub does.
    pub fn layer_prefixes(&self, num_layers: usize, batch: usize) -> Vec<Option<LayerPrefix>> {
        let mut out: Vec<Option<LayerPrefix>> = vec![None; num_layers];
        let Some(setup) = &self.active else {
            return out;
        };
        for name in setup_order(setup) {
            let Some(module) = self.adapters.get(&name) else {
                continue;
            };
            for (layer, prefix) in module.forward(batch) {
                if let Some(slot) = out.get_mut(layer) {
                    *slot = Some(match slot.take() {
                        // A later adapter's prefix goes in front (AdapterHub's `compose_stack`).
                        Some(prev) => {
                            let (key, value) = prefix.prepend(prev.key, prev.value);
                            LayerPrefix { key, value }
                        }
                        None => prefix,
                    });
                }
            }
        }
        out
    }
}

/// The adapter names of `setup` in the order they apply.
fn setup_order(setup: &Setup) -> Vec<String> {
    match setup {
        Setup::Single(n) => vec![n.clone()],
        other => other.children().iter().flat_map(setup_order).collect(),
    }
}

impl Module for PrefixPool {
    fn collect_devices(&self, devices: Devices) -> Devices {
        self.prompts
            .collect_devices(self.adapters.collect_devices(devices))
    }

    fn fork(self, device: &Device) -> Self {
        Self {
            adapters: self.adapters.fork(device),
            prompts: self.prompts.fork(device),
            ..self
        }
    }

    fn to_device(self, device: &Device) -> Self {
        Self {
            adapters: self.adapters.to_device(device),
            prompts: self.prompts.to_device(device),
            ..self
        }
    }

    fn train(self) -> Self {
        Self {
            adapters: self.adapters.train(),
            prompts: self.prompts.train(),
            ..self
        }
    }

    fn valid(&self) -> Self {
        Self {
            adapters: self.adapters.valid(),
            prompts: self.prompts.valid(),
            active: self.active.clone(),
        }
    }

    fn materialize(self) -> Self {
        Self {
            adapters: self.adapters.materialize(),
            prompts: self.prompts.materialize(),
            ..self
        }
    }

    fn num_params(&self) -> usize {
        Module::num_params(&self.adapters) + Module::num_params(&self.prompts)
    }

    /// The adapters are children of a level named `adapters` (so [`crate::ADAPTER_PATTERN`]
    /// finds them).
    fn visit<V: ModuleVisitor>(&self, visitor: &mut V) {
        visitor.enter_module("adapters", "PrefixPool");
        self.adapters.visit(visitor);
        self.prompts.visit(visitor);
        visitor.exit_module("adapters", "PrefixPool");
    }

    fn map<M: ModuleMapper>(self, mapper: &mut M) -> Self {
        mapper.enter_module("adapters", "PrefixPool");
        let adapters = self.adapters.map(mapper);
        let prompts = self.prompts.map(mapper);
        mapper.exit_module("adapters", "PrefixPool");
        Self {
            adapters,
            prompts,
            ..self
        }
    }
}

impl ModuleDisplayDefault for PrefixPool {
    fn content(&self, content: Content) -> Option<Content> {
        let content = self
            .adapters
            .iter()
            .fold(content, |acc, (n, _, m)| acc.add(n, m));
        self.prompts
            .iter()
            .fold(content, |acc, (n, _, m)| acc.add(n, m))
            .set_top_level_type("PrefixPool")
            .optional()
    }
}

impl ModuleDisplay for PrefixPool {}
