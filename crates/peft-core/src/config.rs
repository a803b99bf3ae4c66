//! Adapter configuration: the bottleneck module, where it is placed, and named presets.
//!
//! Two configs, kept apart as AdapterHub does:
//! - [`BottleneckConfig`] describes one adapter module (width, non-linearity, scaling, norms, init);
//! - [`AdapterPlacement`] describes how it is wired into a Transformer sub-layer (which sites,
//!   sequential or parallel, and the order of residual and LayerNorm).
//!
//! [`AdapterConfig`] bundles both, plus per-layer overrides, and has the named presets.

use std::collections::BTreeMap;

use burn::config::Config;
use serde::{Deserialize, Serialize};

use crate::activation::Activation;
use crate::error::{PeftError, Result};

/// Where in a Transformer block an adapter can sit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdapterSite {
    /// After the attention output projection (and its dropout), before that sub-layer's residual
    /// add (and LayerNorm in post-LN models). AdapterHub's `mh_adapter`.
    AttentionOutput,
    /// After the feed-forward output projection (and its dropout), before that sub-layer's
    /// residual add (and LayerNorm). AdapterHub's `output_adapter`.
    FeedForwardOutput,
}

impl AdapterSite {
    /// Both sites, in the order they occur in a block.
    pub const ALL: [AdapterSite; 2] =
        [AdapterSite::AttentionOutput, AdapterSite::FeedForwardOutput];

    /// A short name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::AttentionOutput => "attention_output",
            Self::FeedForwardOutput => "feed_forward_output",
        }
    }
}

/// Width of the bottleneck.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BottleneckWidth {
    /// An explicit number of bottleneck units.
    BottleneckDim(usize),
    /// `d_model / reduction_factor` units (AdapterHub rounds down: `int(d / rf)`).
    ReductionFactor(f64),
}

impl BottleneckWidth {
    /// The widest bottleneck accepted, as a multiple of the model width (a bottleneck is
    /// narrower than the model; a file asking for more is corrupt or hostile and would allocate
    /// without bound).
    pub const MAX_WIDTH_FACTOR: usize = 16;

    /// The number of bottleneck units for a model width `d_model`, validated: at least 1, at
    /// most [`BottleneckWidth::MAX_WIDTH_FACTOR`] times `d_model`.
    pub fn resolve(self, d_model: usize) -> Result<usize> {
        let d = self.resolve_unbounded(d_model)?;
        let max = d_model.saturating_mul(Self::MAX_WIDTH_FACTOR);
        if d > max {
            return Err(PeftError::InvalidConfig(format!(
                "bottleneck width {d} is more than {} times the model width {d_model}",
                Self::MAX_WIDTH_FACTOR
            )));
        }
        Ok(d)
    }

    fn resolve_unbounded(self, d_model: usize) -> Result<usize> {
        match self {
            Self::BottleneckDim(0) => Err(PeftError::InvalidConfig(
                "bottleneck_dim must be at least 1".into(),
            )),
            Self::BottleneckDim(d) => Ok(d),
            Self::ReductionFactor(rf) if !rf.is_finite() || rf <= 0.0 => Err(
                PeftError::InvalidConfig(format!("reduction_factor must be positive, got {rf}")),
            ),
            Self::ReductionFactor(rf) => {
                let d = (d_model as f64 / rf).floor() as usize;
                if d == 0 {
                    Err(PeftError::InvalidConfig(format!(
                        "reduction_factor {rf} is larger than d_model {d_model}: the bottleneck would be empty"
                    )))
                } else {
                    Ok(d)
                }
            }
        }
    }
}

/// How the up-projection's output is scaled.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scaling {
    /// A fixed factor (1.0 for Houlsby/Pfeiffer, 4.0 for He et al.'s parallel adapter).
    Fixed(f64),
    /// One learned scalar, initialised to 1 (AdapterHub's `"learned"`).
    Learned,
    /// One learned factor per channel, initialised to 1 (AdapterHub's `"channel"`).
    Channel,
}

