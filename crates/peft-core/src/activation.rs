//! Non-linearities available inside a bottleneck adapter.

use std::fmt;
use std::str::FromStr;

use burn::tensor::{DType, Tensor, TensorData, activation};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::PeftError;

/// The non-linearity between the down- and up-projection of an adapter.
///
/// Serialised with AdapterHub's names (`relu`, `gelu`, `gelu_new`, `swish`, `tanh`,
/// `leaky_relu`); `silu` and `gelu_tanh` are accepted as aliases.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// `max(0, x)`.
    Relu,
    /// GELU, exact erf form (BERT's `gelu`).
    Gelu,
    /// GELU, tanh approximation (GPT-2's `gelu_new`).
    #[serde(alias = "gelu_tanh")]
    GeluNew,
    /// SiLU / swish, `x * sigmoid(x)` (AdapterHub's Houlsby preset).
    #[serde(rename = "swish", alias = "silu")]
    Silu,
    /// Hyperbolic tangent.
    Tanh,
    /// Leaky ReLU with PyTorch's default negative slope 0.01.
    LeakyRelu,
}

impl Activation {
    /// Apply the non-linearity element-wise.
    pub fn forward<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Self::Relu => activation::relu(x),
            Self::Gelu => gelu(x),
            Self::GeluNew => activation::gelu_approximate(x),
            Self::Silu => activation::silu(x),
            Self::Tanh => activation::tanh(x),
            Self::LeakyRelu => activation::leaky_relu(x, 0.01),
        }
    }

    /// The canonical (serialised) name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Relu => "relu",
            Self::Gelu => "gelu",
            Self::GeluNew => "gelu_new",
            Self::Silu => "swish",
            Self::Tanh => "tanh",
            Self::LeakyRelu => "leaky_relu",
        }
    }
}

/// Exact (erf) GELU, `x * Φ(x)`, with a fast path on CPU backends.
///
/// Same values and gradients as `burn::tensor::activation::gelu` (values within
/// 2.5e-7·max(1, |x|), gradients within 1e-6; the golden tests against PyTorch hold at 1e-5).
/// On flex and ndarray, burn evaluates `erf` with a scalar libm call per element on one thread, forward and backward: a quarter of a MiniLM
/// adapter-training step in profiles. Here both `Φ(x)` and `Φ(x) + x φ(x)` (the derivative) are
/// computed in one multi-threaded host pass, sharing one `exp(-x²/2)`; the erf is Abramowitz and
/// Stegun 7.1.26 (|error| < 1.5e-7), the formula PyTorch's vectorised CPU kernel uses. On an
/// autodiff device the result is `y + (x - detach(x)) * gelu'(x)`: the value is `y` exactly and
/// the gradient is `gelu'(x)`; an input outside the autodiff graph gets the values only. Other devices (GPU) and dtypes use burn's kernel.
///
/// Shapes: any `[..]`, output the same.
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let host = x.dtype() == DType::F32 && crate::host::host_resident(&x.device());
    gelu_on(x, host)
}

/// [`gelu`] computed on the host (`host_path`) or by burn's kernel.
fn gelu_on<const D: usize>(x: Tensor<D>, host_path: bool) -> Tensor<D> {
    if !host_path {
        return activation::gelu(x);
    }
    let device = x.device();
    let dims = x.shape().dims::<D>();
    if !x.is_tracked() {
        // No gradient can flow (no autodiff, or a frozen part of the graph): values only, and
        // `x` is not needed afterwards, so its buffer is handed over instead of copied.
        let data = x.into_data();
        let y = match data.as_slice::<f32>() {
            Ok(values) => gelu_host(values, false).0,
            // Unreachable (the dtype is F32), but never a panic: burn's kernel on the data.
            Err(_) => return activation::gelu(Tensor::from_data(data, &device)),
        };
        return Tensor::from_data(TensorData::new(y, dims), &device);
    }
    let data = x.clone().into_data();
    let (y, dy) = match data.as_slice::<f32>() {
        Ok(values) => gelu_host(values, true),
        Err(_) => return activation::gelu(x),
    };
    let y = Tensor::from_data(TensorData::new(y, dims), &device);
    let dy = Tensor::from_data(TensorData::new(dy, dims), &device);
    y + (x.clone() - x.detach()) * dy
}

