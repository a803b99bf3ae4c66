//! Fused CPU kernels for the Transformer's memory-bound steps, with burn's ops as the portable
//! path.
//!
//! | function | computes | replaces (burn, under autodiff) |
//! |---|---|---|
//! | [`masked_softmax`] | `softmax(scores · scale + bias)` over the last dim | mul, broadcast add, max, sub, exp, sum, div and their backward chain |
//! | [`add_layer_norm`] | `LayerNorm(x + residual)` | add, mean, sub, square, mean, add, sqrt, div, mul, add and their backward chain |
//! | [`layer_norm`] | `LayerNorm(x)` | the same without the add |
//!
//! On flex (this crate's `flex` feature) with `f32` tensors each is one multi-threaded pass
//! forward and one backward, through burn's backend-extension mechanism with its own backward
//! step; the value is that of burn's ops within 1e-6 relative and the gradients within 1e-5
//! (tests in `kernels/tests.rs`). Everywhere else (GPU backends, other dtypes, a tracked
//! softmax bias, a LayerNorm without beta) these functions are burn's ops, unchanged.
//!
//! The environment variable `BURN_PEFT_FUSED_KERNELS=0`, read once per process, switches the
//! fused paths off (burn's ops everywhere), for A/B measurements and for ruling the kernels
//! out when a result looks wrong.

#[cfg(feature = "flex")]
mod flex;
#[cfg(feature = "flex")]
mod rows;
#[cfg(all(test, feature = "flex"))]
mod tests;

use burn::nn::LayerNorm;
use burn::tensor::Tensor;
use burn::tensor::activation::softmax;

/// `softmax(scores * scale + bias, dim = 3)`: attention probabilities.
///
/// Shapes: `scores` `[batch, heads, queries, keys]`; `bias` broadcastable to it as
/// `[1|batch, 1|heads, 1|queries, keys]` (0 where attending is allowed, a large negative number
/// such as `f32::MIN` where not), a constant (the fused path is taken only for an untracked
/// bias). Output like `scores`.
pub fn masked_softmax(scores: Tensor<4>, bias: Tensor<4>, scale: f32) -> Tensor<4> {
    #[cfg(feature = "flex")]
    if fused(&scores)
        && fused(&bias)
        && !bias.is_tracked()
        && rows::BiasLayout::new(scores.dims(), bias.dims()).is_some()
    {
        use burn::backend::Dispatch;
        use flex::HostKernels;
        return Tensor::from_dispatch(<Dispatch as HostKernels>::masked_softmax(
            scores.into_dispatch(),
            bias.into_dispatch(),
            scale,
        ));
    }
    reference_masked_softmax(scores, bias, scale)
}

/// [`masked_softmax`] by burn's ops.
pub fn reference_masked_softmax(scores: Tensor<4>, bias: Tensor<4>, scale: f32) -> Tensor<4> {
    softmax(scores.mul_scalar(scale) + bias, 3)
}

/// `layer_norm(x + residual)`: a post-LN residual connection. Shapes: `x` and `residual` the
/// same `[.., d_model]`; output the same.
pub fn add_layer_norm<const D: usize>(
    layer_norm: &LayerNorm,
    x: Tensor<D>,
    residual: Tensor<D>,
) -> Tensor<D> {
    #[cfg(feature = "flex")]
    if let Some((gamma, beta, epsilon)) = fused_layer_norm(layer_norm, &x)
        && fused(&residual)
        && residual.dims() == x.dims()
    {
        use burn::backend::Dispatch;
        use flex::HostKernels;
        return Tensor::from_dispatch(<Dispatch as HostKernels>::add_layer_norm(
            x.into_dispatch(),
            residual.into_dispatch(),
            gamma.into_dispatch(),
            beta.into_dispatch(),
            epsilon,
        ));
    }
    layer_norm.forward(x + residual)
}

/// `layer_norm(x)` (burn's [`LayerNorm::forward`], fused on flex). Shapes: `[.., d_model]`
/// in and out.
pub fn layer_norm<const D: usize>(layer_norm: &LayerNorm, x: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "flex")]
    if let Some((gamma, beta, epsilon)) = fused_layer_norm(layer_norm, &x) {
        use burn::backend::Dispatch;
        use flex::HostKernels;
        return Tensor::from_dispatch(<Dispatch as HostKernels>::layer_norm(
            x.into_dispatch(),
            gamma.into_dispatch(),
            beta.into_dispatch(),
            epsilon,
        ));
    }
    layer_norm.forward(x)
}

/// Whether the fused kernels are on: unless `BURN_PEFT_FUSED_KERNELS` is `0` (read once).
pub fn enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("BURN_PEFT_FUSED_KERNELS").map_or(true, |v| v.trim() != "0"))
}

/// Whether `t` can go through the fused kernels: `f32` on flex (with or without autodiff),
/// kernels [`enabled`].
#[cfg(feature = "flex")]
fn fused<const D: usize>(t: &Tensor<D>) -> bool {
    t.dtype() == burn::tensor::DType::F32 && crate::host::is_flex(&t.device()) && enabled()
}

/// `(gamma, beta, epsilon)` of `layer_norm` when its fused form applies to `x`.
#[cfg(feature = "flex")]
fn fused_layer_norm<const D: usize>(
    layer_norm: &LayerNorm,
    x: &Tensor<D>,
) -> Option<(Tensor<1>, Tensor<1>, f64)> {
    let gamma = layer_norm.gamma.val();
    let beta = layer_norm.beta.as_ref()?.val();
    let ok = fused(x)
        && fused(&gamma)
        && fused(&beta)
        && D >= 1
        && x.dims()[D - 1] == gamma.dims()[0]
        && beta.dims() == gamma.dims();
    if !ok {
        return None;
    }
    Some((gamma, beta, layer_norm_epsilon(layer_norm)?))
}

/// The epsilon of a burn `LayerNorm`. burn 0.22 keeps the field private and shows it only in
/// the module's display (`LayerNorm {d_model: 6, epsilon: 0.00001, ..}`, Rust's shortest
/// round-trip float formatting, so the parse is exact); `None` if that ever changes, and the
/// callers then use burn's own forward.
pub fn layer_norm_epsilon(layer_norm: &LayerNorm) -> Option<f64> {
    let shown = format!("{layer_norm}");
    let rest = shown.split_once("epsilon: ")?.1;
    let end = rest.find([',', '}', ' '])?;
    rest[..end].parse().ok().filter(|e: &f64| e.is_finite())
}
