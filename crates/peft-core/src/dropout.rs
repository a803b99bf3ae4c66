//! Dropout with a fast mask on CPU backends.
//!
//! [`dropout`] behaves exactly like `burn::nn::Dropout::forward` (same module, same training
//! flag, same `1 / (1 - p)` scaling, identity off the autodiff device or in eval mode) and is
//! what every model and adapter in this workspace calls. The difference is how the mask is
//! drawn on host-resident backends (flex, ndarray): burn builds a Bernoulli sampler per element
//! with a ChaCha generator, which profiling put at ~11% of a MiniLM adapter-training step on
//! flex. Here the mask is filled by xoshiro256++ in one pass, already scaled, and applied with a
//! single multiply. On GPU backends the mask stays on the device (burn's own path), so nothing is
//! uploaded per call.
//!
//! The generator is seeded from the backend's RNG on each call, so `device.seed(s)` still makes
//! a run reproducible.

use burn::nn::Dropout;
use burn::tensor::{DType, Device, Distribution, Tensor, TensorData};
use rayon::prelude::*;

/// Apply `module`'s dropout to `input` (any shape; the output has the same shape).
///
/// Identity when the module is not training (eval mode, or frozen with `Module::freeze`), when
/// `input` is not on an autodiff device, or when the probability is 0, as for burn's `Dropout`.
pub fn dropout<const D: usize>(module: &Dropout, input: Tensor<D>) -> Tensor<D> {
    let host = input.dtype() == DType::F32 && crate::host::host_resident(&input.device());
    dropout_on(module, input, host)
}

/// [`dropout`] with the mask drawn on the host (`on_host`) or by burn's `Dropout`.
fn dropout_on<const D: usize>(module: &Dropout, input: Tensor<D>, on_host: bool) -> Tensor<D> {
    // burn's rule for when dropout acts; its own forward applies it on the other path.
    let active = module.training.is_enabled() && input.device().is_autodiff() && module.prob > 0.0;
    if !(on_host && active) {
        return module.forward(input);
    }
    let mask = host_mask(input.shape().dims::<D>(), module.prob, &input.device());
    input * mask
}

/// A `[dims]` tensor of `0` (probability `prob`) and `1 / (1 - prob)`, not tracked by autodiff.
///
/// Filled in parallel chunks, each with its own generator derived from one backend draw and
/// the chunk index, so the mask does not depend on the number of threads.
fn host_mask<const D: usize>(dims: [usize; D], prob: f64, device: &Device) -> Tensor<D> {
    const CHUNK: usize = 32 * 1024;
    let numel: usize = dims.iter().product();
    let seed = backend_seed(device);
    let keep = 1.0 - prob;
    let scale = (1.0 / keep) as f32;
    // Keep when a uniform 24-bit draw u / 2^24 < keep, i.e. u < keep * 2^24.
    let threshold = (keep * f64::from(1u32 << 24)).round() as u64;
    let mut values = vec![0f32; numel];
    values
        .par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(i, chunk)| {
            let mut rng =
                Xoshiro256pp::from_seed(seed ^ (i as u64).wrapping_mul(0xD1B5_4A32_D192_ED03));
            let mut pairs = chunk.chunks_exact_mut(2);
            for pair in &mut pairs {
                let r = rng.next_u64();
                pair[0] = if (r >> 40) < threshold { scale } else { 0.0 };
                pair[1] = if ((r >> 8) & 0xFF_FFFF) < threshold {
                    scale
                } else {
                    0.0
                };
            }
            if let [last] = pairs.into_remainder() {
                *last = if (rng.next_u64() >> 40) < threshold {
                    scale
                } else {
                    0.0
                };
            }
        });
    Tensor::from_data(TensorData::new(values, dims), device)
}

/// 64 bits drawn from the backend's (seedable) RNG.
pub(crate) fn backend_seed(device: &Device) -> u64 {
    let draws = Tensor::<1>::random([3], Distribution::Default, device).into_data();
    let mut seed = 0u64;
    if let Ok(values) = draws.try_to_vec::<f32>() {
        for v in values {
            // Each draw in [0, 1) carries 24 random bits.
            seed = (seed << 24) ^ ((v * 16_777_216.0) as u64);
        }
    }
    seed
}

