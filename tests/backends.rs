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
//! devices it ran on.

use std::path::PathBuf;

use burn::module::{Module, Param};
use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLearningRate;
use burn::tensor::{Device, Int, Tensor, TensorData};
use burn::train::TrainStep;
use burn_peft::device::{compiled_backends, device_by_name};
use peft_core::{AdapterConfig, attach_adapters, freeze_except};
use peft_models::adapterhub::load_adapterhub_weights;
use peft_models::bert::{BertConfig, BertInput, BertModel};
use peft_models::golden::Golden;
use peft_models::head::{BertClassifier, ClassificationHeadConfig, HeadPooling};
use peft_train::data::ClassificationBatch;
use peft_train::optim::{OptimConfig, Schedule};
use peft_train::task::{ClassificationTask, StepGuard};

/// Largest absolute difference allowed between a backend and PyTorch, and between two backends,
/// on the encoder outputs.
const FORWARD_TOL: f64 = 1e-4;

/// Largest absolute difference allowed between two backends' training losses, and between a
/// backend's losses and [`FLEX_LOSSES`].
const LOSS_TOL: f64 = 1e-3;

/// AdamW learning rate of the training test.
const LR: f64 = 1e-2;

/// The loss before each of the three AdamW steps and after the last one, as computed on flex
/// by [`train_losses`]. Other backends must reproduce it within [`LOSS_TOL`]. If a deliberate
/// change to the model, optimiser or this setup moves it, rerun
/// `cargo test --test backends -- --nocapture` and copy the printed flex trajectory here.
const FLEX_LOSSES: [f64; 4] = [0.781550, 0.618378, 0.517001, 0.415205];

/// `fixtures/tiny-bert` of this checkout, or `$BURN_PEFT_FIXTURES` (for a prebuilt test binary
/// run on another machine, where the compile-time path does not exist: `scripts/gpu-check.sh`).
fn fixtures() -> PathBuf {
    match std::env::var_os("BURN_PEFT_FIXTURES") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/tiny-bert"),
    }
}