/// How adapter weights are initialised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdapterInit {
    /// Down-projection N(0, 0.02), up-projection weights and all biases zero: a fresh adapter
    /// is the identity, so attaching it leaves the model's outputs unchanged. The default.
    Identity,
    /// AdapterHub's `bert`: both projections N(0, 0.02), biases zero.
    Bert,
    /// AdapterHub's `houlsby`: both projections N(0, 1e-2) truncated at ±2 std, biases zero.
    Houlsby,
    /// AdapterHub's `mam_adapter` (He et al. 2021): Kaiming-uniform down-projection
    /// (a = sqrt(5)), zero up-projection and biases.
    MamAdapter,
}

/// Sequential or parallel composition of the adapter with its sub-layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Composition {
    /// The adapter transforms the sub-layer output (Houlsby, Pfeiffer).
    Sequential,
    /// The adapter reads the sub-layer input and its output is added beside the sub-layer
    /// (He et al. 2021).
    Parallel,
}

/// One bottleneck adapter module: `LN_after?(scale * up(act(down(LN_before?(z)))))` with
/// dropout on the scaled output.
#[derive(Config, Debug, PartialEq)]
pub struct BottleneckConfig {
    /// Width of the bottleneck. Default: reduction factor 16 (`d_model / 16`).
    #[config(default = "BottleneckWidth::ReductionFactor(16.0)")]
    pub width: BottleneckWidth,
    /// Non-linearity between the projections. Default: `relu`.
    #[config(default = "Activation::Relu")]
    pub activation: Activation,
    /// Dropout on the adapter output, active only in training. Default: 0.0.
    #[config(default = 0.0)]
    pub dropout: f64,
    /// Scaling of the up-projection output. Default: fixed 1.0.
    #[config(default = "Scaling::Fixed(1.0)")]
    pub scaling: Scaling,
    /// A trainable LayerNorm on the adapter input, before the down-projection. Default: false.
    #[config(default = false)]
    pub ln_before: bool,
    /// A trainable LayerNorm on the adapter output. Default: false.
    #[config(default = false)]
    pub ln_after: bool,
    /// Add the adapter's own residual before `ln_after` (true) or after it (false); matters only
    /// with `ln_after`. AdapterHub's `adapter_residual_before_ln`. Default: false.
    #[config(default = false)]
    pub adapter_residual_before_ln: bool,
    /// Epsilon of the adapter's own LayerNorms (PyTorch's default). Default: 1e-5.
    #[config(default = 1e-5)]
    pub layer_norm_eps: f64,
    /// Weight initialisation. Default: `identity` (a fresh adapter changes nothing).
    #[config(default = "AdapterInit::Identity")]
    pub init: AdapterInit,
}

impl BottleneckConfig {
    /// Houlsby et al. 2019 ("Parameter-Efficient Transfer Learning for NLP"), as AdapterHub's
    /// `double_seq_bn`: swish non-linearity, reduction factor 16.
    pub fn houlsby() -> Self {
        Self::new().with_activation(Activation::Silu)
    }

    /// Pfeiffer et al. 2021 ("AdapterFusion"), as AdapterHub's `seq_bn`: ReLU, reduction
    /// factor 16.
    pub fn pfeiffer() -> Self {
        Self::new().with_activation(Activation::Relu)
    }

    /// He et al. 2022 ("Towards a Unified View of Parameter-Efficient Transfer Learning"), as
    /// AdapterHub's `par_bn`: ReLU, reduction factor 2, fixed scaling 4.
    pub fn parallel() -> Self {
        Self::new()
            .with_width(BottleneckWidth::ReductionFactor(2.0))
            .with_scaling(Scaling::Fixed(4.0))
    }

