//! The fused kernels against burn's reference ops: values within 1e-6 relative, gradients
//! within 1e-5, with odd shapes, padding and causal masks and non-contiguous inputs.

use burn::module::Module;
use burn::nn::{LayerNorm, LayerNormConfig};
use burn::tensor::{Device, Tensor, TensorData};

use super::*;

/// Deterministic values in `[-scale, scale)` (a small LCG), so that failures reproduce.
fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

fn tensor<const D: usize>(dims: [usize; D], seed: u64, scale: f32, device: &Device) -> Tensor<D> {
    let n = dims.iter().product();
    Tensor::from_data(TensorData::new(values(n, seed, scale), dims), device)
}

fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap_or_default()
}

/// `|a - b| <= rel * max(|a|, |b|) + abs` element-wise.
fn assert_close(a: &[f32], b: &[f32], rel: f32, abs: f32, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    assert!(!a.is_empty(), "{what}: empty");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let tol = rel * x.abs().max(y.abs()) + abs;
        assert!((x - y).abs() <= tol, "{what}[{i}]: fused {x} vs burn {y}");
    }
}

/// A padding bias `[b, 1, 1, t]`: the last `pad[i]` keys of example `i` masked with `f32::MIN`.
fn padding_bias(b: usize, t: usize, pad: &[usize], device: &Device) -> Tensor<4> {
    let mut v = vec![0f32; b * t];
    for (i, &p) in pad.iter().enumerate() {
        for k in t - p..t {
            v[i * t + k] = f32::MIN;
        }
    }
    Tensor::from_data(TensorData::new(v, [b, 1, 1, t]), device)
}

/// A causal bias `[1, 1, s, s]`.
fn causal_bias(s: usize, device: &Device) -> Tensor<4> {
    let v: Vec<f32> = (0..s * s)
        .map(|i| if i % s > i / s { f32::MIN } else { 0.0 })
        .collect();
    Tensor::from_data(TensorData::new(v, [1, 1, s, s]), device)
}

#[test]
fn masked_softmax_matches_burn_with_padding_causal_and_full_biases() {
    for device in [Device::flex(), Device::flex().autodiff()] {
        let (b, h, s) = (3, 5, 7);
        let scores = tensor([b, h, s, s], 1, 6.0, &device);
        let biases = [
            padding_bias(b, s, &[0, 3, 6], &device),
            causal_bias(s, &device),
            tensor([b, h, s, s], 2, 3.0, &device),
            tensor([1, h, 1, s], 3, 3.0, &device),
        ];
        for (k, bias) in biases.into_iter().enumerate() {
            let fused = masked_softmax(scores.clone(), bias.clone(), 0.37);
            let reference = reference_masked_softmax(scores.clone(), bias, 0.37);
            assert_eq!(fused.dims(), [b, h, s, s]);
            assert_close(
                &to_vec(fused),
                &to_vec(reference),
                1e-6,
                1e-9,
                &format!("softmax bias {k}"),
            );
        }
    }
}

#[test]
fn masked_softmax_takes_non_contiguous_scores_and_an_odd_key_count() {
    let device = Device::flex();
    // [b, s, h, t] viewed as [b, h, s, t]: a strided input, 13 keys (no multiple of 8).
    let scores = tensor([2, 9, 3, 13], 4, 4.0, &device).swap_dims(1, 2);
    let bias = padding_bias(2, 13, &[5, 0], &device);
    let fused = masked_softmax(scores.clone(), bias.clone(), 1.0);
    let reference = reference_masked_softmax(scores, bias, 1.0);
    assert_close(&to_vec(fused), &to_vec(reference), 1e-6, 1e-9, "strided");
}

#[test]
fn masked_softmax_gradients_match_burn() {
    let device = Device::flex().autodiff();
    let (b, h, s) = (2, 3, 11);
    let upstream = tensor([b, h, s, s], 5, 1.0, &device);
    let grad_of = |fused: bool, bias: Tensor<4>| {
        let leaf = tensor([b, s, h, s], 6, 5.0, &device).require_grad();
        // A tracked, non-contiguous intermediate, as q·kᵀ is.
        let scores = (leaf.clone() * 1.5).swap_dims(1, 2);
        let p = if fused {
            masked_softmax(scores, bias, 0.25)
        } else {
            reference_masked_softmax(scores, bias, 0.25)
        };
        let grads = (p * upstream.clone()).sum().backward();
        leaf.grad(&grads).map(to_vec).unwrap_or_default()
    };
    for bias in [
        padding_bias(b, s, &[4, 0], &device),
        causal_bias(s, &device),
    ] {
        let fused = grad_of(true, bias.clone());
        let reference = grad_of(false, bias);
        assert_close(&fused, &reference, 1e-5, 1e-7, "d softmax");
        assert!(
            fused.iter().any(|g| g.abs() > 1e-3),
            "gradients are not all zero"
        );
    }
}

