//! [`AdapterLayer`]: the one adapter site type every model embeds.
//!
//! A site holds any number of named bottleneck adapters and fusion layers, the active
//! [`Setup`] and the AdapterDrop state, and computes the sub-layer's residual connection
//! through them. Models call [`AdapterLayer::forward`] where the residual add (and post-LN
//! LayerNorm) would be, and never look at methods or names.
//!
//! The composition follows AdapterHub's `BottleneckLayer` (`adapters` 1.3.0,
//! `methods/bottleneck.py` and `methods/adapter_layer_base.py`) step by step: the state is
//! `(hidden, input, adapter residual, up, last)`; a block first runs its first adapter's
//! `pre_forward` (`pre_block`), children run their adapter `forward`, and the last adapter's
//! `post_forward` closes the site.
//!
//! Module paths: adapter `a` at a site stored in field `adapters` is `adapters.a.adapter_down…`;
//! the fusion of `a` and `b` is `adapters.a,b.query…` (adapter names contain no `,`).

use burn::module::{
    Content, Devices, Module, ModuleDisplay, ModuleDisplayDefault, ModuleMapper, ModuleVisitor,
};
use burn::nn::LayerNorm;
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::adapter_drop::DropRule;
use crate::bottleneck::{BottleneckAdapter, add_norm};
use crate::config::AdapterConfig;
use crate::fusion::{AdapterFusion, FusionConfig};
use crate::named::Named;
use crate::setup::Setup;

/// What a site keeps about a fusion layer besides its weights.
#[derive(Clone, Debug, PartialEq)]
pub struct FusionMeta {
    /// The fused adapters, in order.
    pub adapters: Vec<String>,
    /// The config it was built from.
    pub config: FusionConfig,
}

/// The adapters at one site of one block, and how they run.
#[derive(Debug, Clone, Default)]
pub struct AdapterLayer {
    adapters: Named<BottleneckAdapter, AdapterConfig>,
    fusions: Named<AdapterFusion, FusionMeta>,
    active: Option<Setup>,
    /// AdapterDrop: this site is skipped (training and inference).
    skip: bool,
    /// AdapterDrop in training: the random rules this site shares with its block or model.
    drop: Vec<DropRule>,
}

/// AdapterHub's `BottleneckState`.
struct State {
    hidden: Tensor<3>,
    input: Tensor<3>,
    residual: Tensor<3>,
    up: Option<Tensor<3>>,
    last: Option<String>,
}

impl State {
    fn rows(&self, start: usize, end: usize) -> State {
        let r = |t: &Tensor<3>| t.clone().slice(start..end);
        State {
            hidden: r(&self.hidden),
            input: r(&self.input),
            residual: r(&self.residual),
            up: self.up.as_ref().map(r),
            last: self.last.clone(),
        }
    }

    /// AdapterHub's `pad_and_concat` (all children see the same sequence length here).
    fn concat(states: Vec<State>) -> Option<State> {
        let last = states.last()?.last.clone();
        let has_up = states.iter().all(|s| s.up.is_some());
        let mut hidden = Vec::new();
        let mut input = Vec::new();
        let mut residual = Vec::new();
        let mut up = Vec::new();
        for s in states {
            hidden.push(s.hidden);
            input.push(s.input);
            residual.push(s.residual);
            if let Some(u) = s.up {
                up.push(u);
            }
        }
        Some(State {
            hidden: Tensor::cat(hidden, 0),
            input: Tensor::cat(input, 0),
            residual: Tensor::cat(residual, 0),
            up: has_up.then(|| Tensor::cat(up, 0)),
            last,
        })
    }
}

impl AdapterLayer {
    /// An empty site.
    pub fn new() -> Self {
        Self::default()
    }

    /// The adapter named `name`, if this site has one.
    pub fn adapter(&self, name: &str) -> Option<&BottleneckAdapter> {
        self.adapters.get(name)
    }