    /// Check the values that do not depend on the model width.
    pub fn validate(&self) -> Result<()> {
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(PeftError::InvalidConfig(format!(
                "dropout must be in [0, 1), got {}",
                self.dropout
            )));
        }
        if let Scaling::Fixed(s) = self.scaling
            && !s.is_finite()
        {
            return Err(PeftError::InvalidConfig(format!(
                "fixed scaling must be finite, got {s}"
            )));
        }
        if self.layer_norm_eps.is_nan() || self.layer_norm_eps <= 0.0 {
            return Err(PeftError::InvalidConfig(format!(
                "layer_norm_eps must be positive, got {}",
                self.layer_norm_eps
            )));
        }
        match self.width {
            BottleneckWidth::BottleneckDim(0) => Err(PeftError::InvalidConfig(
                "bottleneck_dim must be at least 1".into(),
            )),
            BottleneckWidth::ReductionFactor(rf) if !rf.is_finite() || rf <= 0.0 => Err(
                PeftError::InvalidConfig(format!("reduction_factor must be positive, got {rf}")),
            ),
            _ => Ok(()),
        }
    }
}

/// How an adapter is wired into a sub-layer. Mirrors AdapterHub's flags.
///
/// With `h` the sub-layer output, `x` its residual input, `LN` the sub-layer's own LayerNorm
/// (absent in pre-LN models such as GPT-2) and `f` the adapter:
/// - Houlsby (`original_ln_before = false`): `LN(f(h) + h + x)`;
/// - Pfeiffer (`original_ln_before = true`): `LN(f(LN(h + x)) + h + x)`;
/// - parallel: `LN(h + x + f(x))`.
#[derive(Config, Debug, PartialEq)]
pub struct AdapterPlacement {
    /// The sites that receive an adapter. Default: both (Houlsby).
    #[config(default = "AdapterSite::ALL.to_vec()")]
    pub sites: Vec<AdapterSite>,
    /// Sequential or parallel composition. Default: sequential.
    #[config(default = "Composition::Sequential")]
    pub composition: Composition,
    /// Apply the sub-layer's residual add (and LayerNorm) before the adapter. Default: false.
    #[config(default = false)]
    pub original_ln_before: bool,
    /// Apply the sub-layer's residual add (and LayerNorm) after the adapter. Default: true.
    #[config(default = true)]
    pub original_ln_after: bool,
    /// The adapter's own residual is taken before the original LayerNorm. Default: true.
    #[config(default = true)]
    pub residual_before_ln: bool,
    /// Layer indices that receive no adapter. Default: none.
    #[config(default = "Vec::new()")]
    pub leave_out: Vec<usize>,
}

impl AdapterPlacement {
    /// Houlsby et al. 2019: after attention and after the feed-forward block.
    pub fn houlsby() -> Self {
        Self::new()
    }

    /// Pfeiffer et al. 2021: after the feed-forward block only, reading `LN(h + x)`.
    pub fn pfeiffer() -> Self {
        Self::new()
            .with_sites(vec![AdapterSite::FeedForwardOutput])
            .with_original_ln_before(true)
    }

    /// He et al. 2022: parallel to the feed-forward block.
    pub fn parallel() -> Self {
        Self::new()
            .with_sites(vec![AdapterSite::FeedForwardOutput])
            .with_composition(Composition::Parallel)
    }

    /// Whether layer `layer` at `site` gets an adapter.
    pub fn targets(&self, layer: usize, site: AdapterSite) -> bool {
        self.sites.contains(&site) && !self.leave_out.contains(&layer)
    }

    /// The wiring flags that each adapter module carries at run time.
    pub fn wiring(&self) -> Wiring {
        Wiring {
            composition: self.composition,
            original_ln_before: self.original_ln_before,
            original_ln_after: self.original_ln_after,
            residual_before_ln: self.residual_before_ln,
        }
    }
}

