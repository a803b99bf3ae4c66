//! AdapterFusion (Pfeiffer et al. 2021, "AdapterFusion: Non-Destructive Task Composition for
//! Transfer Learning"): attention over the outputs of several frozen adapters.
//!
//! The maths is AdapterHub's `BertFusion` (`adapters` 1.3.0, `methods/modeling.py`): with `q`
//! the query input (`[batch, seq, d]`), `U` the children's scaled bottleneck outputs stacked to
//! `[batch, seq, n, d]` and `r` the adapter residual,
//! `out = value_after(softmax(dropout(Q(q) · K(U)ᵀ)) · value_before(U)) + r`.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::{Dropout, DropoutConfig, Initializer, Linear, LinearConfig};
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor};

use crate::error::{PeftError, Result};

/// How a fusion layer is built. Field names are AdapterHub's `AdapterFusionConfig`.
#[derive(Config, Debug, PartialEq)]
pub struct FusionConfig {
    /// A learned key projection. Default: true.
    #[config(default = true)]
    pub key: bool,
    /// A learned query projection. Default: true.
    #[config(default = true)]
    pub query: bool,
    /// A learned value projection (no bias). Default: true (`dynamic`).
    #[config(default = true)]
    pub value: bool,
    /// The query is read before the sub-layer's residual add and LayerNorm. Default: false.
    #[config(default = false)]
    pub query_before_ln: bool,
    /// Training adds `0.01 · ‖I - V‖²` per fusion layer to the loss (see
    /// [`AdapterFusion::regularization`]). Default: true (`dynamic`).
    #[config(default = true)]
    pub regularization: bool,
    /// Add the residual to the adapter outputs before attending (true) or to the result (false).
    /// Default: false.
    #[config(default = false)]
    pub residual_before: bool,
    /// Annealed softmax temperature (AdapterHub's `temperature`); only `false` is supported,
    /// since AdapterHub anneals it statefully inside every forward pass. Default: false.
    #[config(default = false)]
    pub temperature: bool,
    /// Apply the value projection before the weighted sum (true) or after it. Default: true.
    #[config(default = true)]
    pub value_before_softmax: bool,
    /// Start the value projection at (almost) the identity: 1 on the diagonal, 1e-6 elsewhere.
    /// Default: true (`dynamic`).
    #[config(default = true)]
    pub value_initialized: bool,
    /// Dropout on the attention scores; `None` takes the model's attention dropout.
    /// Default: `None`.
    #[config(default = "None")]
    pub dropout_prob: Option<f64>,
}

impl FusionConfig {
    /// AdapterHub's `dynamic` fusion (its default): query, key and value projections, value
    /// initialised to the identity, regularised.
    pub fn dynamic() -> Self {
        Self::new()
    }

    /// AdapterHub's `static` fusion: query and key projections only.
    pub fn static_fusion() -> Self {
        Self::new()
            .with_value(false)
            .with_regularization(false)
            .with_value_initialized(false)
    }

    /// Check the options we support.
    pub fn validate(&self) -> Result<()> {
        if self.temperature {
            return Err(PeftError::Unsupported {
                field: "temperature".into(),
                message: "AdapterHub anneals the fusion temperature inside every forward pass; only temperature: false is supported".into(),
            });
        }
        if let Some(p) = self.dropout_prob
            && !(0.0..1.0).contains(&p)
        {
            return Err(PeftError::InvalidConfig(format!(
                "fusion dropout_prob must be in [0, 1), got {p}"
            )));
        }
        Ok(())
    }

