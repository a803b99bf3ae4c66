//! The named-adapter verbs over any model with adapter sites ([`AdapterHost`]), and their
//! reports.

use crate::config::{AdapterConfig, AdapterSite};
use crate::error::{PeftError, Result};
pub use crate::fusion_attach::{add_fusion, delete_fusion, fusion_regularization, fusions};
use crate::linear_attach::{add_ia3, add_lora, check_linear_setup, for_each_linear};
pub use crate::linear_attach::{linear_sites, merge_adapter, unmerge_adapter};
use crate::linear_site::LinearSite;
use crate::lora::LinearTarget;
use crate::method::MethodConfig;
use crate::prefix::PrefixPool;
pub use crate::prefix_attach::eject_prefix;
use crate::prefix_attach::{add_prefix, add_prompt};
use crate::setup::Setup;
use crate::site::AdapterLayer;

/// Where in a block a module was attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SitePlace {
    /// A residual site (bottleneck adapters).
    Residual(AdapterSite),
    /// A linear projection (LoRA).
    Linear(LinearTarget),
    /// The keys and values of self-attention (prefix tuning).
    AttentionPrefix,
    /// The output of the embedding layer (prompt tuning).
    Embeddings,
}

impl SitePlace {
    /// A short name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Residual(s) => s.name(),
            Self::Linear(t) => t.name(),
            Self::AttentionPrefix => "attention_prefix",
            Self::Embeddings => "embeddings",
        }
    }
}

/// One adapter that was attached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttachedSite {
    /// Block index.
    pub layer: usize,
    /// Where in the block.
    pub site: SitePlace,
    /// Bottleneck width (bottleneck adapters), rank (LoRA) or vector width (IA³).
    pub bottleneck: usize,
    /// Parameters of this adapter.
    pub params: usize,
}

/// What attaching adapters did: one entry per adapter, in model order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AttachReport {
    /// The adapters attached.
    pub attached: Vec<AttachedSite>,
    /// Adapters that were already attached and have been removed first.
    pub replaced: usize,
}

impl AttachReport {
    /// Total adapter parameters attached.
    pub fn params(&self) -> usize {
        self.attached.iter().map(|a| a.params).sum()
    }

    /// Error with `what` if nothing was attached; otherwise the report itself.
    pub fn require_some(self, what: &str) -> Result<Self> {
        if self.attached.is_empty() {
            Err(PeftError::NothingMatched(what.to_string()))
        } else {
            Ok(self)
        }
    }
}

impl std::fmt::Display for AttachReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} adapter(s), {} parameters",
            self.attached.len(),
            self.params()
        )?;
        for a in &self.attached {
            write!(
                f,
                "\n  layer {:>2} {:<20} bottleneck {}",
                a.layer,
                a.site.name(),
                a.bottleneck
            )?;
        }
        Ok(())
    }
}

/// The default name [`attach_adapters`] gives its adapter.
pub const DEFAULT_ADAPTER: &str = "default";

/// A model with adapter sites: one [`AdapterLayer`] per block and [`AdapterSite`].
///
/// Models implement the accessors; the verbs ([`add_adapter`], [`delete_adapter`],
/// [`set_active`], [`add_fusion`], [`adapters`], [`set_adapter_drop`](crate::set_adapter_drop)) work the same way for
/// every architecture.
pub trait AdapterHost {
    /// Number of Transformer blocks.
    fn num_layers(&self) -> usize;
    /// Model width (the adapter's input and output size).
    fn d_model(&self) -> usize;
    /// The model's attention-probability dropout (the default dropout of fusion layers).
    fn attention_dropout(&self) -> f64 {
        0.0
    }
    /// The site of block `layer` at `site`, or `None` if the model has no such site.
    fn adapter_layer(&self, layer: usize, site: AdapterSite) -> Option<&AdapterLayer>;
    /// The same, mutable.
    fn adapter_layer_mut(&mut self, layer: usize, site: AdapterSite) -> Option<&mut AdapterLayer>;
    /// The linear projection `target` of block `layer`, or `None` if the model has none there
    /// (the default: a model without [`LinearSite`]s).
    fn linear_site(&self, layer: usize, target: LinearTarget) -> Option<&LinearSite> {
        let _ = (layer, target);
        None
    }
    /// The same, mutable.
    fn linear_site_mut(&mut self, layer: usize, target: LinearTarget) -> Option<&mut LinearSite> {
        let _ = (layer, target);
        None
    }
    /// The model's prefix-tuning pool, or `None` if it takes no prefixes (the default).
    fn prefix_pool(&self) -> Option<&PrefixPool> {
        None
    }
    /// The same, mutable.
    fn prefix_pool_mut(&mut self) -> Option<&mut PrefixPool> {
        None
    }
    /// Whether the model puts a prompt-tuning prompt placed as `combine` in front of its
    /// embeddings (default: no).
    fn takes_prompt(&self, combine: crate::PromptCombine) -> bool {
        let _ = combine;
        false
    }
    /// Attention heads per layer (the shape of prefix-tuning prefixes); 0 when unknown.
    fn num_attention_heads(&self) -> usize {
        0
    }
}