    /// The named adapters at this site (with their configs), in the order they were added.
    pub fn adapters(&self) -> &Named<BottleneckAdapter, AdapterConfig> {
        &self.adapters
    }

    /// The fusion layers at this site.
    pub fn fusions(&self) -> &Named<AdapterFusion, FusionMeta> {
        &self.fusions
    }

    /// The fusion layer named `name`, if any.
    pub fn fusion(&self, name: &str) -> Option<&AdapterFusion> {
        self.fusions.get(name)
    }

    /// Whether the site holds no adapter and no fusion.
    pub fn is_empty(&self) -> bool {
        self.adapters.is_empty() && self.fusions.is_empty()
    }

    /// Add (or replace) adapter `name`.
    pub fn insert(&mut self, name: &str, config: AdapterConfig, module: BottleneckAdapter) {
        self.adapters.put(name, config, module);
    }

    /// Remove adapter `name` and every fusion layer that uses it; whether it was here.
    pub fn remove(&mut self, name: &str) -> bool {
        self.fusions
            .retain(|_, meta| !meta.adapters.iter().any(|a| a == name));
        self.adapters.remove(name).is_some()
    }

    /// Add (or replace) a fusion layer over `adapters`.
    pub fn insert_fusion(
        &mut self,
        adapters: &[String],
        config: FusionConfig,
        module: AdapterFusion,
    ) {
        let meta = FusionMeta {
            adapters: adapters.to_vec(),
            config,
        };
        self.fusions.put(&adapters.join(","), meta, module);
    }

    /// Remove the fusion layer `name`; whether it was here.
    pub fn remove_fusion(&mut self, name: &str) -> bool {
        self.fusions.remove(name).is_some()
    }

    /// The active setup (the same at every site of a model; see [`crate::set_active`]).
    pub fn active(&self) -> Option<&Setup> {
        self.active.as_ref()
    }

    /// Set the active setup of this site. Models set it on every site through
    /// [`crate::set_active`], which validates it first.
    pub fn set_active(&mut self, setup: Option<Setup>) {
        self.active = setup;
    }

    /// AdapterDrop: skip this site (`skip`), and in training skip it whenever one of `rules`
    /// (random draws shared by a block or the whole model) says so. Models set it through
    /// [`crate::set_adapter_drop`].
    pub fn set_drop(&mut self, skip: bool, rules: Vec<DropRule>) {
        self.skip = skip;
        self.drop = rules;
    }

    /// How many copies of the batch the active setup needs (see
    /// [`Setup::parallel_channels`]); models replicate their input by this.
    pub fn parallel_channels(&self) -> usize {
        self.active.as_ref().map_or(1, Setup::parallel_channels)
    }

    /// Whether `setup` uses any adapter of this site (AdapterHub's `get_active_setup`).
    fn applies(&self, setup: &Setup) -> bool {
        setup.names().iter().any(|n| self.adapter(n).is_some())
    }

    /// Whether AdapterDrop skips the site in this forward pass. Called exactly once per site
    /// and pass (the block's shared draw counts its sites).
    fn dropped(&self, device: &Device) -> bool {
        let random = crate::adapter_drop::any_dropped(&self.drop, device);
        self.skip || random
    }

    /// The sub-layer's residual connection through the active adapters.
    ///
    /// - `hidden`: the sub-layer output `h` (after its dropout), `[batch, seq, d_model]`;
    /// - `input`: the sub-layer input `x`, same shape;
    /// - `layer_norm`: the sub-layer's own LayerNorm for post-LN models (BERT), `None` for
    ///   pre-LN models (GPT-2).
    ///
    /// Without an active adapter at this site it is `LN(h + x)` (or `h + x`). With a
    /// `Parallel` setup the batch must already be replicated
    /// ([`AdapterLayer::parallel_channels`] copies, one after another).
    pub fn forward(
        &self,
        hidden: Tensor<3>,
        input: Tensor<3>,
        layer_norm: Option<&LayerNorm>,
    ) -> Tensor<3> {
        let dropped = self.dropped(&hidden.device());
        let setup = match &self.active {
            Some(s) if !dropped => s,
            _ => return add_norm(hidden, input, layer_norm),
        };
        match setup {
            Setup::Route(routes) => self.forward_routed(routes, hidden, input, layer_norm),
            s => self.forward_setup(s, hidden, input, layer_norm),
        }
    }

