//! The bottleneck adapter module and its wiring into a sub-layer's residual connection.

use burn::module::{Module, Param};
use burn::nn::{
    Dropout, DropoutConfig, Initializer, LayerNorm, LayerNormConfig, Linear, LinearConfig,
};
use burn::tensor::{Device, Tensor};

use crate::activation::Activation;
use crate::config::{AdapterInit, BottleneckConfig, Composition, Scaling, Wiring};
use crate::error::Result;

/// A bottleneck adapter (Houlsby et al. 2019): down-projection, non-linearity, up-projection,
/// scaling, dropout, wired into its sub-layer's residual as [`Wiring`] says.
///
/// Field names follow AdapterHub (`adapter_down`, `adapter_up`, `adapter_norm_before`,
/// `adapter_norm_after`) so that checkpoints map with little renaming.
#[derive(Module, Debug)]
pub struct BottleneckAdapter {
    /// Optional trainable LayerNorm on the adapter input.
    pub adapter_norm_before: Option<LayerNorm>,
    /// `d_model -> bottleneck`.
    pub adapter_down: Linear,
    /// `bottleneck -> d_model`.
    pub adapter_up: Linear,
    /// Learned scaling (`[1]` or `[d_model]`), when the config asks for one.
    pub scaling: Option<Param<Tensor<1>>>,
    /// Optional trainable LayerNorm on the adapter output.
    pub adapter_norm_after: Option<LayerNorm>,
    /// Dropout on the scaled adapter output.
    pub dropout: Dropout,
    /// Fixed scaling factor (1.0 when `scaling` is learned).
    pub fixed_scaling: f64,
    /// Add the adapter residual before `adapter_norm_after` (sequential adapters only).
    pub adapter_residual_before_ln: bool,
    /// The non-linearity.
    #[module(skip)]
    pub activation: Activation,
    /// How the adapter is wired into its sub-layer.
    #[module(skip)]
    pub wiring: Wiring,
}

impl BottleneckConfig {
    /// Build an adapter for a model of width `d_model` with `bottleneck` units (see
    /// [`crate::AdapterConfig::width_for_layer`]), wired as `wiring` says.
    pub fn init(
        &self,
        d_model: usize,
        bottleneck: usize,
        wiring: Wiring,
        device: &Device,
    ) -> Result<BottleneckAdapter> {
        self.validate()?;
        if d_model == 0 || bottleneck == 0 {
            return Err(crate::PeftError::InvalidConfig(format!(
                "adapter dimensions must be positive (d_model {d_model}, bottleneck {bottleneck})"
            )));
        }
        let normal = |std: f64| Initializer::Normal { mean: 0.0, std };
        let (down_init, up_init) = match self.init {
            AdapterInit::Identity => (normal(0.02), Initializer::Zeros),
            AdapterInit::Bert => (normal(0.02), normal(0.02)),
            AdapterInit::Houlsby => (normal(1e-2), normal(1e-2)),
            AdapterInit::MamAdapter => (
                // PyTorch's kaiming_uniform_(a = sqrt(5)) = U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
                Initializer::KaimingUniform {
                    gain: 1.0 / 3f64.sqrt(),
                    fan_out_only: false,
                },
                Initializer::Zeros,
            ),
        };
        let linear = |d_in: usize, d_out: usize, init: Initializer| {
            let mut layer = LinearConfig::new(d_in, d_out)
                .with_initializer(init)
                .init(device);
            layer.bias = layer
                .bias
                .map(|b| Param::from_tensor(Tensor::zeros(b.shape(), device)));
            layer
        };
        let mut adapter_down = linear(d_model, bottleneck, down_init);
        let mut adapter_up = linear(bottleneck, d_model, up_init);
        if self.init == AdapterInit::Houlsby {
            // AdapterHub truncates at two standard deviations: redraw values outside.
            adapter_down.weight = adapter_down.weight.map(|w| truncate(w, 1e-2));
            adapter_up.weight = adapter_up.weight.map(|w| truncate(w, 1e-2));
        }
        let norm = || {
            LayerNormConfig::new(d_model)
                .with_epsilon(self.layer_norm_eps)
                .init(device)
        };
        let (scaling, fixed_scaling) = match self.scaling {
            Scaling::Fixed(s) => (None, s),
            Scaling::Learned => (Some(Param::from_tensor(Tensor::ones([1], device))), 1.0),
            Scaling::Channel => (
                Some(Param::from_tensor(Tensor::ones([d_model], device))),
                1.0,
            ),
        };
        Ok(BottleneckAdapter {
            adapter_norm_before: self.ln_before.then(norm),
            adapter_down,
            adapter_up,
            scaling,
            adapter_norm_after: self.ln_after.then(norm),
            dropout: DropoutConfig::new(self.dropout).init(),
            fixed_scaling,
            adapter_residual_before_ln: self.adapter_residual_before_ln,
            activation: self.activation,
            wiring,
        })
    }
}

