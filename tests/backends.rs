//! Cross-backend checks: the same model, weights and inputs give the same numbers on every
//! backend compiled into this build.
//!
//! The model is the tiny fixture BERT (`fixtures/tiny-bert`) with AdapterHub `double_seq_bn`
//! (Houlsby) adapters holding non-zero weights. Which backends run is decided by the cargo
//! features of this build, through [`burn_peft::device::compiled_backends`]:
//!
//! - `cargo test --test backends` runs flex (the default feature);
//! - `cargo test --features wgpu,ndarray --test backends` runs flex, ndarray and wgpu in one
//!   binary (wgpu runs on Mesa lavapipe on a machine without a GPU, see `.ci/backends.sh`);
//! - `cargo test --no-default-features --features wgpu --test backends` runs wgpu alone.
//!
//! No test passes vacuously with a single backend: every backend is compared with references
//! computed elsewhere (the PyTorch/AdapterHub golden outputs, and a loss trajectory recorded on
//! flex), and with the other compiled-in backends when there are any. Each test prints the
//! devices it ran on. The model, inputs and references live in `examples/common/parity.rs`,
//! shared with `examples/gpu_workload.rs --parity` (what `scripts/gpu-check.sh` runs on a GPU).

#[path = "../examples/common/parity.rs"]
mod parity;

use burn::tensor::Device;
use burn_peft::device::{compiled_backends, device_by_name};
use parity::{FLEX_LOSSES, FORWARD_TOL, LOSS_TOL, max_diff};

/// The backends of this build with their devices. Panics if there is none.
fn backends() -> Vec<(&'static str, Device)> {
    let names = compiled_backends();
    assert!(!names.is_empty(), "no backend feature compiled in");
    names
        .into_iter()
        .map(|name| {
            let device = device_by_name(name).unwrap_or_else(|e| panic!("{name}: {e}"));
            println!("backend `{name}`: device {device:?}");
            (name, device)
        })
        .collect()
}

/// Forward pass of BERT + non-zero Houlsby adapters on every compiled-in backend: each matches
/// the PyTorch/AdapterHub golden outputs within 1e-4, and each matches the first backend within
/// 1e-4 (with one backend compiled in, only the golden comparison applies).
#[test]
fn bert_with_adapters_matches_pytorch_and_other_backends() {
    let expected = parity::pytorch_outputs().unwrap_or_else(|e| panic!("{e}"));
    let mut first: Option<(&str, parity::Outputs)> = None;
    for (name, device) in backends() {
        let out = parity::forward(&device).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (d_hidden, d_pooled) = out.diff(&expected);
        println!("{name} vs PyTorch: last_hidden_state {d_hidden:.2e}, pooler {d_pooled:.2e}");
        assert!(
            d_hidden <= FORWARD_TOL && d_pooled <= FORWARD_TOL,
            "{name} vs PyTorch: max abs diff {d_hidden} (hidden), {d_pooled} (pooler) > {FORWARD_TOL}"
        );
        match &first {
            None => first = Some((name, out)),
            Some((first_name, reference)) => {
                let (d_hidden, d_pooled) = out.diff(reference);
                println!(
                    "{name} vs {first_name}: last_hidden_state {d_hidden:.2e}, pooler {d_pooled:.2e}"
                );
                assert!(
                    d_hidden <= FORWARD_TOL && d_pooled <= FORWARD_TOL,
                    "{name} vs {first_name}: max abs diff {d_hidden} (hidden), {d_pooled} (pooler)"
                );
            }
        }
    }
}

/// Three AdamW steps of adapter training on every compiled-in backend: the loss is finite and
/// falls at each step, and the trajectory matches the one recorded on flex ([`FLEX_LOSSES`])
/// and every other compiled-in backend's within 1e-3.
#[test]
fn adapter_training_steps_lower_the_loss_alike_on_every_backend() {
    let mut first: Option<(&str, Vec<f64>)> = None;
    for (name, device) in backends() {
        let losses = parity::train_losses(&device).unwrap_or_else(|e| panic!("{name}: {e}"));
        println!("{name} losses: {losses:?}");
        assert!(losses.iter().all(|l| l.is_finite()), "{name}: {losses:?}");
        assert!(
            losses.windows(2).all(|w| w[1] < w[0]),
            "{name}: the loss should fall at every step: {losses:?}"
        );
        let d_flex = max_diff(&losses, &FLEX_LOSSES);
        println!("{name} vs recorded flex losses: {d_flex:.2e}");
        assert!(
            d_flex <= LOSS_TOL,
            "{name}: {losses:?} vs recorded flex {FLEX_LOSSES:?}"
        );
        match &first {
            None => first = Some((name, losses)),
            Some((first_name, reference)) => {
                let d = max_diff(&losses, reference);
                println!("{name} vs {first_name} losses: {d:.2e}");
                assert!(
                    d <= LOSS_TOL,
                    "{name} {losses:?} vs {first_name} {reference:?}"
                );
            }
        }
    }
}
