//! The fused kernels as a burn backend extension for flex, with and without autodiff (each with
//! its own backward step).

use std::borrow::Cow;

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Flex, TensorMetadata, backend_extension};
use burn::tensor::TensorData;

use super::rows::{self, BiasLayout, LayerNormSaved};

/// Fused CPU kernels (flex only; callers check the device and dtype first).
#[backend_extension(Flex, Autodiff)]
pub trait HostKernels: Backend {
    /// `softmax(x * scale + bias, dim = 3)` for `x` `[b, h, s, t]` and a constant `bias`
    /// broadcastable as `[1|b, 1|h, 1|s, t]`.
    fn masked_softmax(
        x: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        scale: f32,
    ) -> FloatTensor<Self>;

    /// `LayerNorm(x + residual)` over the last dimension.
    fn add_layer_norm(
        x: FloatTensor<Self>,
        residual: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self>;

    /// `LayerNorm(x)` over the last dimension.
    fn layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self>;
}

/// The values of `t` in row-major order, borrowed when it is contiguous `f32`.
fn values(t: &FlexTensor) -> Cow<'_, [f32]> {
    if let Some(s) = t.as_slice::<f32>() {
        return Cow::Borrowed(s);
    }
    let data = t.clone().into_data().convert::<f32>();
    Cow::Owned(data.try_into_vec::<f32>().unwrap_or_default())
}

fn dims(t: &FlexTensor) -> Vec<usize> {
    t.shape().to_vec()
}

fn tensor(values: Vec<f32>, dims: Vec<usize>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, dims))
}

fn dims4(d: &[usize]) -> [usize; 4] {
    let mut out = [1; 4];
    for (o, &v) in out.iter_mut().rev().zip(d.iter().rev()) {
        *o = v;
    }
    out
}

/// Forward masked softmax on flex tensors.
fn softmax_fwd(x: &FlexTensor, bias: &FlexTensor, scale: f32) -> FlexTensor {
    let shape = dims(x);
    let layout = BiasLayout::new(dims4(&shape), dims4(&dims(bias)));
    let y = match layout {
        Some(layout) => rows::softmax_forward(&values(x), &values(bias), scale, layout),
        // Callers check the broadcast first; an empty result is never produced for valid input.
        None => Vec::new(),
    };
    tensor(y, shape)
}

/// Forward (add +) LayerNorm on flex tensors; `save` keeps what the backward pass needs.
fn layer_norm_fwd(
    x: &FlexTensor,
    residual: Option<&FlexTensor>,
    gamma: &FlexTensor,
    beta: &FlexTensor,
    epsilon: f64,
    save: bool,
) -> (FlexTensor, LayerNormSaved) {
    let shape = dims(x);
    let residual = residual.map(values);
    let (y, saved) = rows::layer_norm_forward(
        &values(x),
        residual.as_deref(),
        &values(gamma),
        &values(beta),
        epsilon,
        save,
    );
    (tensor(y, shape), saved)
}

impl HostKernels for Flex {
    fn masked_softmax(x: FlexTensor, bias: FlexTensor, scale: f32) -> FlexTensor {
        softmax_fwd(&x, &bias, scale)
    }

    fn add_layer_norm(
        x: FlexTensor,
        residual: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        epsilon: f64,
    ) -> FlexTensor {
        layer_norm_fwd(&x, Some(&residual), &gamma, &beta, epsilon, false).0
    }

    fn layer_norm(x: FlexTensor, gamma: FlexTensor, beta: FlexTensor, epsilon: f64) -> FlexTensor {
        layer_norm_fwd(&x, None, &gamma, &beta, epsilon, false).0
    }
}

/// Backward of the masked softmax: the gradient for `x` only (the bias is a constant).
#[derive(Debug)]
struct SoftmaxBackward;

impl Backward<Flex, 1> for SoftmaxBackward {
    /// The softmax output and the scale.
    type State = (FlexTensor, f32);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [parent] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let (y, scale) = ops.state;
        if let Some(parent) = parent {
            let shape = dims(&y);
            let row = shape.last().copied().unwrap_or(0);
            let dx = rows::softmax_backward(&values(&y), &values(&grad), scale, row);
            grads.register::<Flex>(parent.id, tensor(dx, shape));
        }
    }
}

/// What the LayerNorm backward needs.
#[derive(Clone, Debug)]
struct LayerNormState {
    saved: LayerNormSaved,
    gamma: FlexTensor,
    shape: Vec<usize>,
}