/// Every site of `host`, with its block index and kind.
pub fn sites<H: AdapterHost + ?Sized>(host: &H) -> Vec<(usize, AdapterSite, &AdapterLayer)> {
    let mut out = Vec::new();
    for layer in 0..host.num_layers() {
        for site in AdapterSite::ALL {
            if let Some(s) = host.adapter_layer(layer, site) {
                out.push((layer, site, s));
            }
        }
    }
    out
}

pub(crate) fn for_each_site<H: AdapterHost + ?Sized>(
    host: &mut H,
    mut f: impl FnMut(usize, AdapterSite, &mut AdapterLayer),
) {
    for layer in 0..host.num_layers() {
        for site in AdapterSite::ALL {
            if let Some(s) = host.adapter_layer_mut(layer, site) {
                f(layer, site, s);
            }
        }
    }
}

/// A named adapter on a model: what [`adapters`] lists.
#[derive(Clone, Debug, PartialEq)]
pub struct AdapterInfo {
    /// The adapter's name.
    pub name: String,
    /// The config it was built from.
    pub config: MethodConfig,
    /// Parameters over all its sites.
    pub params: usize,
    /// Where it sits: `(block, site)`.
    pub sites: Vec<(usize, SitePlace)>,
    /// Whether it is merged into the frozen weights ([`merge_adapter`]).
    pub merged: bool,
}

/// The named adapters of `host`, in the order they were added.
pub fn adapters<H: AdapterHost + ?Sized>(host: &H) -> Vec<AdapterInfo> {
    let mut out: Vec<AdapterInfo> = Vec::new();
    for (layer, site, s) in sites(host) {
        for (name, config, module) in s.adapters().iter() {
            let params = burn::module::Module::num_params(module);
            let place = (layer, SitePlace::Residual(site));
            record(&mut out, name, || config.into(), params, place, false);
        }
    }
    for (layer, target, s) in linear_sites(host) {
        for (name, config, module) in s.lora().iter() {
            let params = burn::module::Module::num_params(module);
            let place = (layer, SitePlace::Linear(target));
            let merged = s.merged().iter().any(|m| m == name);
            record(&mut out, name, || config.into(), params, place, merged);
        }
        for (name, config, module) in s.ia3().iter() {
            let params = burn::module::Module::num_params(module);
            let place = (layer, SitePlace::Linear(target));
            let merged = s.merged().iter().any(|m| m == name);
            record(&mut out, name, || config.into(), params, place, merged);
        }
    }
    if let Some(pool) = host.prefix_pool() {
        for (name, config, module) in pool.adapters().iter() {
            let params = burn::module::Module::num_params(module);
            let sites = module
                .layers
                .iter()
                .map(|&l| (l, SitePlace::AttentionPrefix))
                .collect();
            out.push(AdapterInfo {
                name: name.to_string(),
                config: config.into(),
                params,
                sites,
                merged: false,
            });
        }
        for (name, config, module) in pool.prompts().iter() {
            out.push(AdapterInfo {
                name: name.to_string(),
                config: config.into(),
                params: burn::module::Module::num_params(module),
                sites: vec![(0, SitePlace::Embeddings)],
                merged: false,
            });
        }
    }
    out
}

fn record(
    out: &mut Vec<AdapterInfo>,
    name: &str,
    config: impl FnOnce() -> MethodConfig,
    params: usize,
    place: (usize, SitePlace),
    merged: bool,
) {
    match out.iter_mut().find(|i| i.name == name) {
        Some(info) => {
            info.params += params;
            info.sites.push(place);
            info.merged |= merged;
        }
        None => out.push(AdapterInfo {
            name: name.to_string(),
            config: config(),
            params,
            sites: vec![place],
            merged,
        }),
    }
}

pub(crate) fn names_of<H: AdapterHost + ?Sized>(host: &H) -> String {
    let names: Vec<String> = adapters(host).into_iter().map(|a| a.name).collect();
    if names.is_empty() {
        "no adapters".into()
    } else {
        names.join(", ")
    }
}

