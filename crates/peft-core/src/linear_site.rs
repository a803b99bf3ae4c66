//! [`LinearSite`]: a frozen linear projection that holds named LoRA modules and IA³ vectors.
//!
//! Models use it for every projection a method can target ([`crate::LinearTarget`]): BERT's query,
//! key, value and dense layers, GPT-2's `Conv1D`s. Its base parameters keep the plain layer's
//! module paths (`…query.weight`, `…query.bias`), so base checkpoints load unchanged; the
//! modules sit under `…query.adapters.<name>.lora_a` / `lora_b` (IA³: `….ia3_l`).
//!
//! With both kinds active at one site, the IA³ vectors rescale the base layer (input or
//! output) and the LoRA updates are added after, on the unscaled input.
//!
//! The active [`Setup`] is the model's (set by [`crate::set_active`]); each site applies the
//! names it holds: `Single(a)` applies `a`, `Stack(a, b, …)` sums the updates of `a`, `b`, …
//! (PEFT's several active adapters). Other blocks are rejected by [`crate::set_active`] when
//! they name a LoRA module.
//!
//! [`LinearSite::merge`] folds a module into the weight (the forward pass is then the plain
//! layer's) and [`LinearSite::unmerge`] restores the weight it had, bit for bit.

use burn::module::{
    Content, Devices, Module, ModuleDisplay, ModuleDisplayDefault, ModuleMapper, ModuleVisitor,
    Param,
};
use burn::tensor::{Device, Tensor};

use crate::adapter_drop::DropRule;
use crate::error::{PeftError, Result};
use crate::ia3::{Ia3Config, Ia3Module};
use crate::lora::{LoraConfig, LoraModule};
use crate::named::Named;
use crate::setup::Setup;

/// How the base layer's weight is stored in a PyTorch checkpoint (the module type name that
/// burn-store's PyTorch adapter sees, which decides whether it transposes the weight).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BaseLayout {
    /// PyTorch `nn.Linear`: `[out, in]` in files (transposed on load).
    Linear,
    /// Hugging Face `Conv1D` (GPT-2): `[in, out]` in files, as in burn.
    Conv1D,
}

impl BaseLayout {
    fn container(self) -> &'static str {
        match self {
            Self::Linear => "Struct:Linear",
            Self::Conv1D => "Struct:Conv1D",
        }
    }
}

/// A frozen linear layer `y = x W + b` (`W` `[in, out]`) with named LoRA modules and IA³
/// vectors.
#[derive(Debug, Clone)]
pub struct LinearSite {
    /// `W`, `[in, out]` (burn's layout).
    pub weight: Param<Tensor<2>>,
    /// `b`, `[out]`.
    pub bias: Option<Param<Tensor<1>>>,
    layout: BaseLayout,
    lora: Named<LoraModule, LoraConfig>,
    ia3: Named<Ia3Module, Ia3Config>,
    active: Option<Setup>,
    /// Merged modules, in merge order.
    merged: Vec<String>,
    /// The weight and bias before the first merge (restored by unmerging).
    unmerged: Option<(Tensor<2>, Option<Tensor<1>>)>,
    /// AdapterDrop: the block is skipped, its unmerged modules do not apply.
    skip: bool,
    /// AdapterDrop in training: the random rules this site shares with its block or model.
    drop: Vec<DropRule>,
}

impl LinearSite {
    /// A site around a layer with weight `[in, out]` and an optional bias `[out]`.
    pub fn new(
        weight: Param<Tensor<2>>,
        bias: Option<Param<Tensor<1>>>,
        layout: BaseLayout,
    ) -> Self {
        Self {
            weight,
            bias,
            layout,
            lora: Named::new(),
            ia3: Named::new(),
            active: None,
            merged: Vec::new(),
            unmerged: None,
            skip: false,
            drop: Vec::new(),
        }
    }

    /// A site around burn's `Linear` (a PyTorch `nn.Linear` in checkpoints).
    pub fn from_linear(linear: burn::nn::Linear) -> Self {
        Self::new(linear.weight, linear.bias, BaseLayout::Linear)
    }