/// The run-time wiring of one adapter (the per-site part of [`AdapterPlacement`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wiring {
    /// Sequential or parallel.
    pub composition: Composition,
    /// See [`AdapterPlacement::original_ln_before`].
    pub original_ln_before: bool,
    /// See [`AdapterPlacement::original_ln_after`].
    pub original_ln_after: bool,
    /// See [`AdapterPlacement::residual_before_ln`].
    pub residual_before_ln: bool,
}

/// A complete bottleneck-adapter setup: the module, its placement and per-layer overrides.
#[derive(Config, Debug, PartialEq)]
pub struct AdapterConfig {
    /// The adapter module. Default: [`BottleneckConfig::pfeiffer`].
    #[config(default = "BottleneckConfig::pfeiffer()")]
    pub bottleneck: BottleneckConfig,
    /// Where and how adapters are wired. Default: [`AdapterPlacement::pfeiffer`].
    #[config(default = "AdapterPlacement::pfeiffer()")]
    pub placement: AdapterPlacement,
    /// Per-layer bottleneck widths overriding `bottleneck.width`. Default: none.
    #[config(default = "BTreeMap::new()")]
    pub layer_widths: BTreeMap<usize, BottleneckWidth>,
}

impl AdapterConfig {
    /// Houlsby et al. 2019 = AdapterHub `double_seq_bn`: two sequential swish adapters per
    /// block (after attention and after the feed-forward block), `LN(f(h) + h + x)`.
    pub fn houlsby(reduction_factor: f64) -> Self {
        Self::new()
            .with_bottleneck(
                BottleneckConfig::houlsby()
                    .with_width(BottleneckWidth::ReductionFactor(reduction_factor)),
            )
            .with_placement(AdapterPlacement::houlsby())
    }

    /// Pfeiffer et al. 2021 = AdapterHub `seq_bn`: one sequential ReLU adapter after the
    /// feed-forward block, `LN(f(LN(h + x)) + h + x)`.
    pub fn pfeiffer(reduction_factor: f64) -> Self {
        Self::new()
            .with_bottleneck(
                BottleneckConfig::pfeiffer()
                    .with_width(BottleneckWidth::ReductionFactor(reduction_factor)),
            )
            .with_placement(AdapterPlacement::pfeiffer())
    }

    /// He et al. 2022 = AdapterHub `par_bn`: a ReLU adapter parallel to the feed-forward block,
    /// reduction factor 2, scaling 4: `LN(h + x + 4 f(x))`.
    pub fn parallel() -> Self {
        Self::new()
            .with_bottleneck(BottleneckConfig::parallel())
            .with_placement(AdapterPlacement::parallel())
    }

    /// He et al. 2022 = AdapterHub `scaled_par_bn`: [`AdapterConfig::parallel`] with a learned
    /// scalar scaling.
    pub fn scaled_parallel() -> Self {
        let mut config = Self::parallel();
        config.bottleneck.scaling = Scaling::Learned;
        config
    }

    /// The bottleneck width for layer `layer` of a model of width `d_model`, validated.
    pub fn width_for_layer(&self, layer: usize, d_model: usize) -> Result<usize> {
        self.layer_widths
            .get(&layer)
            .copied()
            .unwrap_or(self.bottleneck.width)
            .resolve(d_model)
    }

