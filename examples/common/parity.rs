//! Cross-backend parity checks, shared by `tests/backends.rs` (which asserts on them) and
//! `examples/gpu_workload.rs --parity` (the one binary `scripts/gpu-check.sh` carries to a GPU
//! machine, where a second CUDA-sized test binary would not fit the 64 MiB carry limit).
//!
//! The model is the tiny fixture BERT (`fixtures/tiny-bert`) with AdapterHub `double_seq_bn`
//! (Houlsby) adapters holding non-zero weights. Every backend is compared with references
//! computed elsewhere: the PyTorch/AdapterHub golden outputs, and a loss trajectory recorded on
//! flex ([`FLEX_LOSSES`]).
#![allow(dead_code)]

use std::error::Error;
use std::path::PathBuf;

use burn::module::{Module, Param};
use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLearningRate;
use burn::tensor::{Device, Int, Tensor, TensorData};
use burn::train::TrainStep;
use peft_core::{AdapterConfig, attach_adapters, freeze_except};
use peft_models::adapterhub::load_adapterhub_weights;
use peft_models::bert::{BertConfig, BertInput, BertModel};
use peft_models::golden::Golden;
use peft_models::head::{BertClassifier, ClassificationHeadConfig, HeadPooling};
use peft_train::data::ClassificationBatch;
use peft_train::optim::{OptimConfig, Schedule};
use peft_train::task::{ClassificationTask, StepGuard};

pub type Res<T> = Result<T, Box<dyn Error>>;

/// Largest absolute difference allowed between a backend and PyTorch, and between two backends,
/// on the encoder outputs.
pub const FORWARD_TOL: f64 = 1e-4;

/// Largest absolute difference allowed between two backends' training losses, and between a
/// backend's losses and [`FLEX_LOSSES`].
pub const LOSS_TOL: f64 = 1e-3;

/// AdamW learning rate of the training check.
pub const LR: f64 = 1e-2;

/// The loss before each of the three AdamW steps and after the last one, as computed on flex
/// by [`train_losses`]. Other backends must reproduce it within [`LOSS_TOL`]. If a deliberate
/// change to the model, optimiser or this setup moves it, rerun
/// `cargo test --test backends -- --nocapture` and copy the printed flex trajectory here.
pub const FLEX_LOSSES: [f64; 4] = [0.781550, 0.618378, 0.517001, 0.415205];

/// `fixtures/tiny-bert` of this checkout, or `$BURN_PEFT_FIXTURES` (for a prebuilt binary run on
/// another machine, where the compile-time path does not exist: `scripts/gpu-check.sh`).
pub fn fixtures() -> PathBuf {
    match std::env::var_os("BURN_PEFT_FIXTURES") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/tiny-bert"),
    }
}

fn golden(file: &str) -> Res<Golden> {
    Golden::from_file(fixtures().join(file)).map_err(|e| format!("{file}: {e}").into())
}

/// The fixture BERT with dropout off, `double_seq_bn` adapters attached and their non-zero
/// AdapterHub weights loaded, on `device`.
fn bert_with_adapters(device: &Device) -> Res<BertModel> {
    let mut config = BertConfig::from_hf_file(fixtures().join("config.json"))?;
    // Dropout draws from each backend's own RNG: switch it off so training is comparable.
    config.hidden_dropout_prob = 0.0;
    config.attention_probs_dropout_prob = 0.0;
    let mut model = config.init(device)?;
    let report = model.load_checkpoint(fixtures().join("model.safetensors"))?;
    if !report.not_in_checkpoint.is_empty() {
        return Err(format!("fixture checkpoint incomplete: {report}").into());
    }
    attach_adapters(&mut model, &AdapterConfig::houlsby(4.0), device)?;
    let loaded = load_adapterhub_weights(
        &mut model,
        fixtures().join("adapters/double_seq_bn.safetensors"),
    )?;
    if !loaded.unused.is_empty() {
        return Err(format!("adapter weights left unused: {loaded}").into());
    }
    Ok(model)
}

fn golden_input(device: &Device) -> Res<BertInput> {
    let g = golden("golden.json")?;
    Ok(BertInput::new(g.int::<2>("input_ids", device)?)
        .with_token_type_ids(g.int::<2>("token_type_ids", device)?)
        .with_attention_mask(g.int::<2>("attention_mask", device)?))
}

/// Flat f32 values of a tensor.
fn values<const D: usize>(t: Tensor<D>) -> Res<Vec<f32>> {
    t.into_data()
        .try_to_vec::<f32>()
        .map_err(|e| format!("{e:?}").into())
}

/// Largest absolute difference of two equally long slices (infinite if the lengths differ).
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f64 {
    if a.len() != b.len() {
        return f64::INFINITY;
    }
    a.iter()
        .zip(b)
        .map(|(x, y)| (f64::from(*x) - f64::from(*y)).abs())
        .fold(0.0, f64::max)
}

