//! AdapterDrop (Rücklé et al. 2021, "AdapterDrop: On the Efficiency of Adapters in
//! Transformers"): skip the adapters of chosen blocks at inference, and drop each block's
//! adapters at random while training.
//!
//! Skipping is AdapterHub's `skip_layers` (`set_active_adapters(setup, skip_layers=…)`): the
//! named blocks run as the base model, in training and inference. Random dropping in training
//! is decided once per block and forward pass, for all of the block's sites together (the
//! attention-output and the feed-forward bottleneck adapters and the LoRA / IA³ modules of every
//! projection of a block are dropped or kept as one, as AdapterHub's AdapterDrop training does
//! by skipping whole layers), from the backend's seeded RNG, so a seeded run repeats bit for
//! bit. Merged LoRA / IA³ modules are part of the weights and are never dropped.

use std::sync::{Arc, Mutex};

use burn::tensor::Device;

use crate::attach::{AdapterHost, for_each_site};
use crate::config::AdapterSite;
use crate::error::{PeftError, Result};
use crate::lora::LinearTarget;

/// AdapterDrop settings for a whole model (apply them with [`set_adapter_drop`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AdapterDrop {
    /// Blocks whose adapters are skipped, in training and inference (AdapterHub's
    /// `skip_layers`), bottleneck adapters and LoRA / IA³ modules alike. Default: none.
    pub skip_layers: Vec<usize>,
    /// In training (on an autodiff device) the adapters of each block (bottleneck adapters and
    /// unmerged LoRA / IA³ modules, all its sites together) are skipped with this probability
    /// in every forward pass, independently per block; in `[0, 1)`. Default: 0.
    pub train_drop_prob: f64,
    /// The paper's "robust" AdapterDrop (and AdapterHub's AdapterDrop training notebook): in
    /// every training forward pass the adapters of the first `n` blocks are skipped, `n` drawn
    /// uniformly from `0..=max`; at most the number of blocks. Default: `None` (off).
    pub train_skip_first: Option<usize>,
}

impl AdapterDrop {
    /// Skip the adapters of the first `n` blocks (the paper's inference-time AdapterDrop).
    pub fn first_layers(n: usize) -> Self {
        Self {
            skip_layers: (0..n).collect(),
            ..Self::default()
        }
    }

    /// In training, drop each block's adapters with probability `p` per forward pass.
    pub fn with_train_drop_prob(mut self, p: f64) -> Self {
        self.train_drop_prob = p;
        self
    }

    /// Robust AdapterDrop (Rücklé et al. 2021): in training, skip the first `n` blocks' adapters,
    /// `n` uniform in `0..=max`, drawn anew for every forward pass.
    pub fn robust(max: usize) -> Self {
        Self {
            train_skip_first: Some(max),
            ..Self::default()
        }
    }
}