    /// One setup for every row: AdapterHub's `bottleneck_layer_forward`.
    fn forward_setup(
        &self,
        setup: &Setup,
        hidden: Tensor<3>,
        input: Tensor<3>,
        layer_norm: Option<&LayerNorm>,
    ) -> Tensor<3> {
        if !self.applies(setup) {
            return add_norm(hidden, input, layer_norm);
        }
        let state = State {
            hidden: hidden.clone(),
            input: input.clone(),
            residual: input.clone(),
            up: None,
            last: None,
        };
        // AdapterHub activates a bare name as `Stack(name)`.
        let state = match setup {
            Setup::Single(_) => self.compose_stack(std::slice::from_ref(setup), state, layer_norm),
            s => self.compose(s, state, layer_norm),
        };
        match state.last.as_deref().and_then(|n| self.adapter(n)) {
            Some(last) => last.post_forward(state.hidden, hidden, state.input, layer_norm),
            None => add_norm(state.hidden, state.input, layer_norm),
        }
    }

    /// Per-example routing: rows grouped by their setup, each group run as if alone, the
    /// results put back in the batch order.
    fn forward_routed(
        &self,
        routes: &[Option<Setup>],
        hidden: Tensor<3>,
        input: Tensor<3>,
        layer_norm: Option<&LayerNorm>,
    ) -> Tensor<3> {
        let mut groups: Vec<(Option<&Setup>, Vec<usize>)> = Vec::new();
        for (row, route) in routes.iter().enumerate() {
            let route = route.as_ref().filter(|s| self.applies(s));
            match groups.iter_mut().find(|(s, _)| *s == route) {
                Some((_, rows)) => rows.push(row),
                None => groups.push((route, vec![row])),
            }
        }
        let run = |setup: Option<&Setup>, h: Tensor<3>, x: Tensor<3>| match setup {
            Some(s) => self.forward_setup(s, h, x, layer_norm),
            None => add_norm(h, x, layer_norm),
        };
        if groups.len() == 1 {
            let (setup, _) = groups.remove(0);
            return run(setup, hidden, input);
        }
        let device = hidden.device();
        let index = |rows: &[usize]| {
            let ids: Vec<i64> = rows.iter().map(|&r| r as i64).collect();
            Tensor::<1, Int>::from_data(TensorData::new(ids, [rows.len()]), &device)
        };
        let mut outputs = Vec::with_capacity(groups.len());
        let mut order = Vec::with_capacity(routes.len());
        for (setup, rows) in &groups {
            let idx = index(rows);
            outputs.push(run(
                *setup,
                hidden.clone().select(0, idx.clone()),
                input.clone().select(0, idx),
            ));
            order.extend_from_slice(rows);
        }
        // `order[k]` is the batch row of concatenated row k; invert it.
        let mut inverse = vec![0usize; order.len()];
        for (k, &row) in order.iter().enumerate() {
            inverse[row] = k;
        }
        Tensor::cat(outputs, 0).select(0, index(&inverse))
    }