    /// Check everything that does not depend on the model.
    pub fn validate(&self) -> Result<()> {
        self.bottleneck.validate()?;
        if self.placement.sites.is_empty() {
            return Err(PeftError::InvalidConfig(
                "placement.sites is empty: no adapter would be attached".into(),
            ));
        }
        if self.placement.composition == Composition::Parallel && self.placement.original_ln_before
        {
            return Err(PeftError::InvalidConfig(
                "a parallel adapter reads the sub-layer input: original_ln_before must be false"
                    .into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_resolve_like_adapterhub() {
        assert_eq!(
            BottleneckWidth::ReductionFactor(16.0).resolve(384).ok(),
            Some(24)
        );
        assert_eq!(
            BottleneckWidth::ReductionFactor(16.0).resolve(768).ok(),
            Some(48)
        );
        assert_eq!(
            BottleneckWidth::ReductionFactor(2.0).resolve(32).ok(),
            Some(16)
        );
        assert_eq!(BottleneckWidth::BottleneckDim(7).resolve(32).ok(), Some(7));
        assert!(matches!(
            BottleneckWidth::BottleneckDim(0).resolve(32),
            Err(PeftError::InvalidConfig(_))
        ));
        assert!(matches!(
            BottleneckWidth::ReductionFactor(64.0).resolve(32),
            Err(PeftError::InvalidConfig(m)) if m.contains("larger than d_model")
        ));
        assert!(BottleneckWidth::ReductionFactor(-1.0).resolve(32).is_err());
        // A hostile file must not get a bottleneck allocated without bound.
        assert_eq!(
            BottleneckWidth::BottleneckDim(512).resolve(32).ok(),
            Some(512)
        );
        for huge in [
            BottleneckWidth::BottleneckDim(513),
            BottleneckWidth::BottleneckDim(1 << 40),
            BottleneckWidth::ReductionFactor(1e-300),
        ] {
            assert!(
                matches!(huge.resolve(32), Err(PeftError::InvalidConfig(m)) if m.contains("more than 16 times")),
                "{huge:?}"
            );
        }
    }

    #[test]
    fn per_layer_override_wins() {
        let mut config = AdapterConfig::pfeiffer(16.0);
        config
            .layer_widths
            .insert(1, BottleneckWidth::BottleneckDim(3));
        assert_eq!(config.width_for_layer(0, 64).ok(), Some(4));
        assert_eq!(config.width_for_layer(1, 64).ok(), Some(3));
    }

    #[test]
    fn presets_have_adapterhub_flags() {
        let h = AdapterConfig::houlsby(16.0);
        assert_eq!(h.bottleneck.activation, Activation::Silu);
        assert_eq!(h.placement.sites, AdapterSite::ALL.to_vec());
        assert!(!h.placement.original_ln_before);
        let p = AdapterConfig::pfeiffer(16.0);
        assert_eq!(p.placement.sites, vec![AdapterSite::FeedForwardOutput]);
        assert!(p.placement.original_ln_before && p.placement.original_ln_after);
        let par = AdapterConfig::parallel();
        assert_eq!(par.bottleneck.scaling, Scaling::Fixed(4.0));
        assert_eq!(par.placement.composition, Composition::Parallel);
        assert_eq!(
            AdapterConfig::scaled_parallel().bottleneck.scaling,
            Scaling::Learned
        );
    }

    #[test]
    fn bad_configs_are_typed_errors() {
        let bad_dropout = AdapterConfig::pfeiffer(16.0)
            .with_bottleneck(BottleneckConfig::pfeiffer().with_dropout(1.5));
        assert!(matches!(
            bad_dropout.validate(),
            Err(PeftError::InvalidConfig(_))
        ));
        let no_sites = AdapterConfig::pfeiffer(16.0)
            .with_placement(AdapterPlacement::pfeiffer().with_sites(vec![]));
        assert!(matches!(
            no_sites.validate(),
            Err(PeftError::InvalidConfig(_))
        ));
        let zero = AdapterConfig::pfeiffer(16.0).with_bottleneck(
            BottleneckConfig::pfeiffer().with_width(BottleneckWidth::BottleneckDim(0)),
        );
        assert!(zero.validate().is_err());
    }

    #[test]
    fn serde_round_trip_and_unknown_activation() {
        let config = AdapterConfig::houlsby(8.0);
        let json = serde_json::to_string(&config).unwrap_or_default();
        let back: AdapterConfig =
            serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
        assert_eq!(back, config);
        let bad = json.replace("\"swish\"", "\"sigmoidish\"");
        assert!(serde_json::from_str::<AdapterConfig>(&bad).is_err());
    }
}