/// `gelu(x)` and, when `with_grad`, `gelu'(x)`, element-wise on the host (rayon; the inner
/// loops have no calls, so they vectorise).
fn gelu_host(xs: &[f32], with_grad: bool) -> (Vec<f32>, Vec<f32>) {
    const CHUNK: usize = 16 * 1024;
    let mut y = vec![0f32; xs.len()];
    if !with_grad {
        y.par_chunks_mut(CHUNK)
            .zip(xs.par_chunks(CHUNK))
            .for_each(|(y, xs)| {
                for (y, &x) in y.iter_mut().zip(xs) {
                    *y = x * normal_cdf_pdf(x).0;
                }
            });
        return (y, Vec::new());
    }
    let mut dy = vec![0f32; xs.len()];
    y.par_chunks_mut(CHUNK)
        .zip(dy.par_chunks_mut(CHUNK))
        .zip(xs.par_chunks(CHUNK))
        .for_each(|((y, dy), xs)| {
            for ((y, dy), &x) in y.iter_mut().zip(dy.iter_mut()).zip(xs) {
                let (cdf, pdf) = normal_cdf_pdf(x);
                *y = x * cdf;
                *dy = cdf + x * pdf;
            }
        });
    (y, dy)
}

/// The standard normal `Φ(x)` and `φ(x)`, with erf by Abramowitz and Stegun 7.1.26
/// (|error| < 1.5e-7) and [`exp_nonpositive`].
#[inline(always)]
fn normal_cdf_pdf(x: f32) -> (f32, f32) {
    const P: f32 = 0.327_591_1;
    const A1: f32 = 0.254_829_6;
    const A2: f32 = -0.284_496_74;
    const A3: f32 = 1.421_413_7;
    const A4: f32 = -1.453_152_1;
    const A5: f32 = 1.061_405_4;
    const INV_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    let z = x.abs() * INV_SQRT_2;
    let e = exp_nonpositive(-0.5 * x * x); // exp(-z²)
    let t = 1.0 / (1.0 + P * z);
    let poly = ((((A5 * t + A4) * t + A3) * t + A2) * t + A1) * t;
    let erf_abs = 1.0 - poly * e;
    // erf is odd: give |erf| the sign of x (NaN stays NaN).
    let erf = f32::from_bits(erf_abs.to_bits() | (x.to_bits() & 0x8000_0000));
    (0.5 * (1.0 + erf), INV_SQRT_2PI * e)
}