    /// Input width.
    pub fn d_in(&self) -> usize {
        self.weight.lazy_shape().dims::<2>()[0]
    }

    /// Output width.
    pub fn d_out(&self) -> usize {
        self.weight.lazy_shape().dims::<2>()[1]
    }

    /// The checkpoint layout of the base weight.
    pub fn layout(&self) -> BaseLayout {
        self.layout
    }

    /// The LoRA modules here (with their configs), in the order they were added.
    pub fn lora(&self) -> &Named<LoraModule, LoraConfig> {
        &self.lora
    }

    /// The LoRA module named `name`, if this site has one.
    pub fn lora_module(&self, name: &str) -> Option<&LoraModule> {
        self.lora.get(name)
    }

    /// The IA³ vectors here (with their configs).
    pub fn ia3(&self) -> &Named<Ia3Module, Ia3Config> {
        &self.ia3
    }

    /// The IA³ vector named `name`, if this site has one.
    pub fn ia3_module(&self, name: &str) -> Option<&Ia3Module> {
        self.ia3.get(name)
    }

    /// Whether the site holds a module (of any method) named `name`.
    pub fn holds(&self, name: &str) -> bool {
        self.lora.get(name).is_some() || self.ia3.get(name).is_some()
    }

    /// Add (or replace) IA³ vector `name`.
    pub fn insert_ia3(&mut self, name: &str, config: Ia3Config, module: Ia3Module) {
        self.ia3.put(name, config, module);
    }

    /// Add (or replace) LoRA module `name`.
    pub fn insert_lora(&mut self, name: &str, config: LoraConfig, module: LoraModule) {
        self.lora.put(name, config, module);
    }

    /// Remove module `name` (unmerging it first); whether it was here.
    pub fn remove(&mut self, name: &str) -> bool {
        if self.merged.iter().any(|m| m == name) {
            self.unmerge(name);
        }
        let lora = self.lora.remove(name).is_some();
        self.ia3.remove(name).is_some() || lora
    }

    /// Remove every module (unmerging first).
    pub fn clear(&mut self) -> usize {
        let n = self.lora.len() + self.ia3.len();
        for name in self.lora.names().into_iter().chain(self.ia3.names()) {
            self.remove(&name);
        }
        n
    }

    /// The active setup.
    pub fn active(&self) -> Option<&Setup> {
        self.active.as_ref()
    }

    /// Set the active setup (models do it through [`crate::set_active`], which validates it).
    pub fn set_active(&mut self, setup: Option<Setup>) {
        self.active = setup;
    }

    /// The merged modules.
    pub fn merged(&self) -> &[String] {
        &self.merged
    }