    fn compose(&self, setup: &Setup, state: State, ln: Option<&LayerNorm>) -> State {
        match setup {
            Setup::Single(name) => self.compose_single(name, state),
            Setup::Stack(children) => self.compose_stack(children, state, ln),
            Setup::Parallel(children) => {
                let channels = children.len().max(1);
                let rows = state.hidden.dims()[0];
                if !rows.is_multiple_of(channels) {
                    return state;
                }
                let per = rows / channels;
                let sizes = vec![per; channels];
                self.compose_split(setup, children, &sizes, state, ln)
            }
            Setup::BatchSplit {
                children,
                batch_sizes,
            } => {
                let rows = state.hidden.dims()[0];
                if batch_sizes.iter().sum::<usize>() != rows {
                    return state;
                }
                self.compose_split(setup, children, batch_sizes, state, ln)
            }
            Setup::Average { children, weights } => {
                self.compose_average(setup, children, weights, state, ln)
            }
            Setup::Fuse(children) => self.compose_fuse(setup, children, state, ln),
            // Routes are resolved in `forward`; one nested here is rejected by validation.
            Setup::Route(_) => state,
        }
    }

    /// AdapterHub's `pre_block`: the first adapter's `pre_forward`.
    fn pre_block(&self, setup: &Setup, state: State, ln: Option<&LayerNorm>) -> State {
        let Some(first) = setup.first().and_then(|n| self.adapter(n)) else {
            return state;
        };
        let (hidden, _, residual) = first.pre_forward(state.hidden, state.input.clone(), ln, false);
        State {
            hidden,
            residual,
            ..state
        }
    }

    /// AdapterHub's `compose_single`: the adapter's `forward` (no pre/post step).
    fn compose_single(&self, name: &str, state: State) -> State {
        let Some(adapter) = self.adapter(name) else {
            return state;
        };
        let (hidden, up) = adapter.forward_adapter(state.hidden, state.residual.clone());
        State {
            hidden,
            up: Some(up),
            last: Some(name.to_string()),
            ..state
        }
    }

    fn compose_stack(&self, children: &[Setup], mut state: State, ln: Option<&LayerNorm>) -> State {
        for child in children {
            state = match child {
                Setup::Single(name) if self.adapter(name).is_some() => {
                    let state = self.pre_block(child, state, ln);
                    self.compose_single(name, state)
                }
                Setup::Single(_) => state,
                block => self.compose(block, state, ln),
            };
        }
        state
    }

    /// `Parallel` and `BatchSplit`: consecutive row slices to the children.
    fn compose_split(
        &self,
        setup: &Setup,
        children: &[Setup],
        sizes: &[usize],
        state: State,
        ln: Option<&LayerNorm>,
    ) -> State {
        let state = self.pre_block(setup, state, ln);
        let mut start = 0;
        let mut parts = Vec::with_capacity(children.len());
        for (child, &n) in children.iter().zip(sizes) {
            let part = state.rows(start, start + n);
            start += n;
            parts.push(self.compose(child, part, ln));
        }
        State::concat(parts).unwrap_or(state)
    }

    fn compose_average(
        &self,
        setup: &Setup,
        children: &[Setup],
        weights: &[f64],
        state: State,
        ln: Option<&LayerNorm>,
    ) -> State {
        let state = self.pre_block(setup, state, ln);
        let weights = Setup::normalised_weights(weights);
        let mut outs: Vec<(f64, State)> = Vec::new();
        for (child, &w) in children.iter().zip(&weights) {
            let applies = match child {
                Setup::Single(name) => self.adapter(name).is_some(),
                _ => true,
            };
            if applies {
                let s = State {
                    hidden: state.hidden.clone(),
                    input: state.input.clone(),
                    residual: state.residual.clone(),
                    up: state.up.clone(),
                    last: state.last.clone(),
                };
                outs.push((w, self.compose(child, s, ln)));
            }
        }
        let n = outs.len();
        let Some(last) = outs.last().map(|(_, s)| s.last.clone()) else {
            return state;
        };
        // AdapterHub: torch.mean(stack(h_i) * w_i, dim=0).
        let mut iter = outs.into_iter();
        let Some((w0, first)) = iter.next() else {
            return state;
        };
        let mut sum = first.hidden * w0;
        for (w, s) in iter {
            sum = sum + s.hidden * w;
        }
        State {
            hidden: sum / n as f64,
            input: first.input,
            residual: first.residual,
            up: first.up,
            last,
        }
    }

