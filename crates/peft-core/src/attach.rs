//! The named-adapter verbs over any model with adapter sites ([`AdapterHost`]), and their
//! reports.

use crate::config::{AdapterConfig, AdapterSite};
use crate::error::{PeftError, Result};
use crate::fusion::FusionConfig;
use crate::linear_attach::{
    add_ia3, add_lora, check_linear_setup, for_each_linear, require_adapter,
};
pub use crate::linear_attach::{linear_sites, merge_adapter, unmerge_adapter};
use crate::linear_site::LinearSite;
use crate::lora::LinearTarget;
use crate::method::{MethodConfig, MethodKind};
use crate::prefix::{PrefixPool, PrefixTuningConfig};
use crate::prompt::PromptTuningConfig;
use crate::setup::Setup;
use crate::site::AdapterLayer;
use burn::tensor::Tensor;

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
    /// Whether the model puts a prompt-tuning prompt in front of its embeddings (default: no).
    fn takes_prompts(&self) -> bool {
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

/// The fusion layers of `host`: each as the list of adapters it fuses.
pub fn fusions<H: AdapterHost + ?Sized>(host: &H) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = Vec::new();
    for (_, _, s) in sites(host) {
        for (_, meta, _) in s.fusions().iter() {
            if !out.contains(&meta.adapters) {
                out.push(meta.adapters.clone());
            }
        }
    }
    out
}