/// Add a fresh adapter named `name` at every site `config` targets. Other adapters, the
/// active setup and the base are left as they are (activate it with [`set_active`]).
///
/// Errors (the model unchanged): an invalid name or config, a name already in use, layer
/// indices beyond the model, or no site matched.
pub fn add_adapter<H: AdapterHost + ?Sized, C: Clone + Into<MethodConfig>>(
    host: &mut H,
    name: &str,
    config: &C,
    device: &burn::tensor::Device,
) -> Result<AttachReport> {
    crate::setup::check_name(name)?;
    if adapters(host).iter().any(|a| a.name == name) {
        return Err(PeftError::AlreadyExists {
            kind: "adapter",
            name: name.to_string(),
        });
    }
    match config.clone().into() {
        MethodConfig::Bottleneck(c) => add_bottleneck(host, name, &c, device),
        MethodConfig::Lora(c) => add_lora(host, name, &c, device),
        MethodConfig::Ia3(c) => add_ia3(host, name, &c, device),
        MethodConfig::PrefixTuning(c) => add_prefix(host, name, &c, device),
        MethodConfig::PromptTuning(c) => add_prompt(host, name, &c, device),
    }
}

pub(crate) fn check_layers(what: &str, layers: &[usize], num_layers: usize) -> Result<()> {
    match layers.iter().find(|&&l| l >= num_layers) {
        Some(bad) => Err(PeftError::InvalidConfig(format!(
            "{what} names layer {bad}, but the model has {num_layers} layers"
        ))),
        None => Ok(()),
    }
}

fn add_bottleneck<H: AdapterHost + ?Sized>(
    host: &mut H,
    name: &str,
    config: &AdapterConfig,
    device: &burn::tensor::Device,
) -> Result<AttachReport> {
    config.validate()?;
    let d_model = host.d_model();
    let num_layers = host.num_layers();
    if let Some(bad) = config
        .placement
        .leave_out
        .iter()
        .find(|&&l| l >= num_layers)
    {
        return Err(PeftError::InvalidConfig(format!(
            "leave_out names layer {bad}, but the model has {num_layers} layers"
        )));
    }
    if let Some(bad) = config.layer_widths.keys().find(|&&l| l >= num_layers) {
        return Err(PeftError::InvalidConfig(format!(
            "layer_widths names layer {bad}, but the model has {num_layers} layers"
        )));
    }
    let wiring = config.placement.wiring();
    // Build everything first so that an error leaves the model untouched.
    let mut planned = Vec::new();
    for layer in 0..num_layers {
        for site in AdapterSite::ALL {
            if config.placement.targets(layer, site) && host.adapter_layer(layer, site).is_some() {
                let width = config.width_for_layer(layer, d_model)?;
                let adapter = config.bottleneck.init(d_model, width, wiring, device)?;
                planned.push((layer, site, width, adapter));
            }
        }
    }
    if planned.is_empty() {
        return Err(PeftError::NothingMatched(
            "the placement targets no site of this model".into(),
        ));
    }
    let mut report = AttachReport::default();
    for (layer, site, width, adapter) in planned {
        let params = burn::module::Module::num_params(&adapter);
        if let Some(slot) = host.adapter_layer_mut(layer, site) {
            slot.insert(name, config.clone(), adapter);
            report.attached.push(AttachedSite {
                layer,
                site: SitePlace::Residual(site),
                bottleneck: width,
                params,
            });
        }
    }
    Ok(report)
}

/// Delete adapter `name` everywhere, with the fusion layers that use it; an active setup that
/// names it is switched off. Returns the number of sites it was removed from.
pub fn delete_adapter<H: AdapterHost + ?Sized>(host: &mut H, name: &str) -> Result<usize> {
    if !adapters(host).iter().any(|a| a.name == name) {
        return Err(PeftError::NotFound {
            kind: "adapter",
            name: name.to_string(),
            available: names_of(host),
        });
    }
    let uses = active_setup(host).is_some_and(|s| s.names().contains(name));
    let mut removed = 0;
    for_each_site(host, |_, _, s| {
        if s.remove(name) {
            removed += 1;
        }
        if uses {
            s.set_active(None);
        }
    });
    for_each_linear(host, |_, _, s| {
        if s.remove(name) {
            removed += 1;
        }
        if uses {
            s.set_active(None);
        }
    });
    if let Some(pool) = host.prefix_pool_mut() {
        if pool.remove(name) {
            removed += 1;
        }
        if uses {
            pool.set_active(None);
        }
    }
    Ok(removed)
}