/// Apply `drop` to every site of `host` (replacing an earlier one).
///
/// Errors (the model unchanged): `train_drop_prob` outside `[0, 1)`, a skipped layer beyond the
/// model, or `train_skip_first` above the number of blocks.
pub fn set_adapter_drop<H: AdapterHost + ?Sized>(host: &mut H, drop: &AdapterDrop) -> Result<()> {
    if !(0.0..1.0).contains(&drop.train_drop_prob) {
        return Err(PeftError::InvalidConfig(format!(
            "AdapterDrop train_drop_prob must be in [0, 1), got {}",
            drop.train_drop_prob
        )));
    }
    let n = host.num_layers();
    if let Some(bad) = drop.skip_layers.iter().find(|&&l| l >= n) {
        return Err(PeftError::InvalidConfig(format!(
            "AdapterDrop skip_layers names layer {bad}, but the model has {n} layers"
        )));
    }
    if let Some(max) = drop.train_skip_first.filter(|&m| m > n) {
        return Err(PeftError::InvalidConfig(format!(
            "AdapterDrop train_skip_first is {max}, but the model has {n} layers"
        )));
    }
    // Every site of a block consults the block's draw once per pass: its bottleneck sites and
    // its projections (whether or not they hold a module now).
    let sites_of = |layer: usize| {
        let bottleneck = AdapterSite::ALL
            .iter()
            .filter(|&&site| host.adapter_layer(layer, site).is_some())
            .count();
        let linear = LinearTarget::ALL
            .iter()
            .filter(|&&target| host.linear_site(layer, target).is_some())
            .count();
        bottleneck + linear
    };
    // One shared draw per block (independent dropping), one for the whole model (robust).
    let per_block: Vec<Option<SharedDraw>> = (0..n)
        .map(|layer| {
            let sites = sites_of(layer);
            (drop.train_drop_prob > 0.0 && sites > 0).then(|| SharedDraw::new(sites))
        })
        .collect();
    let total: usize = (0..n).map(sites_of).sum();
    let whole = drop
        .train_skip_first
        .filter(|&m| m > 0 && total > 0)
        .map(|max| (SharedDraw::new(total), max));
    let rules_of = |layer: usize| {
        let mut rules = Vec::new();
        if let Some(draw) = per_block.get(layer).cloned().flatten() {
            rules.push(DropRule {
                draw,
                kind: RuleKind::Probability(drop.train_drop_prob),
            });
        }
        if let Some((draw, max)) = &whole {
            rules.push(DropRule {
                draw: draw.clone(),
                kind: RuleKind::FirstBlocks { max: *max, layer },
            });
        }
        rules
    };
    for_each_site(host, |layer, _, s| {
        s.set_drop(drop.skip_layers.contains(&layer), rules_of(layer))
    });
    // LoRA / IA³ modules share their block's draws and skips.
    crate::linear_attach::for_each_linear(host, |layer, _, s| {
        s.set_drop(drop.skip_layers.contains(&layer), rules_of(layer))
    });
    Ok(())
}

/// Whether any of a site's `rules` drops it in this pass. Every rule is consulted (its shared
/// draw counts the sites), so call this exactly once per site and forward pass.
pub(crate) fn any_dropped(rules: &[DropRule], device: &Device) -> bool {
    let mut dropped = false;
    for rule in rules {
        dropped |= rule.dropped(device);
    }
    dropped
}

/// One random number per forward pass, shared by a group of sites (a block's, or the whole
/// model's).
///
/// The group's first site to run in a pass draws (from the backend's seeded RNG, only on an
/// autodiff device); the other sites of the group reuse that number. Clones share the state (a
/// model and its clone should not train at the same time).
#[derive(Clone, Debug)]
struct SharedDraw {
    sites: usize,
    state: Arc<Mutex<DrawState>>,
}

#[derive(Debug, Default)]
struct DrawState {
    /// Sites of the group still to run in the current pass.
    left: usize,
    /// The current pass's number, uniform in `[0, 1)`.
    u: f64,
}

impl SharedDraw {
    fn new(sites: usize) -> Self {
        Self {
            sites: sites.max(1),
            state: Arc::new(Mutex::new(DrawState::default())),
        }
    }

    /// This pass's number (called once per site and pass).
    fn next(&self, device: &Device) -> f64 {
        let mut state = match self.state.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        if state.left == 0 {
            let bits = crate::dropout::backend_seed(device) >> 11;
            state.u = bits as f64 / (1u64 << 53) as f64;
            state.left = self.sites;
        }
        state.left -= 1;
        state.u
    }
}

#[derive(Clone, Debug, PartialEq)]
enum RuleKind {
    /// Dropped when the block's number is below the probability.
    Probability(f64),
    /// Dropped when `layer < n`, `n = ⌊u · (max + 1)⌋` from the model-wide number.
    FirstBlocks { max: usize, layer: usize },
}

/// A training-time AdapterDrop rule of one site: its shared draw and how to read it.
#[derive(Clone, Debug)]
pub struct DropRule {
    draw: SharedDraw,
    kind: RuleKind,
}

impl DropRule {
    /// Whether the rule drops the site in this pass (called once per site and pass; draws only
    /// on an autodiff device, i.e. in training).
    pub(crate) fn dropped(&self, device: &Device) -> bool {
        if !device.is_autodiff() {
            return false;
        }
        let u = self.draw.next(device);
        match self.kind {
            RuleKind::Probability(p) => u < p,
            RuleKind::FirstBlocks { max, layer } => {
                let n = ((u * (max + 1) as f64) as usize).min(max);
                layer < n
            }
        }
    }
}

impl PartialEq for DropRule {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.draw.sites == other.draw.sites
    }
}
