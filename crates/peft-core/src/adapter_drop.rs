//! AdapterDrop (Rücklé et al. 2021, "AdapterDrop: On the Efficiency of Adapters in
//! Transformers"): skip the adapters of chosen blocks at inference, and drop each block's
//! adapters at random while training.
//!
//! Skipping is AdapterHub's `skip_layers` (`set_active_adapters(setup, skip_layers=…)`): the
//! named blocks run as the base model, in training and inference. Random dropping in training
//! is decided once per block and forward pass, for all of the block's sites together (the
//! attention-output and the feed-forward adapters of a block are dropped or kept as one), from
//! the backend's seeded RNG, so a seeded run repeats bit for bit.

use std::sync::{Arc, Mutex};

use burn::tensor::Device;

use crate::attach::{AdapterHost, for_each_site};
use crate::config::AdapterSite;
use crate::error::{PeftError, Result};

/// AdapterDrop settings for a whole model (apply them with [`set_adapter_drop`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AdapterDrop {
    /// Blocks whose adapters are skipped, in training and inference (AdapterHub's
    /// `skip_layers`). Default: none.
    pub skip_layers: Vec<usize>,
    /// In training (on an autodiff device) the adapters of each block, all its sites together,
    /// are skipped with this probability in every forward pass; in `[0, 1)`. Default: 0.
    pub train_drop_prob: f64,
}

impl AdapterDrop {
    /// Skip the adapters of the first `n` blocks (the paper's inference-time AdapterDrop).
    pub fn first_layers(n: usize) -> Self {
        Self {
            skip_layers: (0..n).collect(),
            train_drop_prob: 0.0,
        }
    }

    /// In training, drop each block's adapters with probability `p` per forward pass.
    pub fn with_train_drop_prob(mut self, p: f64) -> Self {
        self.train_drop_prob = p;
        self
    }
}

/// Apply `drop` to every site of `host` (replacing an earlier one).
///
/// Errors (the model unchanged): `train_drop_prob` outside `[0, 1)` or a skipped layer beyond
/// the model.
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
    // One shared draw per block, over the sites that block has.
    let draws: Vec<Option<LayerDraw>> = (0..n)
        .map(|layer| {
            let sites = AdapterSite::ALL
                .iter()
                .filter(|&&site| host.adapter_layer(layer, site).is_some())
                .count();
            (drop.train_drop_prob > 0.0 && sites > 0)
                .then(|| LayerDraw::new(drop.train_drop_prob, sites))
        })
        .collect();
    for_each_site(host, |layer, _, s| {
        s.set_drop(
            drop.skip_layers.contains(&layer),
            draws.get(layer).cloned().flatten(),
        )
    });
    Ok(())
}

/// One random AdapterDrop decision per block and forward pass, shared by the block's sites.
///
/// The block's first site to run in a pass draws (from the backend's seeded RNG, only on an
/// autodiff device); the other sites of the block reuse that decision. Clones share the
/// decision state (a model and its clone should not train at the same time).
#[derive(Clone, Debug)]
pub struct LayerDraw {
    prob: f64,
    sites: usize,
    state: Arc<Mutex<DrawState>>,
}

#[derive(Debug, Default)]
struct DrawState {
    /// Sites of the block still to run in the current pass.
    left: usize,
    /// The current pass's decision.
    dropped: bool,
}

impl LayerDraw {
    /// A draw with drop probability `prob` for a block of `sites` sites.
    pub fn new(prob: f64, sites: usize) -> Self {
        Self {
            prob,
            sites: sites.max(1),
            state: Arc::new(Mutex::new(DrawState::default())),
        }
    }

    /// The drop probability.
    pub fn prob(&self) -> f64 {
        self.prob
    }

    /// Whether the block's adapters are dropped in this pass (called once per site and pass).
    pub(crate) fn dropped(&self, device: &Device) -> bool {
        if !device.is_autodiff() {
            return false;
        }
        let mut state = match self.state.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        if state.left == 0 {
            let bits = crate::dropout::backend_seed(device) >> 11;
            let u = bits as f64 / (1u64 << 53) as f64;
            state.dropped = u < self.prob;
            state.left = self.sites;
        }
        state.left -= 1;
        state.dropped
    }
}

impl PartialEq for LayerDraw {
    fn eq(&self, other: &Self) -> bool {
        self.prob == other.prob && self.sites == other.sites
    }
}