/// AdapterHub's fusion regularisation (`get_fusion_regularization_loss`, `adapters` 1.3.0):
/// `0.01 · Σ (I − V)²` summed over every fusion layer whose value projection `V` trains
/// (requires grad) and whose [`FusionConfig::regularization`] is on; `None` when no fusion
/// layer qualifies. `[1]`.
///
/// The training tasks of `peft-train` add it to the loss they differentiate (not to the loss
/// they report). AdapterHub applies the same gradient one optimizer step late (its
/// `AdapterTrainerCallback.on_step_end` back-propagates it after the step, so it joins the next
/// step's gradients, computed at the same weights); its first step therefore has none, ours
/// has it from the first step. AdapterHub also ignores the config flag and regularises every
/// trainable value projection; we honour the flag (`dynamic` has it on, `static` has no value
/// projection).
pub fn fusion_regularization<H: AdapterHost + ?Sized>(host: &H) -> Option<Tensor<1>> {
    let mut total: Option<Tensor<1>> = None;
    for (_, _, s) in sites(host) {
        for (_, meta, fusion) in s.fusions().iter() {
            let trains = fusion
                .value
                .as_ref()
                .is_some_and(|v| v.weight.val().is_require_grad());
            if !meta.config.regularization || !trains {
                continue;
            }
            if let Some(r) = fusion.regularization() {
                total = Some(match total {
                    Some(t) => t + r,
                    None => r,
                });
            }
        }
    }
    total
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

fn add_prefix<H: AdapterHost + ?Sized>(
    host: &mut H,
    name: &str,
    config: &PrefixTuningConfig,
    device: &burn::tensor::Device,
) -> Result<AttachReport> {
    config.validate()?;
    let num_layers = host.num_layers();
    check_layers("leave_out", &config.leave_out, num_layers)?;
    let heads = host.num_attention_heads();
    let d_model = host.d_model();
    if host.prefix_pool().is_none() || heads == 0 || !d_model.is_multiple_of(heads) {
        return Err(PeftError::NothingMatched(
            "this model takes no prefix-tuning prefixes".into(),
        ));
    }
    let module = config.init(config.layers(num_layers), heads, d_model / heads, device)?;
    // One module serves every layer: its parameters are reported on the first.
    let total = burn::module::Module::num_params(&module);
    let mut report = AttachReport::default();
    for (i, &layer) in module.layers.iter().enumerate() {
        report.attached.push(AttachedSite {
            layer,
            site: SitePlace::AttentionPrefix,
            bottleneck: config.prefix_length,
            params: if i == 0 { total } else { 0 },
        });
    }
    if let Some(pool) = host.prefix_pool_mut() {
        pool.insert(name, config.clone(), module);
    }
    Ok(report)
}

fn add_prompt<H: AdapterHost + ?Sized>(
    host: &mut H,
    name: &str,
    config: &PromptTuningConfig,
    device: &burn::tensor::Device,
) -> Result<AttachReport> {
    config.validate()?;
    if host.prefix_pool().is_none() || !host.takes_prompts() {
        return Err(PeftError::NothingMatched(
            "this model takes no prompt-tuning prompt".into(),
        ));
    }
    let module = config.init(host.d_model(), device)?;
    let report = AttachReport {
        attached: vec![AttachedSite {
            layer: 0,
            site: SitePlace::Embeddings,
            bottleneck: config.prompt_length,
            params: burn::module::Module::num_params(&module),
        }],
        replaced: 0,
    };
    if let Some(pool) = host.prefix_pool_mut() {
        pool.insert_prompt(name, config.clone(), module);
    }
    Ok(report)
}

/// Collapse prefix-tuning adapter `name`'s re-parameterisation MLP into plain prefixes
/// (AdapterHub's `eject_prefix_tuning`): outputs are unchanged, the MLP parameters are gone and
/// the adapter's config reads `flat: true`. Do this before saving for inference.
///
/// Errors: no such adapter, or not a prefix-tuning adapter.
pub fn eject_prefix<H: AdapterHost + ?Sized>(host: &mut H, name: &str) -> Result<()> {
    let info = require_adapter(host, name)?;
    if info.config.kind() != MethodKind::PrefixTuning {
        return Err(PeftError::InvalidSetup(format!(
            "adapter `{name}` is a {} adapter, not prefix tuning",
            info.config.kind().name()
        )));
    }
    if let Some(pool) = host.prefix_pool_mut() {
        pool.eject(name);
    }
    Ok(())
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

/// Add an AdapterFusion layer over the named adapters (in that order) at every site where all
/// of them sit (AdapterHub's rule). Its name is the names joined by `,`.
pub fn add_fusion<H: AdapterHost + ?Sized, S: AsRef<str>>(
    host: &mut H,
    names: &[S],
    config: &FusionConfig,
    device: &burn::tensor::Device,
) -> Result<usize> {
    let names: Vec<String> = names.iter().map(|n| n.as_ref().to_string()).collect();
    if names.len() < 2 {
        return Err(PeftError::InvalidSetup(
            "a fusion needs at least two adapters".into(),
        ));
    }
    config.validate()?;
    let known = adapters(host);
    for n in &names {
        if !known.iter().any(|a| &a.name == n) {
            return Err(PeftError::NotFound {
                kind: "adapter",
                name: n.clone(),
                available: names_of(host),
            });
        }
    }
    if fusions(host).contains(&names) {
        return Err(PeftError::AlreadyExists {
            kind: "fusion",
            name: names.join(","),
        });
    }
    let d_model = host.d_model();
    let dropout = host.attention_dropout();
    let mut planned = Vec::new();
    for (layer, site, s) in sites(host) {
        if names.iter().all(|n| s.adapter(n).is_some()) {
            planned.push((layer, site, config.init(d_model, dropout, device)?));
        }
    }
    if planned.is_empty() {
        return Err(PeftError::NothingMatched(format!(
            "no site holds all of {}",
            names.join(", ")
        )));
    }
    let count = planned.len();
    for (layer, site, fusion) in planned {
        if let Some(s) = host.adapter_layer_mut(layer, site) {
            s.insert_fusion(&names, config.clone(), fusion);
        }
    }
    Ok(count)
}

/// Delete the fusion layer over `names`; returns the number of sites it was removed from.
pub fn delete_fusion<H: AdapterHost + ?Sized, S: AsRef<str>>(
    host: &mut H,
    names: &[S],
) -> Result<usize> {
    let name: Vec<&str> = names.iter().map(AsRef::as_ref).collect();
    let name = name.join(",");
    let mut removed = 0;
    for_each_site(host, |_, _, s| {
        if s.remove_fusion(&name) {
            removed += 1;
        }
    });
    if removed == 0 {
        return Err(PeftError::NotFound {
            kind: "fusion",
            name,
            available: fusions(host)
                .iter()
                .map(|f| f.join(","))
                .collect::<Vec<_>>()
                .join("; "),
        });
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
mod tests {
    use super::*;
    use crate::config::{AdapterConfig, AdapterPlacement, BottleneckWidth};
    use crate::freeze::{Trainable, freeze_except, param_summary, randomize_matching};
    use crate::testing::Toy;
    use burn::module::{Module, ModuleVisitor, Param};
    use burn::optim::{AdamWConfig, GradientsParams};
    use burn::tensor::{Device, Distribution, Tensor, TensorData};

    #[test]
    fn attaches_where_the_placement_says_and_reports_it() {
        let device = Device::flex();
        let mut toy = Toy::new(16, 3, &device);
        let report = attach_adapters(&mut toy, &AdapterConfig::houlsby(4.0), &device)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(report.attached.len(), 6);
        // (16*4 + 4) + (4*16 + 16) per adapter.
        assert_eq!(report.params(), 6 * 148);
        let mut pf = AdapterConfig::pfeiffer(4.0);
        pf.placement.leave_out = vec![1];
        pf.layer_widths.insert(2, BottleneckWidth::BottleneckDim(2));
        let report = attach_adapters(&mut toy, &pf, &device).unwrap_or_else(|e| panic!("{e}"));
        let got: Vec<_> = report
            .attached
            .iter()
            .map(|a| (a.layer, a.site, a.bottleneck))
            .collect();
        assert_eq!(
            got,
            vec![
                (0, SitePlace::Residual(AdapterSite::FeedForwardOutput), 4),
                (2, SitePlace::Residual(AdapterSite::FeedForwardOutput), 2)
            ]
        );
        assert_eq!(report.replaced, 6, "the houlsby adapters are removed first");
        assert_eq!(remove_adapters(&mut toy), 2);
        assert_eq!(remove_adapters(&mut toy), 0);
    }

    #[test]
    fn nothing_matched_and_bad_layers_are_errors() {
        let device = Device::flex();
        let mut toy = Toy::new(16, 2, &device);
        let mut all_out = AdapterConfig::pfeiffer(4.0);
        all_out.placement = AdapterPlacement::pfeiffer().with_leave_out(vec![0, 1]);
        assert!(matches!(
            attach_adapters(&mut toy, &all_out, &device),
            Err(PeftError::NothingMatched(_))
        ));
        let mut bad = AdapterConfig::pfeiffer(4.0);
        bad.placement.leave_out = vec![5];
        assert!(matches!(
            attach_adapters(&mut toy, &bad, &device),
            Err(PeftError::InvalidConfig(_))
        ));
        let too_wide = AdapterConfig::pfeiffer(32.0);
        assert!(matches!(
            attach_adapters(&mut toy, &too_wide, &device),
            Err(PeftError::InvalidConfig(_))
        ));
    }

    fn values(module: &Toy) -> Vec<(String, TensorData)> {
        struct V(Vec<String>, Vec<(String, TensorData)>);
        impl ModuleVisitor for V {
            fn enter_module(&mut self, name: &str, _: &str) {
                self.0.push(name.into());
            }
            fn exit_module(&mut self, _: &str, _: &str) {
                self.0.pop();
            }
            fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
                self.1.push((self.0.join("."), p.val().into_data()));
            }
        }
        let mut v = V(vec![], vec![]);
        module.visit(&mut v);
        v.1
    }

    /// One AdamW step on a real loss: base bit-identical, every adapter and head tensor changed,
    /// optimizer state only for trainable tensors.
    #[test]
    fn one_adamw_step_updates_only_adapters_and_head() {
        let device = Device::flex().autodiff();
        device.seed(11);
        let mut toy = Toy::new(8, 2, &device);
        attach_adapters(&mut toy, &AdapterConfig::houlsby(2.0), &device)
            .unwrap_or_else(|e| panic!("{e}"));
        let trainable = Trainable::adapters().with_pattern(r"^head\.");
        // Non-zero adapters: with a zero up-projection the down-projection gets no gradient
        // in the first step, which would hide a wrongly frozen tensor.
        let toy =
            randomize_matching(toy, crate::ADAPTER_PATTERN, 0.3).unwrap_or_else(|e| panic!("{e}"));
        let toy = freeze_except(toy, &trainable).unwrap_or_else(|e| panic!("{e}"));
        let summary = param_summary(&toy, &trainable).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(summary.trainable_tensors, 4 * 4 + 2);
        assert_eq!(summary.trainable, 4 * (8 * 4 + 4 + 4 * 8 + 8) + 8 * 2 + 2);
        let before = values(&toy);

        let mut optim = AdamWConfig::new().with_weight_decay(0.01).init();
        let x = Tensor::<3>::random([2, 3, 8], Distribution::Normal(0.0, 1.0), &device);
        let loss = toy.head.forward(toy.forward(x)).powf_scalar(2.0).mean();
        let grads = GradientsParams::from_grads(loss.backward(), &toy);
        assert_eq!(
            grads.len(),
            summary.trainable_tensors,
            "gradients only for trainable tensors"
        );
        let toy = optim.step(1e-2, toy, grads);
        let record = optim.to_record();
        // AdamW keeps two moments per trainable tensor and nothing for frozen ones.
        assert_eq!(record.len(), 2 * summary.trainable_tensors);

        for ((path, b), (_, a)) in before.iter().zip(values(&toy)) {
            let trains = trainable.matches(path).unwrap_or(false);
            if trains {
                assert_ne!(b, &a, "{path} should have changed");
            } else {
                assert_eq!(b, &a, "{path} is frozen and must be bit-identical");
            }
        }
    }

    #[test]
    fn randomized_adapters_change_the_output() {
        let device = Device::flex();
        let mut toy = Toy::new(8, 1, &device);
        let x = Tensor::<3>::random([1, 2, 8], Distribution::Normal(0.0, 1.0), &device);
        let base = toy.forward(x.clone()).into_data();
        attach_adapters(&mut toy, &AdapterConfig::houlsby(2.0), &device)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(toy.forward(x.clone()).into_data(), base);
        let toy =
            randomize_matching(toy, crate::ADAPTER_PATTERN, 0.5).unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(toy.forward(x).into_data(), base);
    }
}