/// Activate `setup` (or switch adapters off with `None`) at every site.
///
/// The setup is checked first ([`Setup::validate`]): AdapterHub's nesting rules, every name an
/// adapter of the model, every `Fuse` block backed by a fusion layer ([`add_fusion`]).
pub fn set_active<H: AdapterHost + ?Sized>(host: &mut H, setup: Option<Setup>) -> Result<()> {
    if let Some(s) = &setup {
        s.validate()?;
        let known = adapters(host);
        for n in s.names() {
            if !known.iter().any(|a| a.name == n) {
                return Err(PeftError::NotFound {
                    kind: "adapter",
                    name: n,
                    available: names_of(host),
                });
            }
        }
        check_linear_setup(s, &known)?;
        let mut fuse_names = Vec::new();
        collect_fusions(s, &mut fuse_names);
        let have: Vec<String> = fusions(host).iter().map(|f| f.join(",")).collect();
        if let Some(missing) = fuse_names.into_iter().find(|n| !have.contains(n)) {
            return Err(PeftError::NotFound {
                kind: "fusion",
                name: missing,
                available: if have.is_empty() {
                    "no fusions".into()
                } else {
                    have.join("; ")
                },
            });
        }
    }
    for_each_site(host, |_, _, s| s.set_active(setup.clone()));
    for_each_linear(host, |_, _, s| s.set_active(setup.clone()));
    if let Some(pool) = host.prefix_pool_mut() {
        pool.set_active(setup);
    }
    Ok(())
}

fn collect_fusions(setup: &Setup, out: &mut Vec<String>) {
    if let Some(n) = setup.fusion_name() {
        out.push(n);
    }
    match setup {
        Setup::Route(routes) => routes
            .iter()
            .flatten()
            .for_each(|r| collect_fusions(r, out)),
        _ => setup
            .children()
            .iter()
            .for_each(|c| collect_fusions(c, out)),
    }
}

/// The active setup (read from the first site; [`set_active`] sets all alike).
pub fn active_setup<H: AdapterHost + ?Sized>(host: &H) -> Option<Setup> {
    sites(host)
        .first()
        .and_then(|(_, _, s)| s.active().cloned())
}

/// How many copies of the batch the active setup needs (1 without `Parallel`).
pub fn parallel_channels<H: AdapterHost + ?Sized>(host: &H) -> usize {
    sites(host)
        .first()
        .map_or(1, |(_, _, s)| s.parallel_channels())
}

/// Check that the active setup fits a batch of `batch` examples (see [`Setup::check_batch`]):
/// models call this with their other input checks, before any tensor op.
pub fn check_active_batch<H: AdapterHost + ?Sized>(host: &H, batch: usize) -> Result<()> {
    match active_setup(host) {
        Some(s) => s.check_batch(batch),
        None => Ok(()),
    }
}

/// The one-adapter shortcut: delete every adapter, add a fresh one named
/// [`DEFAULT_ADAPTER`] from `config`, and activate it. The same as [`add_adapter`] +
/// [`set_active`] on an empty model.
///
/// Errors if `config` is invalid or matched no site (e.g. every layer left out), in which case
/// the model is left unchanged.
pub fn attach_adapters<H: AdapterHost + ?Sized>(
    host: &mut H,
    config: &crate::AdapterConfig,
    device: &burn::tensor::Device,
) -> Result<AttachReport> {
    // Check on a model without adapters first, so a failure leaves this one as it was.
    config.validate()?;
    let previous: Vec<_> = sites(host)
        .into_iter()
        .map(|(l, s, layer)| (l, s, layer.clone()))
        .collect();
    let previous_linear: Vec<_> = linear_sites(host)
        .into_iter()
        .map(|(l, t, site)| (l, t, site.clone()))
        .collect();
    let previous_pool = host.prefix_pool().cloned();
    let replaced = remove_adapters(host);
    match add_adapter(host, DEFAULT_ADAPTER, config, device) {
        Ok(mut report) => {
            set_active(host, Some(Setup::single(DEFAULT_ADAPTER)))?;
            report.replaced = replaced;
            Ok(report)
        }
        Err(e) => {
            for (l, s, layer) in previous {
                if let Some(slot) = host.adapter_layer_mut(l, s) {
                    *slot = layer;
                }
            }
            for (l, t, site) in previous_linear {
                if let Some(slot) = host.linear_site_mut(l, t) {
                    *slot = site;
                }
            }
            if let (Some(pool), Some(slot)) = (previous_pool, host.prefix_pool_mut()) {
                *slot = pool;
            }
            Err(e)
        }
    }
}

/// Remove every adapter and fusion and switch adapters off; returns how many adapter modules
/// were removed.
pub fn remove_adapters<H: AdapterHost + ?Sized>(host: &mut H) -> usize {
    let mut removed = 0;
    for_each_site(host, |_, _, s| {
        removed += s.adapters().len();
        *s = AdapterLayer::new();
    });
    for_each_linear(host, |_, _, s| {
        removed += s.clear();
        s.set_active(None);
    });
    if let Some(pool) = host.prefix_pool_mut() {
        removed += pool.clear();
    }
    removed
}

#[cfg(test)]
#[path = "attach_tests.rs"]
mod tests;