/// `exp(v)` for `v <= 0` (and NaN) without a libm call: `2^n * e^r` with `n = round(v / ln 2)`,
/// `|r| <= ln 2 / 2` and a degree-6 Taylor polynomial (relative error < 2e-7); 0 below -87.
#[inline(always)]
pub(crate) fn exp_nonpositive(v: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // 1.5 * 2^23: adding and subtracting it rounds to the nearest integer (|v / ln 2| < 2^22).
    const ROUND: f32 = 12_582_912.0;
    // A NaN becomes -87 here; the callers propagate it through their other terms.
    let v = v.max(-87.0);
    let n = (v * LOG2E + ROUND) - ROUND;
    let r = (v - n * LN2_HI) - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    // 2^n for n in [-126, 0] built from its exponent bits.
    let two_n = f32::from_bits(((n as i32 + 127) as u32) << 23);
    p * two_n
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Activation {
    type Err = PeftError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "relu" => Ok(Self::Relu),
            "gelu" => Ok(Self::Gelu),
            "gelu_new" | "gelu_tanh" | "gelu_approximate" => Ok(Self::GeluNew),
            "silu" | "swish" => Ok(Self::Silu),
            "tanh" => Ok(Self::Tanh),
            "leaky_relu" | "leakyrelu" => Ok(Self::LeakyRelu),
            _ => Err(PeftError::UnknownActivation(s.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData, Tolerance};

    fn gelu_inputs() -> Vec<f32> {
        // Dense in [-8, 8], plus the tails and exact zero.
        let mut v: Vec<f32> = (0..4001).map(|i| -8.0 + i as f32 * 0.004).collect();
        v.extend([-30.0, -12.5, 0.0, 1e-6, -1e-6, 12.5, 30.0]);
        v
    }

    fn to_vec(t: Tensor<1>) -> Vec<f32> {
        t.into_data().try_into_vec::<f32>().unwrap_or_default()
    }

    fn assert_close(a: &[f32], b: &[f32], tol: impl Fn(usize) -> f32, what: &str) {
        assert_eq!(a.len(), b.len(), "{what}: lengths");
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() <= tol(i), "{what}[{i}]: {x} vs {y}");
        }
    }

    #[test]
    fn fast_gelu_matches_burns_values_and_gradients() {
        let xs = gelu_inputs();
        let n = xs.len();
        for device in [Device::default(), Device::default().autodiff()] {
            let x = Tensor::<1>::from_data(TensorData::new(xs.clone(), [n]), &device);
            assert_close(
                &to_vec(gelu_on(x.clone(), true)),
                &to_vec(activation::gelu(x)),
                |i| 2.5e-7 * xs[i].abs().max(1.0),
                "gelu",
            );
        }
        // Gradients through a tracked intermediate (2 * leaf), with a non-uniform upstream
        // gradient, against burn's own gelu backward.
        let device = Device::default().autodiff();
        let upstream: Vec<f32> = (0..n).map(|i| 0.5 + (i % 7) as f32 * 0.25).collect();
        let grad_of = |fast: bool| {
            let leaf =
                Tensor::<1>::from_data(TensorData::new(xs.clone(), [n]), &device).require_grad();
            let x = leaf.clone() * 0.5;
            let y = gelu_on(x, fast);
            let w = Tensor::<1>::from_data(TensorData::new(upstream.clone(), [n]), &device);
            let grads = (y * w).sum().backward();
            leaf.grad(&grads).map(to_vec).unwrap_or_default()
        };
        assert_close(&grad_of(true), &grad_of(false), |_| 1e-6, "d gelu");
    }

    #[test]
    fn polynomial_exp_is_accurate_on_the_nonpositive_axis() {
        let mut worst = 0f64;
        for i in 0..=200_000 {
            let v = -(i as f32) * 0.000_45; // 0 .. -90
            let got = f64::from(exp_nonpositive(v));
            let want = f64::from(v).exp();
            if want > 1e-37 {
                worst = worst.max((got - want).abs() / want);
            }
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        assert_eq!(exp_nonpositive(0.0), 1.0);
    }

    #[test]
    fn fast_gelu_propagates_nan_and_keeps_shape() {
        let device = Device::default().autodiff();
        let x = Tensor::<2>::from_data(
            TensorData::new(vec![f32::NAN, 1.0, -1.0, 0.5, 2.0, -3.0], [2, 3]),
            &device,
        );
        let y = gelu_on(x, true);
        assert_eq!(y.dims(), [2, 3]);
        let v = y.into_data().try_into_vec::<f32>().unwrap_or_default();
        assert!(v[0].is_nan());
        assert!((v[1] - 0.841_344_7).abs() < 1e-6, "gelu(1) = {}", v[1]);
    }

    #[test]
    fn names_round_trip_and_unknown_is_an_error() {
        for a in [
            Activation::Relu,
            Activation::Gelu,
            Activation::GeluNew,
            Activation::Silu,
            Activation::Tanh,
            Activation::LeakyRelu,
        ] {
            assert_eq!(a.name().parse::<Activation>().ok(), Some(a));
            let json = serde_json::to_string(&a).ok();
            assert_eq!(json, Some(format!("\"{}\"", a.name())));
        }
        assert_eq!("silu".parse::<Activation>().ok(), Some(Activation::Silu));
        assert!(matches!(
            "sigmoidish".parse::<Activation>(),
            Err(PeftError::UnknownActivation(_))
        ));
        assert!(serde_json::from_str::<Activation>("\"sigmoidish\"").is_err());
    }

    #[test]
    fn values_match_pytorch() {
        let device = Device::flex();
        let x = Tensor::<1>::from_floats([-2.0, -0.5, 0.0, 1.5], &device);
        // torch.nn.functional.{silu, gelu, gelu(approximate="tanh"), leaky_relu} on the same input.
        let cases: [(Activation, [f32; 4]); 4] = [
            (
                Activation::Silu,
                [-0.238_405_85, -0.188_770_94, 0.0, 1.226_361_2],
            ),
            (
                Activation::Gelu,
                [-0.045_500_26, -0.154_268_53, 0.0, 1.399_789_5],
            ),
            (
                Activation::GeluNew,
                [-0.045_402_31, -0.154_286, 0.0, 1.399_572_3],
            ),
            (Activation::LeakyRelu, [-0.02, -0.005, 0.0, 1.5]),
        ];
        for (act, expected) in cases {
            act.forward(x.clone())
                .into_data()
                .assert_approx_eq::<f32>(&TensorData::from(expected), Tolerance::absolute(1e-5));
        }
    }
}