/// Redraw the values of `w` (drawn from N(0, std)) that fall outside ±2 std, a few times,
/// then clamp the (vanishingly few) left: a truncated normal.
fn truncate(mut w: Tensor<2>, std: f64) -> Tensor<2> {
    let bound = 2.0 * std;
    for _ in 0..8 {
        let outside = w.clone().abs().greater_elem(bound);
        let fresh = w.random_like(burn::tensor::Distribution::Normal(0.0, std));
        w = w.mask_where(outside, fresh);
    }
    w.clamp(-bound, bound)
}

impl BottleneckAdapter {
    /// The scaled bottleneck output before dropout: `scale * up(act(down(LN_before?(z))))`.
    ///
    /// Shapes: `z` is `[batch, seq, d_model]`; so is the result.
    pub fn scaled_up(&self, z: Tensor<3>) -> Tensor<3> {
        let z = match &self.adapter_norm_before {
            Some(ln) => ln.forward(z),
            None => z,
        };
        let down = self.activation.forward(self.adapter_down.forward(z));
        let up = self.adapter_up.forward(down);
        if let Some(scale) = &self.scaling {
            up * scale.val().unsqueeze::<3>()
        } else if self.fixed_scaling != 1.0 {
            up * self.fixed_scaling
        } else {
            up
        }
    }

    /// The bottleneck branch without any residual: `dropout(scaled_up(z))`.
    ///
    /// Shapes: `z` is `[batch, seq, d_model]`; so is the result.
    pub fn branch(&self, z: Tensor<3>) -> Tensor<3> {
        crate::dropout::dropout(&self.dropout, self.scaled_up(z))
    }

    /// AdapterHub's `pre_forward`: what the adapter reads, the fusion query, and the adapter's
    /// own residual, from the sub-layer output `hidden` (`h`) and input `input` (`x`).
    ///
    /// Returns `(adapter input, query, adapter residual)`, each `[batch, seq, d_model]`. The
    /// query is what a fusion layer with `query_before_ln` (or without) attends from.
    pub fn pre_forward(
        &self,
        hidden: Tensor<3>,
        input: Tensor<3>,
        layer_norm: Option<&LayerNorm>,
        query_before_ln: bool,
    ) -> (Tensor<3>, Tensor<3>, Tensor<3>) {
        let w = self.wiring;
        if w.composition == Composition::Parallel {
            return (input.clone(), input.clone(), input);
        }
        let early = (w.residual_before_ln || query_before_ln).then(|| hidden.clone());
        let hidden = if w.original_ln_before {
            add_norm(hidden, input, layer_norm)
        } else {
            hidden
        };
        let residual = match (&early, w.residual_before_ln) {
            (Some(e), true) => e.clone(),
            _ => hidden.clone(),
        };
        let query = match early {
            Some(e) if query_before_ln => e,
            _ => hidden.clone(),
        };
        (hidden, query, residual)
    }