/// Largest absolute difference of two equally long loss lists (infinite if the lengths differ).
pub fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    if a.len() != b.len() {
        return f64::INFINITY;
    }
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// Encoder outputs (last hidden state, pooler output) as flat values.
pub struct Outputs {
    pub hidden: Vec<f32>,
    pub pooled: Vec<f32>,
}

impl Outputs {
    /// Largest absolute differences (hidden, pooled) from `other`.
    pub fn diff(&self, other: &Outputs) -> (f64, f64) {
        (
            max_abs_diff(&self.hidden, &other.hidden),
            max_abs_diff(&self.pooled, &other.pooled),
        )
    }
}

/// The PyTorch/AdapterHub outputs of the fixture model on the golden input.
pub fn pytorch_outputs() -> Res<Outputs> {
    let g = golden("adapters/double_seq_bn.json")?;
    let to_f32 = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<_>>();
    Ok(Outputs {
        hidden: to_f32(g.raw("last_hidden_state")?.1),
        pooled: to_f32(g.raw("pooler_output")?.1),
    })
}

/// Forward pass of BERT + non-zero Houlsby adapters on `device`.
pub fn forward(device: &Device) -> Res<Outputs> {
    let model = bert_with_adapters(device)?.valid();
    let out = model.forward(golden_input(device)?);
    Ok(Outputs {
        hidden: values(out.last_hidden_state)?,
        pooled: values(out.pooler_output.ok_or("the fixture model has a pooler")?)?,
    })
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
fn classifier(device: &Device) -> Res<BertClassifier> {
    let bert = bert_with_adapters(device)?;
    let head = ClassificationHeadConfig::new(bert.hidden_size, 2)
        .with_pooling(HeadPooling::DenseTanh)
        .with_dropout(0.0);
    let mut model = BertClassifier::new(bert, &head, device)?;
    let head = model.head_mut()?;
    let dense = head
        .dense
        .as_mut()
        .ok_or("dense_tanh head has a dense layer")?;
    dense.weight = fixed_param(&dense.weight, 1, device);
    if let Some(b) = dense.bias.as_mut() {
        *b = fixed_param(b, 2, device);
    }
    let classifier = &mut head.classifier;
    classifier.weight = fixed_param(&classifier.weight, 3, device);
    if let Some(b) = classifier.bias.as_mut() {
        *b = fixed_param(b, 4, device);
    }
    Ok(model)
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
pub fn train_losses(device: &Device) -> Res<Vec<f64>> {
    let device = device.clone().autodiff();
    let model = freeze_except(classifier(&device)?, &BertClassifier::adapter_trainable())?;
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
    let steps = task.guard.report().steps;
    if steps != 3 {
        return Err(format!("{steps} of 3 optimizer steps were applied").into());
    }
    Ok(losses)
}

/// One backend's parity numbers against PyTorch, the recorded flex losses and (when given) a
/// reference backend, with pass/fail against [`FORWARD_TOL`] and [`LOSS_TOL`].
pub struct Report {
    pub lines: Vec<String>,
    pub failures: Vec<String>,
}

impl Report {
    /// Records `what` with difference `d`, and a failure when `d` is not within `tol`.
    fn check(&mut self, what: String, d: f64, tol: f64) {
        self.lines.push(format!("{what} {d:.2e}"));
        // NaN (a broken backend) fails too.
        if d.is_nan() || d > tol {
            self.failures.push(format!("{what} {d:.3e} > {tol:e}"));
        }
    }
}

/// Runs both checks on `device` (named `name`), comparing with PyTorch, [`FLEX_LOSSES`] and,
/// when `reference` is given, with that backend's forward outputs and losses.
pub fn check_device(
    name: &str,
    device: &Device,
    reference: Option<(&str, &Outputs, &[f64])>,
) -> Res<(Report, Outputs, Vec<f64>)> {
    let mut report = Report {
        lines: Vec::new(),
        failures: Vec::new(),
    };
    let out = forward(device)?;
    let (dh, dp) = out.diff(&pytorch_outputs()?);
    report.check(
        format!("{name} vs PyTorch: last_hidden_state"),
        dh,
        FORWARD_TOL,
    );
    report.check(format!("{name} vs PyTorch: pooler"), dp, FORWARD_TOL);
    let losses = train_losses(device)?;
    report.check(
        format!("{name} vs recorded flex losses"),
        max_diff(&losses, &FLEX_LOSSES),
        LOSS_TOL,
    );
    if losses.iter().any(|l| !l.is_finite()) || !losses.windows(2).all(|w| w[1] < w[0]) {
        report.failures.push(format!(
            "{name}: the loss should fall at every step: {losses:?}"
        ));
    }
    if let Some((ref_name, ref_out, ref_losses)) = reference {
        let (dh, dp) = out.diff(ref_out);
        report.check(
            format!("{name} vs {ref_name}: last_hidden_state"),
            dh,
            FORWARD_TOL,
        );
        report.check(format!("{name} vs {ref_name}: pooler"), dp, FORWARD_TOL);
        report.check(
            format!("{name} vs {ref_name} losses"),
            max_diff(&losses, ref_losses),
            LOSS_TOL,
        );
    }
    Ok((report, out, losses))
}
