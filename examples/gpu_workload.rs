//! A fixed SST-2-shaped adapter workload for measuring a backend: adapter training steps and
//! inference on random-weight BERT encoders of MiniLM-L6 and BERT-base shape.
//!
//! Weights do not change the speed, so the models are random (no downloads; small enough to
//! carry the binary to a machine without network). The token ids are synthetic and shaped like
//! SST-2 batches: lengths drawn around a mean of 39 with a maximum of 64, each batch padded to its
//! longest item. Training: Pfeiffer adapters (reduction factor 16) and a classification head,
//! the base frozen, AdamW through peft-train's `ClassificationTask`, batch 32. Inference: batch 64
//! without autodiff.
//!
//! ```text
//! cargo run --release --features vulkan --example gpu_workload -- --device vulkan
//! cargo run --release --example gpu_workload -- --models minilm --train-steps 5 --infer-batches 2
//! ```
//!
//! Options: `--device NAME` (default: `BURN_DEVICE`, else the highest-priority compiled-in
//! backend), `--models minilm,bert-base`, `--train-steps N` (timed, default 40),
//! `--infer-batches N` (timed, default 14 = SST-2's 872 dev sentences), `--warmup N` (untimed
//! steps first, default 3: kernel compilation and autotuning happen there), `--parity` (instead
//! of the workload: the cross-backend checks of `tests/backends.rs` on the device — the tiny
//! fixture BERT with non-zero adapters vs PyTorch within 1e-4, three training steps vs the
//! losses recorded on flex, and both vs flex itself when flex is compiled in; exit 1 on a
//! failure. `scripts/gpu-check.sh` carries this one binary to a GPU machine, since a CUDA test
//! binary beside it would not fit the 64 MiB carry limit).
//!
//! It prints one line per measurement and a table: examples/s and the largest memory the
//! device's allocator reported holding (sampled after every step; `n/a` where the backend does
//! not report it).

#[path = "common/parity.rs"]
mod parity;

use std::error::Error;
use std::process::ExitCode;
use std::time::Instant;

use burn::module::Module;
use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLearningRate;
use burn::tensor::{Device, Int, Tensor, TensorData};
use burn::train::TrainStep;
use burn_peft::device::select_device;
use peft_core::{AdapterConfig, attach_adapters, freeze_except};
use peft_models::bert::{BertConfig, BertInput};
use peft_models::head::BertClassifier;
use peft_train::data::ClassificationBatch;
use peft_train::optim::{OptimConfig, Schedule};
use peft_train::task::{ClassificationTask, StepGuard};

type Res<T> = Result<T, Box<dyn Error>>;

const TRAIN_BATCH: usize = 32;
const INFER_BATCH: usize = 64;
const MAX_LEN: usize = 64;

/// A fixed SST-2-shaped adapter workload for measuring a backend (see the doc comment of
/// examples/gpu_workload.rs).
#[derive(clap::Parser, Debug)]
#[command(name = "gpu_workload")]
struct Args {
    /// flex, ndarray, wgpu, vulkan, metal, cuda [default: BURN_DEVICE, else the compiled-in backend]
    #[arg(long, value_parser = burn_peft::cli::device_name)]
    device: Option<String>,
    /// Models, comma-separated: minilm, bert-base
    #[arg(long, value_delimiter = ',', default_value = "minilm,bert-base",
          value_parser = ["minilm", "bert-base"])]
    models: Vec<String>,
    /// Timed training steps
    #[arg(long, value_name = "N", default_value_t = 40, value_parser = burn_peft::cli::positive_usize)]
    train_steps: usize,
    /// Timed inference batches (14 = SST-2's 872 dev sentences)
    #[arg(long, value_name = "N", default_value_t = 14, value_parser = burn_peft::cli::positive_usize)]
    infer_batches: usize,
    /// Untimed steps first (kernel compilation and autotuning happen there)
    #[arg(long, value_name = "N", default_value_t = 3)]
    warmup: usize,
    /// Run the cross-backend parity checks on the device instead of the workload (fixtures from
    /// `$BURN_PEFT_FIXTURES`, else this checkout's fixtures/tiny-bert)
    #[arg(long)]
    parity: bool,
}

fn parse_args() -> Res<Args> {
    Ok(burn_peft::cli::parse_or_exit())
}

fn model_config(name: &str) -> Res<BertConfig> {
    Ok(match name {
        // sentence-transformers/all-MiniLM-L6-v2
        "minilm" => BertConfig::new()
            .with_hidden_size(384)
            .with_num_hidden_layers(6)
            .with_num_attention_heads(12)
            .with_intermediate_size(1536),
        // bert-base-uncased (BertConfig's defaults)
        "bert-base" => BertConfig::new(),
        other => return Err(format!("unknown model `{other}` (minilm, bert-base)").into()),
    })
}