fn golden(file: &str) -> Golden {
    Golden::from_file(fixtures().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

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

/// The fixture BERT with dropout off, `double_seq_bn` adapters attached and their non-zero
/// AdapterHub weights loaded, on `device`.
fn bert_with_adapters(device: &Device) -> BertModel {
    let mut config =
        BertConfig::from_hf_file(fixtures().join("config.json")).unwrap_or_else(|e| panic!("{e}"));
    // Dropout draws from each backend's own RNG: switch it off so training is comparable.
    config.hidden_dropout_prob = 0.0;
    config.attention_probs_dropout_prob = 0.0;
    let mut model = config.init(device).unwrap_or_else(|e| panic!("{e}"));
    let report = model
        .load_checkpoint(fixtures().join("model.safetensors"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(report.not_in_checkpoint.is_empty(), "{report}");
    attach_adapters(&mut model, &AdapterConfig::houlsby(4.0), device)
        .unwrap_or_else(|e| panic!("{e}"));
    let loaded = load_adapterhub_weights(
        &mut model,
        fixtures().join("adapters/double_seq_bn.safetensors"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(loaded.unused.is_empty(), "{loaded}");
    model
}

fn golden_input(device: &Device) -> BertInput {
    let g = golden("golden.json");
    let int = |name: &str| {
        g.int::<2>(name, device)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    BertInput::new(int("input_ids"))
        .with_token_type_ids(int("token_type_ids"))
        .with_attention_mask(int("attention_mask"))
}

/// Flat f32 values of a tensor.
fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .try_to_vec::<f32>()
        .unwrap_or_else(|e| panic!("{e:?}"))
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "different sizes");
    a.iter()
        .zip(b)
        .map(|(x, y)| (f64::from(*x) - f64::from(*y)).abs())
        .fold(0.0, f64::max)
}

/// Encoder outputs (last hidden state, pooler output) as flat values.
struct Outputs {
    hidden: Vec<f32>,
    pooled: Vec<f32>,
}

fn forward(device: &Device) -> Outputs {
    let model = bert_with_adapters(device).valid();
    let out = model.forward(golden_input(device));
    Outputs {
        hidden: values(out.last_hidden_state),
        pooled: values(
            out.pooler_output
                .unwrap_or_else(|| panic!("the fixture model has a pooler")),
        ),
    }
}

/// Forward pass of BERT + non-zero Houlsby adapters on every compiled-in backend: each matches
/// the PyTorch/AdapterHub golden outputs within 1e-4, and each matches the first backend within
/// 1e-4 (with one backend compiled in, only the golden comparison applies).
#[test]
fn bert_with_adapters_matches_pytorch_and_other_backends() {
    let g = golden("adapters/double_seq_bn.json");
    let expected_hidden = g
        .raw("last_hidden_state")
        .unwrap_or_else(|e| panic!("{e}"))
        .1;
    let expected_pooled = g.raw("pooler_output").unwrap_or_else(|e| panic!("{e}")).1;
    let to_f32 = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<_>>();
    let (expected_hidden, expected_pooled) = (to_f32(expected_hidden), to_f32(expected_pooled));

    let mut first: Option<(&str, Outputs)> = None;
    for (name, device) in backends() {
        let out = forward(&device);
        let d_hidden = max_abs_diff(&out.hidden, &expected_hidden);
        let d_pooled = max_abs_diff(&out.pooled, &expected_pooled);
        println!("{name} vs PyTorch: last_hidden_state {d_hidden:.2e}, pooler {d_pooled:.2e}");
        assert!(
            d_hidden <= FORWARD_TOL && d_pooled <= FORWARD_TOL,
            "{name} vs PyTorch: max abs diff {d_hidden} (hidden), {d_pooled} (pooler) > {FORWARD_TOL}"
        );
        match &first {
            None => first = Some((name, out)),
            Some((first_name, reference)) => {
                let d_hidden = max_abs_diff(&out.hidden, &reference.hidden);
                let d_pooled = max_abs_diff(&out.pooled, &reference.pooled);
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

/// Pseudo-random values, uniform in [-0.2, 0.2] (about PyTorch's Linear init for width 32),
/// computed on the host: the same on every backend, unlike each backend's own RNG.
fn fixed_values(shape: Vec<usize>, seed: u64) -> TensorData {
    let n: usize = shape.iter().product();
    let data: Vec<f32> = (0..n as u64)
        .map(|i| {
            // SplitMix64 of (seed, i).
            let mut z = seed
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add(i.wrapping_mul(0xBF58_476D_1CE4_E5B9));
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            let unit = (z >> 11) as f64 / (1u64 << 53) as f64;
            (0.4 * unit - 0.2) as f32
        })
        .collect();
    TensorData::new(data, shape)
}

fn fixed_param<const D: usize>(
    param: &Param<Tensor<D>>,
    seed: u64,
    device: &Device,
) -> Param<Tensor<D>> {
    let shape = param.val().dims().to_vec();
    Param::from_tensor(Tensor::from_data(fixed_values(shape, seed), device))
}

/// [`bert_with_adapters`] with a two-class head (`dense_tanh`, dropout off) whose weights are
/// the same fixed values on every backend.
fn classifier(device: &Device) -> BertClassifier {
    let bert = bert_with_adapters(device);
    let head = ClassificationHeadConfig::new(bert.hidden_size, 2)
        .with_pooling(HeadPooling::DenseTanh)
        .with_dropout(0.0);
    let mut model = BertClassifier::new(bert, &head, device).unwrap_or_else(|e| panic!("{e}"));
    let head = model.head_mut().unwrap_or_else(|e| panic!("{e}"));
    let dense = head
        .dense
        .as_mut()
        .unwrap_or_else(|| panic!("dense_tanh head has a dense layer"));
    dense.weight = fixed_param(&dense.weight, 1, device);
    if let Some(b) = dense.bias.as_mut() {
        *b = fixed_param(b, 2, device);
    }
    let classifier = &mut head.classifier;
    classifier.weight = fixed_param(&classifier.weight, 3, device);
    if let Some(b) = classifier.bias.as_mut() {
        *b = fixed_param(b, 4, device);
    }
    model
}

/// Four padded sequences over the tiny vocabulary (ids < 99), two per class. The first token
/// says the class (no `[CLS]`): the head reads position 0, and the frozen random base keeps
/// that token's identity there, so three steps can make progress.
fn batch(device: &Device) -> ClassificationBatch {
    let rows: [&[i64]; 4] = [
        &[5, 17, 45, 8],
        &[91, 61, 33, 72, 12, 40],
        &[7, 23],
        &[94, 28, 66],
    ];
    let labels = [0i64, 1, 0, 1];
    let len = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let mut ids = Vec::new();
    let mut mask = Vec::new();
    for row in rows {
        for j in 0..len {
            ids.push(row.get(j).copied().unwrap_or(0));
            mask.push(i64::from(j < row.len()));
        }
    }
    let int2 =
        |v: Vec<i64>| Tensor::<2, Int>::from_data(TensorData::new(v, [rows.len(), len]), device);
    ClassificationBatch {
        input_ids: int2(ids),
        token_type_ids: Tensor::zeros([rows.len(), len], device),
        attention_mask: int2(mask),
        labels: Tensor::from_data(TensorData::new(labels.to_vec(), [labels.len()]), device),
    }
}

/// Adapter-only training on `device`: attach (done by [`classifier`]), freeze all but adapters
/// and head, three AdamW steps (lr [`LR`], constant, global clipping at 1.0) through
/// [`ClassificationTask`]'s `TrainStep`. Returns the loss before each step and after the last.
fn train_losses(device: &Device) -> Vec<f64> {
    let device = device.clone().autodiff();
    let model = freeze_except(classifier(&device), &BertClassifier::adapter_trainable())
        .unwrap_or_else(|e| panic!("{e}"));
    let optim_config = OptimConfig::new()
        .with_lr(LR)
        .with_schedule(Schedule::Constant);
    let mut optim = optim_config.optimizer();
    let mut task =
        ClassificationTask::new(model, StepGuard::new(optim_config.max_grad_norm, 1, None));
    let batch = batch(&device);
    let mut losses = Vec::new();
    for _ in 0..3 {
        let out = TrainStep::step(&task, batch.clone());
        losses.push(out.item.loss.clone().into_scalar::<f64>());
        task = TrainStep::optimize(task, &mut optim, ModuleLearningRate::from(LR), out.grads);
    }
    let last = task.forward_classification(batch);
    losses.push(last.loss.into_scalar::<f64>());
    assert_eq!(task.guard.report().steps, 3, "every step was applied");
    losses
}

/// Three AdamW steps of adapter training on every compiled-in backend: the loss is finite and
/// falls at each step, and the trajectory matches the one recorded on flex ([`FLEX_LOSSES`])
/// and every other compiled-in backend's within 1e-3.
#[test]
fn adapter_training_steps_lower_the_loss_alike_on_every_backend() {
    let mut first: Option<(&str, Vec<f64>)> = None;
    for (name, device) in backends() {
        let losses = train_losses(&device);
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

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}