    /// Build a fusion layer for a model of width `d_model`; `model_dropout` is the model's
    /// attention-probability dropout, used unless [`FusionConfig::dropout_prob`] is set.
    pub fn init(
        &self,
        d_model: usize,
        model_dropout: f64,
        device: &Device,
    ) -> Result<AdapterFusion> {
        self.validate()?;
        let bert = Initializer::Normal {
            mean: 0.0,
            std: 0.02,
        };
        let linear = |bias: bool| {
            let mut l = LinearConfig::new(d_model, d_model)
                .with_bias(bias)
                .with_initializer(bert.clone())
                .init(device);
            l.bias = l
                .bias
                .map(|b| Param::from_tensor(Tensor::zeros(b.shape(), device)));
            l
        };
        let mut value = self.value.then(|| linear(false));
        if self.value_initialized
            && let Some(v) = value.as_mut()
        {
            let eye = Tensor::<2>::eye(d_model, device);
            let w = eye.clone() + (Tensor::<2>::ones([d_model, d_model], device) - eye) * 1e-6;
            v.weight = Param::from_tensor(w);
        }
        let dense = (!self.query && !self.key && !self.value).then(|| {
            LinearConfig::new(d_model, 1)
                .with_initializer(bert.clone())
                .init(device)
        });
        Ok(AdapterFusion {
            query: self.query.then(|| linear(true)),
            key: self.key.then(|| linear(true)),
            value,
            dense,
            dropout: DropoutConfig::new(self.dropout_prob.unwrap_or(model_dropout)).init(),
            residual_before: self.residual_before,
            value_before_softmax: self.value_before_softmax,
            query_before_ln: self.query_before_ln,
        })
    }
}

/// One AdapterFusion layer at one adapter site. Parameter names are AdapterHub's.
#[derive(Module, Debug)]
pub struct AdapterFusion {
    /// Query projection `[d, d]` with bias.
    pub query: Option<Linear>,
    /// Key projection `[d, d]` with bias.
    pub key: Option<Linear>,
    /// Value projection `[d, d]` without bias.
    pub value: Option<Linear>,
    /// AdapterHub creates (and never uses) a `[d, 1]` projection when query, key and value are
    /// all off; kept so that such files load.
    pub dense: Option<Linear>,
    /// Dropout on the attention scores.
    pub dropout: Dropout,
    /// See [`FusionConfig::residual_before`].
    pub residual_before: bool,
    /// See [`FusionConfig::value_before_softmax`].
    pub value_before_softmax: bool,
    /// See [`FusionConfig::query_before_ln`].
    pub query_before_ln: bool,
}

impl AdapterFusion {
    /// Fuse the children's outputs.
    ///
    /// Shapes: `query` and `residual` `[batch, seq, d]`; `ups` `[batch, seq, n, d]` (the scaled
    /// bottleneck outputs of the `n` fused adapters, before their dropout); result
    /// `[batch, seq, d]`.
    pub fn forward(&self, query: Tensor<3>, ups: Tensor<4>, residual: Tensor<3>) -> Tensor<3> {
        let [b, s, _, d] = ups.dims();
        // AdapterHub adds the residual in place to the tensor it passes as key and value.
        let ups = if self.residual_before {
            ups + residual.clone().unsqueeze_dim::<4>(2)
        } else {
            ups
        };
        let q = match &self.query {
            Some(l) => l.forward(query),
            None => query,
        };
        let k = match &self.key {
            Some(l) => l.forward(ups.clone()),
            None => ups.clone(),
        };
        let v = match (&self.value, self.value_before_softmax) {
            (Some(l), true) => l.forward(ups),
            _ => ups,
        };
        // [b, s, 1, d] x [b, s, d, n] -> [b, s, n]
        let scores = q.unsqueeze_dim::<4>(2).matmul(k.swap_dims(2, 3));
        let n = scores.dims()[3];
        let scores = crate::dropout::dropout(&self.dropout, scores.reshape([b, s, n]));
        let probs = softmax(scores, 2);
        // [b, s, 1, n] x [b, s, n, d] -> [b, s, d]
        let mut context = probs.unsqueeze_dim::<4>(2).matmul(v).reshape([b, s, d]);
        if let (Some(l), false) = (&self.value, self.value_before_softmax) {
            context = l.forward(context);
        }
        if !self.residual_before {
            context = context + residual;
        }
        context
    }

    /// AdapterHub's fusion regularisation term for this layer, `0.01 · Σ (I - V)²` (zero
    /// without a value projection): add it to the training loss when
    /// [`FusionConfig::regularization`] is on.
    pub fn regularization(&self) -> Option<Tensor<1>> {
        let v = self.value.as_ref()?;
        let w = v.weight.val();
        let [d, _] = w.dims();
        let eye = Tensor::<2>::eye(d, &w.device());
        Some((eye - w).powf_scalar(2.0).sum() * 0.01)
    }
}