    fn compose_fuse(
        &self,
        setup: &Setup,
        children: &[Setup],
        state: State,
        ln: Option<&LayerNorm>,
    ) -> State {
        let name = setup.fusion_name().unwrap_or_default();
        let (Some(fusion), Some(last_name)) = (self.fusion(&name), setup.last()) else {
            return state;
        };
        let Some(last) = self.adapter(last_name) else {
            return state;
        };
        let (hidden, query, residual) = last.pre_forward(
            state.hidden,
            state.input.clone(),
            ln,
            fusion.query_before_ln,
        );
        let state = State {
            hidden,
            residual,
            ..state
        };
        let mut ups = Vec::with_capacity(children.len());
        for child in children {
            let applies = match child {
                Setup::Single(name) => self.adapter(name).is_some(),
                _ => true,
            };
            if !applies {
                continue;
            }
            let s = State {
                hidden: state.hidden.clone(),
                input: state.input.clone(),
                residual: state.residual.clone(),
                up: None,
                last: None,
            };
            if let Some(up) = self.compose(child, s, ln).up {
                ups.push(up);
            }
        }
        if ups.is_empty() {
            return state;
        }
        let hidden = fusion.forward(query, Tensor::stack(ups, 2), state.residual.clone());
        State {
            hidden,
            last: Some(last_name.to_string()),
            ..state
        }
    }
}

impl Module for AdapterLayer {
    fn collect_devices(&self, devices: Devices) -> Devices {
        self.fusions
            .collect_devices(self.adapters.collect_devices(devices))
    }

    fn fork(self, device: &Device) -> Self {
        Self {
            adapters: self.adapters.fork(device),
            fusions: self.fusions.fork(device),
            ..self
        }
    }

    fn to_device(self, device: &Device) -> Self {
        Self {
            adapters: self.adapters.to_device(device),
            fusions: self.fusions.to_device(device),
            ..self
        }
    }

    fn train(self) -> Self {
        Self {
            adapters: self.adapters.train(),
            fusions: self.fusions.train(),
            ..self
        }
    }

    fn valid(&self) -> Self {
        Self {
            adapters: self.adapters.valid(),
            fusions: self.fusions.valid(),
            ..self.clone()
        }
    }

    fn materialize(self) -> Self {
        Self {
            adapters: self.adapters.materialize(),
            fusions: self.fusions.materialize(),
            ..self
        }
    }

    fn num_params(&self) -> usize {
        Module::num_params(&self.adapters) + Module::num_params(&self.fusions)
    }

    /// Adapters and fusion layers are children named after themselves (no level of their own).
    fn visit<V: ModuleVisitor>(&self, visitor: &mut V) {
        self.adapters.visit(visitor);
        self.fusions.visit(visitor);
    }

    fn map<M: ModuleMapper>(self, mapper: &mut M) -> Self {
        Self {
            adapters: self.adapters.map(mapper),
            fusions: self.fusions.map(mapper),
            ..self
        }
    }
}

impl ModuleDisplayDefault for AdapterLayer {
    fn content(&self, content: Content) -> Option<Content> {
        let content = self
            .adapters
            .iter()
            .fold(content, |acc, (n, _, m)| acc.add(n, m));
        self.fusions
            .iter()
            .fold(content, |acc, (n, _, m)| acc.add(n, m))
            .set_top_level_type("AdapterLayer")
            .optional()
    }
}

impl ModuleDisplay for AdapterLayer {}

/// `channels` copies of `t` along the batch dimension, one after another (AdapterHub's
/// `repeat` for `Parallel`): what a model does to its embeddings and attention mask when the
/// active setup needs [`AdapterLayer::parallel_channels`] > 1.
pub fn replicate_batch<const D: usize>(t: Tensor<D>, channels: usize) -> Tensor<D> {
    if channels <= 1 {
        return t;
    }
    Tensor::cat(vec![t; channels], 0)
}

#[cfg(test)]
#[path = "site_tests.rs"]
mod tests;