/// Registers the LayerNorm gradients: `dx` for every id in `dx_to` (the input, and the
/// residual of the fused add), `dgamma`, `dbeta` for theirs.
fn register_layer_norm_grads(
    grads: &mut Gradients,
    grad: FlexTensor,
    state: LayerNormState,
    dx_to: &[NodeId],
    gamma: Option<NodeId>,
    beta: Option<NodeId>,
) {
    let want_params = gamma.is_some() || beta.is_some();
    let (dx, dgamma, dbeta) = rows::layer_norm_backward(
        &values(&grad),
        &state.saved,
        &values(&state.gamma),
        !dx_to.is_empty(),
        want_params,
    );
    let row = state.gamma.shape().to_vec();
    if let Some((last, rest)) = dx_to.split_last() {
        let dx = tensor(dx, state.shape);
        for id in rest {
            grads.register::<Flex>(*id, dx.clone());
        }
        grads.register::<Flex>(*last, dx);
    }
    if let Some(gamma) = gamma {
        grads.register::<Flex>(gamma, tensor(dgamma, row.clone()));
    }
    if let Some(beta) = beta {
        grads.register::<Flex>(beta, tensor(dbeta, row));
    }
}

/// Backward of the residual add + LayerNorm: parents `[x, residual, gamma, beta]`.
#[derive(Debug)]
struct AddLayerNormBackward;

impl Backward<Flex, 4> for AddLayerNormBackward {
    type State = LayerNormState;

    fn backward(self, ops: Ops<Self::State, 4>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x, residual, gamma, beta] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let dx_to: Vec<NodeId> = [x, residual].into_iter().flatten().map(|n| n.id).collect();
        let (gamma, beta) = (gamma.map(|n| n.id), beta.map(|n| n.id));
        register_layer_norm_grads(grads, grad, ops.state, &dx_to, gamma, beta);
    }
}

/// Backward of LayerNorm: parents `[x, gamma, beta]`.
#[derive(Debug)]
struct LayerNormBackward;

impl Backward<Flex, 3> for LayerNormBackward {
    type State = LayerNormState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x, gamma, beta] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let dx_to: Vec<NodeId> = x.into_iter().map(|n| n.id).collect();
        let (gamma, beta) = (gamma.map(|n| n.id), beta.map(|n| n.id));
        register_layer_norm_grads(grads, grad, ops.state, &dx_to, gamma, beta);
    }
}

impl<C: CheckpointStrategy> HostKernels for Autodiff<Flex, C> {
    fn masked_softmax(
        x: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        scale: f32,
    ) -> FloatTensor<Self> {
        let bias = bias.into_primitive();
        match SoftmaxBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let y = softmax_fwd(x.primitive(), &bias, scale);
                prep.finish((y.clone(), scale), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(softmax_fwd(x.primitive(), &bias, scale)),
        }
    }

    fn add_layer_norm(
        x: FloatTensor<Self>,
        residual: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        let nodes = [x.node(), residual.node(), gamma.node(), beta.node()];
        match AddLayerNormBackward
            .prepare::<C>(nodes)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (y, saved) = layer_norm_fwd(
                    x.primitive(),
                    Some(residual.primitive()),
                    gamma.primitive(),
                    beta.primitive(),
                    epsilon,
                    true,
                );
                let state = LayerNormState {
                    saved,
                    gamma: gamma.primitive().clone(),
                    shape: dims(x.primitive()),
                };
                prep.finish(state, y)
            }
            OpsKind::UnTracked(prep) => {
                let (y, _) = layer_norm_fwd(
                    x.primitive(),
                    Some(residual.primitive()),
                    gamma.primitive(),
                    beta.primitive(),
                    epsilon,
                    false,
                );
                prep.finish(y)
            }
        }
    }

    fn layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        let nodes = [x.node(), gamma.node(), beta.node()];
        match LayerNormBackward
            .prepare::<C>(nodes)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (y, saved) = layer_norm_fwd(
                    x.primitive(),
                    None,
                    gamma.primitive(),
                    beta.primitive(),
                    epsilon,
                    true,
                );
                let state = LayerNormState {
                    saved,
                    gamma: gamma.primitive().clone(),
                    shape: dims(x.primitive()),
                };
                prep.finish(state, y)
            }
            OpsKind::UnTracked(prep) => {
                let (y, _) = layer_norm_fwd(
                    x.primitive(),
                    None,
                    gamma.primitive(),
                    beta.primitive(),
                    epsilon,
                    false,
                );
                prep.finish(y)
            }
        }
    }
}