/// xoshiro256++ (Blackman and Vigna), seeded through SplitMix64.
struct Xoshiro256pp([u64; 4]);

impl Xoshiro256pp {
    fn from_seed(mut seed: u64) -> Self {
        let mut s = [0u64; 4];
        for word in &mut s {
            seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = seed;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            *word = z ^ (z >> 31);
        }
        Self(s)
    }

    fn next_u64(&mut self) -> u64 {
        let s = &mut self.0;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Module;
    use burn::nn::DropoutConfig;

    fn device() -> Device {
        Device::default().autodiff()
    }

    #[cfg(feature = "flex")]
    #[test]
    fn flex_takes_the_host_path() {
        assert!(crate::host::host_resident(&Device::flex().autodiff()));
        assert!(crate::host::host_resident(&Device::flex()));
    }

    #[test]
    fn xoshiro_matches_reference_vector() {
        // Reference: the C implementation with state {1, 2, 3, 4}.
        let mut rng = Xoshiro256pp([1, 2, 3, 4]);
        let got: Vec<u64> = (0..3).map(|_| rng.next_u64()).collect();
        assert_eq!(got, vec![41943041, 58720359, 3588806011781223]);
    }

    #[test]
    fn training_mask_zeroes_about_p_and_scales_the_rest() {
        let device = device();
        device.seed(7);
        let module = DropoutConfig::new(0.25).init();
        let x = Tensor::<2>::ones([200, 500], &device) * 3.0;
        let y: Vec<f32> = dropout_on(&module, x, true)
            .into_data()
            .try_to_vec()
            .unwrap_or_default();
        assert_eq!(y.len(), 100_000);
        let kept = y.iter().filter(|v| **v != 0.0).count() as f64 / y.len() as f64;
        assert!((kept - 0.75).abs() < 0.01, "kept fraction {kept}");
        for v in y.iter().filter(|v| **v != 0.0) {
            assert!((v - 4.0).abs() < 1e-6, "kept value {v} != 3 / 0.75");
        }
    }

    #[test]
    fn same_seed_same_mask_new_call_new_mask() {
        let device = device();
        let module = DropoutConfig::new(0.5).init();
        let x = Tensor::<1>::ones([4096], &device);
        device.seed(11);
        let a = dropout_on(&module, x.clone(), true).into_data();
        let b = dropout_on(&module, x.clone(), true).into_data();
        device.seed(11);
        let a2 = dropout_on(&module, x, true).into_data();
        a.assert_eq(&a2, true);
        assert_ne!(a, b, "two calls drew the same mask");
    }

    #[test]
    fn identity_in_eval_mode_without_autodiff_and_at_p0() {
        let device = device();
        let x = Tensor::<2>::random([8, 16], Distribution::Default, &device);
        let eval = DropoutConfig::new(0.5).init().valid();
        let p0 = DropoutConfig::new(0.0).init();
        let plain = x.clone().inner();
        for host in [true, false] {
            dropout_on(&eval, x.clone(), host)
                .into_data()
                .assert_eq(&x.clone().into_data(), true);
            dropout_on(&p0, x.clone(), host)
                .into_data()
                .assert_eq(&x.clone().into_data(), true);
            dropout_on(&DropoutConfig::new(0.5).init(), plain.clone(), host)
                .into_data()
                .assert_eq(&plain.clone().into_data(), true);
        }
    }

    #[test]
    fn gradient_flows_through_kept_elements_only() {
        let device = device();
        device.seed(3);
        let module = DropoutConfig::new(0.5).init();
        let x = Tensor::<1>::ones([1000], &device).require_grad();
        let y = dropout_on(&module, x.clone(), true);
        let y_vals: Vec<f32> = y.clone().into_data().try_to_vec().unwrap_or_default();
        let grads = y.sum().backward();
        let g: Vec<f32> = x
            .grad(&grads)
            .map(|g| g.into_data().try_to_vec().unwrap_or_default())
            .unwrap_or_default();
        assert_eq!(g.len(), 1000);
        for (gv, yv) in g.iter().zip(&y_vals) {
            // y = x * m with x = 1, so dy/dx = m = y.
            assert!((gv - yv).abs() < 1e-6);
        }
    }
}