/// SplitMix64: deterministic synthetic data without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Host-side batch: ids, mask and labels, padded to the longest item.
struct HostBatch {
    ids: Vec<i64>,
    mask: Vec<i64>,
    labels: Vec<i64>,
    rows: usize,
    len: usize,
}

/// SST-2-shaped lengths: the mean of four uniform draws in [4, 74], clipped to [4, 64]: mean
/// about 39, most batches of 32 padded to 55-64.
fn make_batch(rng: &mut Rng, rows: usize, vocab: usize) -> HostBatch {
    let lengths: Vec<usize> = (0..rows)
        .map(|_| {
            let sum: u64 = (0..4).map(|_| 4 + rng.below(71)).sum();
            ((sum / 4) as usize).clamp(4, MAX_LEN)
        })
        .collect();
    let len = lengths.iter().copied().max().unwrap_or(1);
    let mut ids = Vec::with_capacity(rows * len);
    let mut mask = Vec::with_capacity(rows * len);
    for &l in &lengths {
        for j in 0..len {
            let real = j < l;
            // [CLS] 101 first, then word ids, then [SEP] 102; padding 0.
            let id = match j {
                0 => 101,
                _ if j + 1 == l => 102,
                _ if real => 1000 + rng.below(vocab as u64 - 1000) as i64,
                _ => 0,
            };
            ids.push(id);
            mask.push(i64::from(real));
        }
    }
    let labels = (0..rows).map(|_| rng.below(2) as i64).collect();
    HostBatch {
        ids,
        mask,
        labels,
        rows,
        len,
    }
}

fn to_device(b: &HostBatch, device: &Device) -> ClassificationBatch {
    let int2 = |v: &[i64]| {
        Tensor::<2, Int>::from_data(TensorData::new(v.to_vec(), [b.rows, b.len]), device)
    };
    ClassificationBatch {
        input_ids: int2(&b.ids),
        token_type_ids: Tensor::zeros([b.rows, b.len], device),
        attention_mask: int2(&b.mask),
        labels: Tensor::from_data(TensorData::new(b.labels.clone(), [b.rows]), device),
    }
}

/// Largest allocator reservation seen (bytes), if the backend reports one.
#[derive(Default)]
struct Peak(Option<u64>);

impl Peak {
    fn sample(&mut self, device: &Device) {
        if let Some(u) = device.memory_pool_usage() {
            self.0 = Some(self.0.unwrap_or(0).max(u.bytes_reserved));
        }
    }

    fn mib(&self) -> String {
        self.0
            .map(|b| format!("{:.0}", b as f64 / (1024.0 * 1024.0)))
            .unwrap_or_else(|| "n/a".into())
    }
}

struct Row {
    model: String,
    phase: &'static str,
    batch: usize,
    steps: usize,
    mean_len: f64,
    examples_per_s: f64,
    peak: String,
}