    /// AdapterHub's adapter `forward`: the bottleneck branch and the adapter's own residual.
    ///
    /// Returns `(output, up)`: the output (with the adapter residual for sequential adapters,
    /// without it for parallel ones) and the scaled up-projection before dropout (what
    /// AdapterFusion attends over). Shapes `[batch, seq, d_model]`.
    pub fn forward_adapter(&self, x: Tensor<3>, residual: Tensor<3>) -> (Tensor<3>, Tensor<3>) {
        let up = self.scaled_up(x);
        let mut out = crate::dropout::dropout(&self.dropout, up.clone());
        let sequential = self.wiring.composition == Composition::Sequential;
        if sequential && self.adapter_residual_before_ln {
            out = out + residual.clone();
        }
        if let Some(ln) = &self.adapter_norm_after {
            out = ln.forward(out);
        }
        if sequential && !self.adapter_residual_before_ln {
            out = out + residual;
        }
        (out, up)
    }

    /// AdapterHub's `post_forward`: the sub-layer's residual add (and LayerNorm) after the
    /// adapter(s). `input_hidden` is the sub-layer output before any adapter (parallel adapters
    /// add it here), `input` the sub-layer input.
    pub fn post_forward(
        &self,
        hidden: Tensor<3>,
        input_hidden: Tensor<3>,
        input: Tensor<3>,
        layer_norm: Option<&LayerNorm>,
    ) -> Tensor<3> {
        let w = self.wiring;
        let hidden = if w.composition == Composition::Parallel {
            hidden + input_hidden
        } else {
            hidden
        };
        if w.original_ln_after {
            add_norm(hidden, input, layer_norm)
        } else {
            hidden
        }
    }

    /// Apply this adapter alone at its site and return what the sub-layer passes on (the
    /// residual sum, normalised by `layer_norm` when the model has a post-LN sub-layer).
    ///
    /// - `hidden`: the sub-layer output `h` (after its dropout), `[batch, seq, d_model]`;
    /// - `residual`: the sub-layer input `x`, same shape;
    /// - `layer_norm`: the sub-layer's own LayerNorm for post-LN models (BERT), `None` for
    ///   pre-LN models (GPT-2).
    ///
    /// This is AdapterHub's `pre_forward`, `forward` and `post_forward` in a row (its
    /// `Stack(name)`).
    pub fn forward(
        &self,
        hidden: Tensor<3>,
        residual: Tensor<3>,
        layer_norm: Option<&LayerNorm>,
    ) -> Tensor<3> {
        let (x, _, adapter_residual) =
            self.pre_forward(hidden.clone(), residual.clone(), layer_norm, false);
        let (out, _) = self.forward_adapter(x, adapter_residual);
        self.post_forward(out, hidden, residual, layer_norm)
    }
}

/// `LN(t + x)` for post-LN models, `t + x` without a LayerNorm.
pub(crate) fn add_norm(t: Tensor<3>, x: Tensor<3>, layer_norm: Option<&LayerNorm>) -> Tensor<3> {
    match layer_norm {
        Some(ln) => crate::kernels::add_layer_norm(ln, t, x),
        None => t + x,
    }
}