#[test]
fn a_tracked_bias_takes_burns_path_and_gets_its_gradient() {
    let device = Device::flex().autodiff();
    let scores = tensor([1, 2, 3, 4], 7, 2.0, &device);
    let bias = tensor([1, 1, 1, 4], 8, 1.0, &device).require_grad();
    let w = tensor([1, 2, 3, 4], 9, 1.0, &device);
    let grads = (masked_softmax(scores.clone(), bias.clone(), 1.0) * w.clone())
        .sum()
        .backward();
    let got = bias.grad(&grads).map(to_vec).unwrap_or_default();
    let grads = (reference_masked_softmax(scores, bias.clone(), 1.0) * w)
        .sum()
        .backward();
    let want = bias.grad(&grads).map(to_vec).unwrap_or_default();
    assert_close(&got, &want, 0.0, 0.0, "bias gradient");
}

fn random_layer_norm(d: usize, epsilon: f64, device: &Device) -> LayerNorm {
    let track = |t: Tensor<1>| {
        if device.is_autodiff() {
            t.require_grad()
        } else {
            t
        }
    };
    let mut ln = LayerNormConfig::new(d).with_epsilon(epsilon).init(device);
    ln.gamma = ln.gamma.map(|_| track(tensor([d], 10, 1.0, device) + 1.0));
    ln.beta = ln
        .beta
        .map(|b| b.map(|_| track(tensor([d], 11, 0.5, device))));
    ln
}

#[test]
fn layer_norm_values_match_burn_including_non_contiguous_and_odd_widths() {
    for device in [Device::flex(), Device::flex().autodiff()] {
        for (d, eps) in [(13, 1e-12), (384, 1e-5), (2, 1e-3)] {
            let ln = random_layer_norm(d, eps, &device);
            let x = tensor([5, 3, d], 12, 3.0, &device) + 0.7;
            let r = tensor([3, 5, d], 13, 2.0, &device).swap_dims(0, 1);
            let fused = add_layer_norm(&ln, x.clone(), r.clone());
            let reference = ln.forward(x.clone() + r);
            assert_close(
                &to_vec(fused),
                &to_vec(reference),
                1e-6,
                1e-6,
                &format!("add+LN d={d}"),
            );
            let fused = layer_norm(&ln, x.clone().swap_dims(0, 1));
            let reference = ln.forward(x.swap_dims(0, 1));
            assert_close(
                &to_vec(fused),
                &to_vec(reference),
                1e-6,
                1e-6,
                &format!("LN d={d}"),
            );
        }
    }
}

#[test]
fn layer_norm_gradients_match_burn_for_inputs_and_parameters() {
    let device = Device::flex().autodiff();
    let d = 37;
    let upstream = tensor([4, 3, d], 14, 1.0, &device);
    // (dx, dresidual, dgamma, dbeta) with the fused or the reference path.
    let grads_of = |fused: bool, frozen_params: bool| {
        let mut ln = random_layer_norm(d, 1e-5, &device);
        if frozen_params {
            ln = ln.no_grad();
        }
        let x = tensor([4, 3, d], 15, 2.0, &device).require_grad();
        let r = tensor([3, 4, d], 16, 2.0, &device).require_grad();
        let y = if fused {
            add_layer_norm(&ln, x.clone() * 2.0, r.clone().swap_dims(0, 1))
        } else {
            ln.forward(x.clone() * 2.0 + r.clone().swap_dims(0, 1))
        };
        let grads = (y * upstream.clone()).sum().backward();
        let g = |t: Option<Tensor<1>>| t.map(to_vec);
        (
            x.grad(&grads).map(to_vec),
            r.grad(&grads).map(to_vec),
            g(ln.gamma.val().grad(&grads)),
            ln.beta.as_ref().and_then(|b| g(b.val().grad(&grads))),
        )
    };
    for frozen in [false, true] {
        let (fx, fr, fg, fb) = grads_of(true, frozen);
        let (rx, rr, rg, rb) = grads_of(false, frozen);
        assert_close(
            &fx.unwrap_or_default(),
            &rx.unwrap_or_default(),
            1e-5,
            1e-6,
            "dx",
        );
        assert_close(
            &fr.unwrap_or_default(),
            &rr.unwrap_or_default(),
            1e-5,
            1e-6,
            "dres",
        );
        if frozen {
            assert!(fg.is_none() && fb.is_none() && rg.is_none() && rb.is_none());
        } else {
            assert_close(
                &fg.unwrap_or_default(),
                &rg.unwrap_or_default(),
                1e-5,
                1e-5,
                "dg",
            );
            assert_close(
                &fb.unwrap_or_default(),
                &rb.unwrap_or_default(),
                1e-5,
                1e-5,
                "db",
            );
        }
    }
    // The plain LayerNorm's input gradient too.
    let ln = random_layer_norm(d, 1e-5, &device);
    let grad_x = |fused: bool| {
        let x = tensor([4, 3, d], 17, 2.0, &device).require_grad();
        let y = if fused {
            layer_norm(&ln, x.clone())
        } else {
            ln.forward(x.clone())
        };
        let grads = (y * upstream.clone()).sum().backward();
        x.grad(&grads).map(to_vec).unwrap_or_default()
    };
    assert_close(&grad_x(true), &grad_x(false), 1e-5, 1e-6, "dx plain");
}

#[test]
fn layer_norm_epsilon_is_read_exactly() {
    let device = Device::flex();
    for eps in [1e-5, 1e-12, 1e-6, 0.1, 3.25e-7] {
        let ln = LayerNormConfig::new(4).with_epsilon(eps).init(&device);
        assert_eq!(layer_norm_epsilon(&ln), Some(eps));
    }
}