fn run_model(name: &str, device: &Device, args: &Args, rows: &mut Vec<Row>) -> Res<()> {
    let config = model_config(name)?;
    let mut rng = Rng(0x5EED ^ config.hidden_size as u64);

    // Training: adapters + head trainable, base frozen.
    let ad = device.clone().autodiff();
    let mut model = BertClassifier::random(&config, 2, &ad)?;
    attach_adapters(&mut model, &AdapterConfig::pfeiffer(16.0), &ad)?;
    let model = freeze_except(model, &BertClassifier::adapter_trainable())?;
    let optim_config = OptimConfig::new()
        .with_lr(1e-4)
        .with_schedule(Schedule::Constant);
    let mut optim = optim_config.optimizer();
    let mut task =
        ClassificationTask::new(model, StepGuard::new(optim_config.max_grad_norm, 1, None));
    let batches: Vec<HostBatch> = (0..args.warmup + args.train_steps)
        .map(|_| make_batch(&mut rng, TRAIN_BATCH, config.vocab_size))
        .collect();
    let mut peak = Peak::default();
    let mut start = Instant::now();
    let mut tokens = 0usize;
    for (i, b) in batches.iter().enumerate() {
        if i == args.warmup {
            device.sync()?;
            start = Instant::now();
        }
        if i >= args.warmup {
            tokens += b.len;
        }
        let out = TrainStep::step(&task, to_device(b, &ad));
        // Reading the loss waits for the step, as a training loop logging it does.
        let loss = out.item.loss.clone().into_scalar::<f64>();
        task = TrainStep::optimize(task, &mut optim, ModuleLearningRate::from(1e-4), out.grads);
        if !loss.is_finite() {
            return Err(format!("{name}: non-finite loss {loss} at step {i}").into());
        }
        peak.sample(device);
    }
    device.sync()?;
    let secs = start.elapsed().as_secs_f64();
    let n = args.train_steps * TRAIN_BATCH;
    let row = Row {
        model: name.into(),
        phase: "train",
        batch: TRAIN_BATCH,
        steps: args.train_steps,
        mean_len: tokens as f64 / args.train_steps.max(1) as f64,
        examples_per_s: n as f64 / secs,
        peak: peak.mib(),
    };
    println!(
        "{name} train: {} steps x {TRAIN_BATCH} in {secs:.2} s = {:.1} examples/s, peak {} MiB",
        args.train_steps, row.examples_per_s, row.peak
    );
    rows.push(row);

    // Inference: the trained model without autodiff, eval mode.
    let model = task.model.valid();
    drop(optim);
    device.memory_cleanup();
    let batches: Vec<HostBatch> = (0..args.warmup + args.infer_batches)
        .map(|_| make_batch(&mut rng, INFER_BATCH, config.vocab_size))
        .collect();
    let mut peak = Peak::default();
    let mut tokens = 0usize;
    let mut correct_shape = true;
    for (i, b) in batches.iter().enumerate() {
        if i == args.warmup {
            device.sync()?;
            start = Instant::now();
        }
        if i >= args.warmup {
            tokens += b.len;
        }
        let batch = to_device(b, device);
        let input = BertInput::new(batch.input_ids)
            .with_token_type_ids(batch.token_type_ids)
            .with_attention_mask(batch.attention_mask);
        let predictions = model.forward(input).argmax(1).into_data();
        correct_shape &= predictions.num_elements() == b.rows;
        peak.sample(device);
    }
    device.sync()?;
    let secs = start.elapsed().as_secs_f64();
    if !correct_shape {
        return Err(format!("{name}: unexpected prediction shape").into());
    }
    let n = args.infer_batches * INFER_BATCH;
    let row = Row {
        model: name.into(),
        phase: "infer",
        batch: INFER_BATCH,
        steps: args.infer_batches,
        mean_len: tokens as f64 / args.infer_batches.max(1) as f64,
        examples_per_s: n as f64 / secs,
        peak: peak.mib(),
    };
    println!(
        "{name} infer: {} batches x {INFER_BATCH} in {secs:.2} s = {:.1} examples/s, peak {} MiB",
        args.infer_batches, row.examples_per_s, row.peak
    );
    rows.push(row);
    Ok(())
}

/// `--parity`: the device against PyTorch and the recorded flex losses, then against flex
/// itself (when flex is compiled in and is not the device). `Ok(false)` when a check failed.
fn run_parity(name: &str, device: &Device) -> Res<bool> {
    println!("backend `{name}`: device {device:?}");
    let reference = match burn_peft::device::device_by_name("flex") {
        Ok(flex) if name != "flex" => {
            let (_, out, losses) = parity::check_device("flex", &flex, None)?;
            Some((out, losses))
        }
        _ => None,
    };
    let (report, _, _) = parity::check_device(
        name,
        device,
        reference
            .as_ref()
            .map(|(out, losses)| ("flex", out, losses.as_slice())),
    )?;
    for line in &report.lines {
        println!("{line}");
    }
    for failure in &report.failures {
        eprintln!("parity FAILED: {failure}");
    }
    Ok(report.failures.is_empty())
}

fn main() -> Res<ExitCode> {
    // Reuse freed tensor buffers instead of page-faulting new ones (CPU backends, glibc).
    burn_peft::device::tune_host_allocator();
    let args = parse_args()?;
    let device = select_device(args.device.as_deref())?;
    println!("device: {device:?}");
    if args.parity {
        let name = args
            .device
            .clone()
            .or_else(|| std::env::var("BURN_DEVICE").ok())
            .or_else(|| {
                burn_peft::device::compiled_backends()
                    .first()
                    .map(|n| n.to_string())
            })
            .unwrap_or_else(|| "flex".to_string());
        return Ok(if run_parity(&name, &device)? {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let mut rows = Vec::new();
    for name in &args.models {
        run_model(name, &device, &args, &mut rows)?;
        device.memory_cleanup();
    }
    println!();
    println!(
        "| model | phase | batch | timed steps | mean padded len | examples/s | peak allocator MiB |"
    );
    println!("|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} | {:.1} | {:.1} | {} |",
            r.model, r.phase, r.batch, r.steps, r.mean_len, r.examples_per_s, r.peak
        );
    }
    Ok(ExitCode::SUCCESS)
}