    /// The names the active setup applies here, unmerged ones only (none when AdapterDrop
    /// drops the site in this pass: `dropped`).
    fn applied_names(&self, dropped: bool) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        if self.skip || dropped {
            return names;
        }
        match &self.active {
            Some(Setup::Single(n)) => names.push(n),
            Some(Setup::Stack(children)) => {
                for c in children {
                    if let Setup::Single(n) = c {
                        names.push(n);
                    }
                }
            }
            _ => {}
        }
        names
            .into_iter()
            .filter(|n| !self.merged.iter().any(|m| m == n))
            .collect()
    }

    /// AdapterDrop (AdapterHub's `skip_layers`, which covers every method): the unmerged
    /// modules of this site do not apply while `skip` is set, nor in a training pass in which
    /// one of `rules` (random draws shared with the block's other sites, or the whole model's)
    /// drops the block; merged ones are part of the weights. Set through
    /// [`crate::set_adapter_drop`].
    pub fn set_drop(&mut self, skip: bool, rules: Vec<DropRule>) {
        self.skip = skip;
        self.drop = rules;
    }

    /// `[..., in]` -> `[..., out]`: `x W + b` with every active, unmerged IA³ vector (on the
    /// input for feed-forward targets, on the output otherwise), plus the update of every
    /// active, unmerged LoRA module.
    ///
    /// Consults the AdapterDrop rules once per call: call it once per forward pass.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let dropped =
            !self.drop.is_empty() && crate::adapter_drop::any_dropped(&self.drop, &x.device());
        let names = self.applied_names(dropped);
        let bias = self.bias.as_ref().map(Param::val);
        let lora: Vec<&LoraModule> = names.iter().filter_map(|n| self.lora.get(n)).collect();
        let ia3: Vec<&Ia3Module> = names.iter().filter_map(|n| self.ia3.get(n)).collect();
        if lora.is_empty() && ia3.is_empty() {
            return burn::tensor::module::linear(x, self.weight.val(), bias);
        }
        let mut input = x.clone();
        for m in ia3.iter().filter(|m| m.feedforward) {
            input = m.scale(input);
        }
        let mut y = burn::tensor::module::linear(input, self.weight.val(), bias);
        for m in ia3.iter().filter(|m| !m.feedforward) {
            y = m.scale(y);
        }
        for m in lora {
            y = y + m.forward(x.clone());
        }
        y
    }

    /// `(W, b)` with module `name` folded in.
    fn fold(
        &self,
        name: &str,
        w: Tensor<2>,
        b: Option<Tensor<1>>,
    ) -> (Tensor<2>, Option<Tensor<1>>) {
        if let Some(m) = self.lora.get(name) {
            return (w + m.delta_weight().detach(), b);
        }
        if let Some(m) = self.ia3.get(name) {
            let l = m.ia3_l.val().detach();
            if m.feedforward {
                // Scales the input: row i of W ([in, out]) by l_i.
                let n = l.dims()[0];
                return (w * l.reshape([n, 1]), b);
            }
            // Scales the output, bias included: column j by l_j.
            return (w * l.clone().unsqueeze::<2>(), b.map(|b| b * l));
        }
        (w, b)
    }

    /// Fold module `name` into the weights (LoRA: `W += scale · A B`; IA³: `W` rows or
    /// columns, and the bias for an output vector, times `l`). The forward pass then skips it.
    pub fn merge(&mut self, name: &str) -> Result<()> {
        if !self.holds(name) {
            return Err(PeftError::NotFound {
                kind: "adapter",
                name: name.to_string(),
                available: self
                    .lora
                    .names()
                    .into_iter()
                    .chain(self.ia3.names())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        if self.merged.iter().any(|m| m == name) {
            return Err(PeftError::InvalidSetup(format!(
                "adapter `{name}` is already merged"
            )));
        }
        let w = self.weight.val().detach();
        let b = self.bias.as_ref().map(|b| b.val().detach());
        if self.unmerged.is_none() {
            self.unmerged = Some((w.clone(), b.clone()));
        }
        let (w, b) = self.fold(name, w, b);
        self.set_weights(w, b);
        self.merged.push(name.to_string());
        Ok(())
    }

    fn set_weights(&mut self, w: Tensor<2>, b: Option<Tensor<1>>) {
        self.weight = self.weight.clone().map(|_| w);
        if let (Some(param), Some(b)) = (self.bias.take(), b) {
            self.bias = Some(param.map(|_| b));
        }
    }

    /// Take module `name` out of the weight again: the weight before the first merge plus the
    /// modules still merged (exactly the old weight when none is). Whether it was merged.
    pub fn unmerge(&mut self, name: &str) -> bool {
        let Some(i) = self.merged.iter().position(|m| m == name) else {
            return false;
        };
        self.merged.remove(i);
        let Some((mut w, mut b)) = self.unmerged.clone() else {
            return true;
        };
        for m in &self.merged {
            (w, b) = self.fold(m, w, b);
        }
        if self.merged.is_empty() {
            self.unmerged = None;
        }
        self.set_weights(w, b);
        true
    }
}

impl Module for LinearSite {
    fn collect_devices(&self, devices: Devices) -> Devices {
        let devices = Module::collect_devices(&self.weight, devices);
        let devices = Module::collect_devices(&self.bias, devices);
        let devices = Module::collect_devices(&self.lora, devices);
        Module::collect_devices(&self.ia3, devices)
    }

    fn fork(self, device: &Device) -> Self {
        Self {
            weight: Module::fork(self.weight, device),
            bias: Module::fork(self.bias, device),
            lora: Module::fork(self.lora, device),
            ia3: Module::fork(self.ia3, device),
            unmerged: self
                .unmerged
                .map(|(w, b)| (w.to_device(device), b.map(|b| b.to_device(device)))),
            ..self
        }
    }

    fn to_device(self, device: &Device) -> Self {
        Self {
            weight: Module::to_device(self.weight, device),
            bias: Module::to_device(self.bias, device),
            lora: Module::to_device(self.lora, device),
            ia3: Module::to_device(self.ia3, device),
            unmerged: self
                .unmerged
                .map(|(w, b)| (w.to_device(device), b.map(|b| b.to_device(device)))),
            ..self
        }
    }

    fn train(self) -> Self {
        Self {
            weight: Module::train(self.weight),
            bias: Module::train(self.bias),
            lora: Module::train(self.lora),
            ia3: Module::train(self.ia3),
            ..self
        }
    }

    fn valid(&self) -> Self {
        Self {
            weight: Module::valid(&self.weight),
            bias: Module::valid(&self.bias),
            lora: Module::valid(&self.lora),
            ia3: Module::valid(&self.ia3),
            ..self.clone()
        }
    }

    fn materialize(self) -> Self {
        Self {
            weight: Module::materialize(self.weight),
            bias: Module::materialize(self.bias),
            lora: Module::materialize(self.lora),
            ia3: Module::materialize(self.ia3),
            ..self
        }
    }

    fn num_params(&self) -> usize {
        Module::num_params(&self.weight)
            + Module::num_params(&self.bias)
            + Module::num_params(&self.lora)
            + Module::num_params(&self.ia3)
    }

    /// The base parameters as the plain layer's (`weight`, `bias`, seen as fields of a
    /// `Linear` or `Conv1D`), the modules under `adapters.<name>.`.
    fn visit<V: ModuleVisitor>(&self, visitor: &mut V) {
        let container = self.layout.container();
        visitor.enter_module("weight", container);
        Module::visit(&self.weight, visitor);
        visitor.exit_module("weight", container);
        if let Some(bias) = &self.bias {
            visitor.enter_module("bias", container);
            Module::visit(bias, visitor);
            visitor.exit_module("bias", container);
        }
        visitor.enter_module("adapters", "Struct:LinearSite");
        self.lora.visit(visitor);
        self.ia3.visit(visitor);
        visitor.exit_module("adapters", "Struct:LinearSite");
    }

    fn map<M: ModuleMapper>(self, mapper: &mut M) -> Self {
        let container = self.layout.container();
        mapper.enter_module("weight", container);
        let weight = Module::map(self.weight, mapper);
        mapper.exit_module("weight", container);
        let bias = self.bias.map(|b| {
            mapper.enter_module("bias", container);
            let b = Module::map(b, mapper);
            mapper.exit_module("bias", container);
            b
        });
        mapper.enter_module("adapters", "Struct:LinearSite");
        let lora = self.lora.map(mapper);
        let ia3 = self.ia3.map(mapper);
        mapper.exit_module("adapters", "Struct:LinearSite");
        Self {
            weight,
            bias,
            lora,
            ia3,
            ..self
        }
    }
}

impl ModuleDisplayDefault for LinearSite {
    fn content(&self, content: Content) -> Option<Content> {
        let content = self
            .lora
            .iter()
            .fold(content, |acc, (n, _, m)| acc.add(n, m));
        self.ia3
            .iter()
            .fold(content, |acc, (n, _, m)| acc.add(n, m))
            .set_top_level_type("LinearSite")
            .optional()
    }
}

impl ModuleDisplay for LinearSite {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lora::LoraInit;
    use burn::tensor::{Distribution, Tolerance};

    fn site(device: &Device) -> LinearSite {
        let w = Tensor::<2>::random([6, 5], Distribution::Normal(0.0, 1.0), device);
        let b = Tensor::<1>::random([5], Distribution::Normal(0.0, 1.0), device);
        LinearSite::new(
            Param::from_tensor(w),
            Some(Param::from_tensor(b)),
            BaseLayout::Linear,
        )
    }

    /// `y = x W + b + Σ scale·(x A) B`, computed by hand, for Single and Stack; merge equal to
    /// unmerged; unmerge exact.
    #[test]
    fn forward_is_base_plus_scaled_low_rank_updates() -> Result<()> {
        let device = Device::flex();
        device.seed(1);
        let mut s = site(&device);
        let ca = LoraConfig::new(2, 6.0).with_init(LoraInit::Random); // scale 3
        let cb = LoraConfig::new(3, 1.5)
            .with_rslora(true)
            .with_init(LoraInit::Random); // scale 1.5 / sqrt(3)
        s.insert_lora("a", ca.clone(), ca.init(6, 5, &device)?);
        s.insert_lora("b", cb.clone(), cb.init(6, 5, &device)?);
        let x = Tensor::<3>::random([2, 3, 6], Distribution::Normal(0.0, 1.0), &device);
        let w = s.weight.val();
        let bias = s
            .bias
            .as_ref()
            .map(Param::val)
            .map(|b| b.reshape([1, 1, 5]));
        let base = x.clone().matmul(w.clone().unsqueeze()) + bias.unwrap_or_else(|| panic!());
        let upd = |n: &str, scale: f64| {
            let m = s.lora_module(n).unwrap_or_else(|| panic!("{n}"));
            x.clone()
                .matmul(m.lora_a.val().unsqueeze())
                .matmul(m.lora_b.val().unsqueeze())
                * scale
        };
        let (da, db) = (upd("a", 3.0), upd("b", 1.5 / 3f64.sqrt()));
        let tol = Tolerance::<f32>::absolute(1e-5);
        assert_eq!(s.forward(x.clone()).into_data(), base.clone().into_data());
        s.set_active(Some(Setup::single("a")));
        s.forward(x.clone())
            .into_data()
            .assert_approx_eq(&(base.clone() + da.clone()).into_data(), tol);
        s.set_active(Some(Setup::stack(["a", "b"])));
        let both = s.forward(x.clone());
        both.clone()
            .into_data()
            .assert_approx_eq(&(base.clone() + da + db).into_data(), tol);
        let original = s.weight.val().into_data();
        s.merge("a")?;
        s.merge("b")?;
        s.forward(x.clone())
            .into_data()
            .assert_approx_eq(&both.into_data(), tol);
        assert!(s.merge("a").is_err());
        assert!(s.unmerge("b"));
        assert!(s.unmerge("a"));
        assert!(!s.unmerge("a"));
        assert_eq!(s.weight.val().into_data(), original, "bit for bit");
        // Removing a merged module unmerges it first.
        s.merge("a")?;
        assert!(s.remove("a"));
        assert_eq!(s.weight.val().into_data(), original);
        Ok(())
    }

    #[test]
    fn fresh_modules_follow_peft_init() -> Result<()> {
        let device = Device::flex();
        let m = LoraConfig::new(4, 8.0).init(100, 7, &device)?;
        assert_eq!(m.lora_b.val().abs().max().into_scalar::<f32>(), 0.0);
        let a = m.lora_a.val();
        let bound = a.clone().abs().max().into_scalar::<f32>();
        assert!(
            bound <= 0.1 && bound > 0.05,
            "U(-1/sqrt(100), ..): max {bound}"
        );
        let g = LoraConfig::new(4, 8.0)
            .with_init(LoraInit::Gaussian)
            .init(400, 7, &device)?;
        let std = g
            .lora_a
            .val()
            .powf_scalar(2.0)
            .mean()
            .sqrt()
            .into_scalar::<f32>();
        assert!((std - 0.25).abs() < 0.03, "N(0, 1/r): std {std}");
        assert!(LoraConfig::new(0, 8.0).validate().is_err());
        Ok(())
    }
}