/// A sub-layer's residual connection with an optional adapter. Without an adapter this is
/// `LN(h + x)` (post-LN) or `h + x` (pre-LN). Models call [`crate::AdapterLayer::forward`],
/// which handles any number of named adapters; this is the one-adapter form.
pub fn residual_site(
    adapter: Option<&BottleneckAdapter>,
    hidden: Tensor<3>,
    residual: Tensor<3>,
    layer_norm: Option<&LayerNorm>,
) -> Tensor<3> {
    match adapter {
        Some(adapter) => adapter.forward(hidden, residual, layer_norm),
        None => add_norm(hidden, residual, layer_norm),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AdapterConfig, AdapterInit, BottleneckWidth};
    use crate::freeze::randomize_matching;
    use burn::tensor::{Distribution, Tolerance};

    const D: usize = 8;

    fn device() -> Device {
        Device::flex()
    }

    fn inputs(device: &Device) -> (Tensor<3>, Tensor<3>) {
        device.seed(7);
        (
            Tensor::random([2, 3, D], Distribution::Normal(0.0, 1.0), device),
            Tensor::random([2, 3, D], Distribution::Normal(0.0, 1.0), device),
        )
    }

    fn layer_norm(device: &Device) -> LayerNorm {
        // Non-trivial gamma/beta so that a misplaced LayerNorm shows.
        let ln = LayerNormConfig::new(D).with_epsilon(1e-12).init(device);
        randomize_matching(ln, ".*", 0.5).unwrap_or_else(|e| panic!("{e}"))
    }

    fn adapter(config: &AdapterConfig, device: &Device) -> BottleneckAdapter {
        let width = config
            .width_for_layer(0, D)
            .unwrap_or_else(|e| panic!("{e}"));
        config
            .bottleneck
            .init(D, width, config.placement.wiring(), device)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn close(a: Tensor<3>, b: Tensor<3>) {
        a.into_data()
            .assert_approx_eq::<f32>(&b.into_data(), Tolerance::absolute(1e-5));
    }

    fn presets() -> Vec<(&'static str, AdapterConfig)> {
        vec![
            ("houlsby", AdapterConfig::houlsby(2.0)),
            ("pfeiffer", AdapterConfig::pfeiffer(2.0)),
            ("parallel", AdapterConfig::parallel()),
            ("scaled_parallel", AdapterConfig::scaled_parallel()),
        ]
    }

    #[test]
    fn identity_init_changes_nothing_with_and_without_layer_norm() {
        let device = device();
        let (h, x) = inputs(&device);
        let ln = layer_norm(&device);
        for (name, config) in presets() {
            let a = adapter(&config, &device);
            assert!(
                a.adapter_up.weight.val().abs().max().into_scalar::<f32>() == 0.0,
                "{name}: up-projection must start at zero"
            );
            for norm in [Some(&ln), None] {
                let with = residual_site(Some(&a), h.clone(), x.clone(), norm);
                let without = residual_site(None, h.clone(), x.clone(), norm);
                with.into_data().assert_eq(&without.into_data(), true);
            }
        }
    }

    /// The formulas of `AdapterPlacement`'s docs, computed independently, with non-zero adapter
    /// weights and a scale different from 1.
    #[test]
    fn wiring_matches_adapterhub_formulas_with_nonzero_weights() {
        let device = device();
        let (h, x) = inputs(&device);
        let ln = layer_norm(&device);
        let f = |a: &BottleneckAdapter, z: Tensor<3>| {
            let down = a.activation.forward(a.adapter_down.forward(z));
            let up = a.adapter_up.forward(down);
            match &a.scaling {
                Some(s) => up * s.val().unsqueeze::<3>(),
                None => up * a.fixed_scaling,
            }
        };
        for (name, config) in presets() {
            let a = adapter(&config, &device);
            let a =
                randomize_matching(a, "adapter_|scaling", 0.3).unwrap_or_else(|e| panic!("{e}"));
            let got = residual_site(Some(&a), h.clone(), x.clone(), Some(&ln));
            let expected = match name {
                "houlsby" => ln.forward(f(&a, h.clone()) + h.clone() + x.clone()),
                "pfeiffer" => {
                    ln.forward(f(&a, ln.forward(h.clone() + x.clone())) + h.clone() + x.clone())
                }
                _ => ln.forward(h.clone() + x.clone() + f(&a, x.clone())),
            };
            close(got, expected);
            // Pre-LN models (GPT-2): the same without the LayerNorm.
            let got = residual_site(Some(&a), h.clone(), x.clone(), None);
            let expected = match name {
                "houlsby" => f(&a, h.clone()) + h.clone() + x.clone(),
                "pfeiffer" => f(&a, h.clone() + x.clone()) + h.clone() + x.clone(),
                _ => h.clone() + x.clone() + f(&a, x.clone()),
            };
            close(got, expected);
        }
    }

    #[test]
    fn adapter_layer_norms_and_channel_scaling_sit_where_adapterhub_puts_them() {
        let device = device();
        let (h, x) = inputs(&device);
        let mut config = AdapterConfig::houlsby(2.0);
        config.bottleneck = config
            .bottleneck
            .clone()
            .with_ln_before(true)
            .with_ln_after(true)
            .with_scaling(Scaling::Channel)
            .with_activation(Activation::Tanh);
        let a = adapter(&config, &device);
        let mut a = randomize_matching(a, ".*", 0.3).unwrap_or_else(|e| panic!("{e}"));
        let (Some(lb), Some(la), Some(s)) =
            (&a.adapter_norm_before, &a.adapter_norm_after, &a.scaling)
        else {
            panic!("norms and scaling must exist")
        };
        let branch = a.adapter_up.forward(
            a.activation
                .forward(a.adapter_down.forward(lb.forward(h.clone()))),
        ) * s.val().unsqueeze::<3>();
        // Default (AdapterHub adapter_residual_before_ln = false): LN_after(f(h)) + h, then + x.
        let expected = la.forward(branch.clone()) + h.clone() + x.clone();
        close(
            residual_site(Some(&a), h.clone(), x.clone(), None),
            expected,
        );
        // adapter_residual_before_ln = true: LN_after(f(h) + h) + x.
        a.adapter_residual_before_ln = true;
        let expected = la.forward(branch + h.clone()) + x.clone();
        close(residual_site(Some(&a), h, x, None), expected);
    }

    #[test]
    fn dropout_is_active_only_in_training() {
        let device = device().autodiff();
        let (h, x) = inputs(&device);
        let mut config = AdapterConfig::houlsby(2.0);
        config.bottleneck = config
            .bottleneck
            .clone()
            .with_dropout(0.5)
            .with_init(AdapterInit::Bert);
        let a = adapter(&config, &device);
        let train1 = residual_site(Some(&a), h.clone(), x.clone(), None).into_data();
        let train2 = residual_site(Some(&a), h.clone(), x.clone(), None).into_data();
        assert_ne!(train1, train2, "dropout must be active in training");
        let eval = a.valid();
        let (h, x) = (h.inner(), x.inner());
        let e1 = residual_site(Some(&eval), h.clone(), x.clone(), None).into_data();
        let e2 = residual_site(Some(&eval), h, x, None).into_data();
        assert_eq!(e1, e2, "evaluation must be deterministic");
    }

    #[test]
    fn init_schemes_have_their_distributions() {
        let device = device();
        device.seed(3);
        let width = |init| {
            BottleneckConfig::new()
                .with_width(BottleneckWidth::BottleneckDim(64))
                .with_init(init)
                .init(
                    256,
                    64,
                    AdapterConfig::houlsby(2.0).placement.wiring(),
                    &device,
                )
                .unwrap_or_else(|e| panic!("{e}"))
        };
        let std = |t: Tensor<2>| {
            let n = t.shape().num_elements() as f64;
            let mean = t.clone().mean().into_scalar::<f64>();
            ((t - mean).powf_scalar(2.0).sum().into_scalar::<f64>() / n).sqrt()
        };
        let bert = width(AdapterInit::Bert);
        assert!((std(bert.adapter_up.weight.val()) - 0.02).abs() < 0.002);
        let houlsby = width(AdapterInit::Houlsby);
        // N(0, 0.01) truncated at ±0.02 has std 0.0088.
        assert!((std(houlsby.adapter_down.weight.val()) - 0.0088).abs() < 0.0008);
        let max = houlsby
            .adapter_up
            .weight
            .val()
            .abs()
            .max()
            .into_scalar::<f64>();
        assert!(max <= 0.02 && max > 0.019, "truncated at 2 std, max {max}");
        let mam = width(AdapterInit::MamAdapter);
        let bound = 1.0 / (256f64).sqrt();
        let max = mam
            .adapter_down
            .weight
            .val()
            .abs()
            .max()
            .into_scalar::<f64>();
        assert!(
            max <= bound + 1e-6 && max > 0.9 * bound,
            "kaiming bound {bound}, max {max}"
        );
        assert_eq!(
            mam.adapter_up.weight.val().abs().max().into_scalar::<f64>(),
            0.0
        );
        for a in [bert, houlsby, mam] {
            let b = a
                .adapter_down
                .bias
                .map(|b| b.val().abs().max().into_scalar::<f64>());
            assert_eq!(b, Some(0.0));
        }
    }
}
