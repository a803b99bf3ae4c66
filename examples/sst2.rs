//! Adapter fine-tuning on GLUE SST-2: the flagship example.
//!
//! ```text
//! cargo run --release --example sst2 [--features wgpu|vulkan|metal|cuda|ndarray] -- [flags]
//! ```
//!
//! Model and data:
//! - `--model DIR|HUB_ID`: a Hugging Face model directory or Hub id (default
//!   `sentence-transformers/all-MiniLM-L6-v2`; honours `HF_ENDPOINT`)
//! - `--data DIR`: a directory with `train.tsv` and `dev.tsv` (default: download GLUE SST-2 once
//!   into `~/.cache/burn-peft/glue`)
//! - `--device NAME`: flex, ndarray, wgpu, vulkan, metal, cuda (default: the compiled-in backend,
//!   or `BURN_DEVICE`)
//!
//! Training:
//! - `--method houlsby|pfeiffer|parallel|head-only|full` (default pfeiffer)
//! - `--reduction-factor F` (default 16) or `--bottleneck N`
//! - `--epochs N` (1), `--batch-size N` (32), `--lr F` (1e-3; 2e-5 for full), `--max-len N` (64),
//!   `--seed N` (42), `--max-steps N` (batches per epoch), `--weight-decay F` (0.0),
//!   `--schedule linear|constant` (linear: 6% warm-up then linear decay), `--dropout F` (adapter
//!   dropout, 0.0), `--grad-accumulation N` (1), `--log-every N` (50),
//!   `--train-order FILE` (first-epoch order: one 0-based row index per line, e.g. the PyTorch
//!   peer's `sst2_train_perm_seed0.txt`)
//! - `--out DIR` (default `runs/sst2-<method>`): checkpoints, `adapter/`, `metrics.json`;
//!   rerunning with the same `--out` resumes from the last checkpoint (the same settings are
//!   required: a different method, batch size, learning rate, seed, ... is refused, naming
//!   it); Ctrl-C stops after the current step and checkpoints it. A finished run in `--out` is
//!   reported (raise `--epochs` to continue it)
//! - `--adapter-init identity|bert|houlsby|mam` (identity: zero up-projection, a fresh adapter
//!   changes nothing; bert: AdapterHub's default for `seq_bn`), `--head-init pytorch|adapterhub`
//!   (pytorch), `--max-grad-norm F|none` (1.0). The PyTorch + AdapterHub peer's recipe
//!   (`bench_peer.py epoch`): `--adapter-init bert --head-init adapterhub --max-grad-norm none
//!   --schedule constant --train-order sst2_train_perm_seed0.txt` (see `docs/fidelity.md`)
//! - `--overwrite`: start over in `--out`, removing the earlier run's checkpoints and results
//! - `--checkpoint-every N` (200): a checkpoint every N optimizer steps (also at each epoch end)
//!
//! The same command with the same `--seed` on the same backend gives the same numbers: the
//! seed is applied before the head, the adapters, the data order and every dropout mask.
//!
//! Evaluation only:
//! - `--eval-only --adapter DIR [--adapter DIR2 ...]`: load the base once, then evaluate each
//!   saved adapter on it, swapping adapters without reloading the base. A directory is ours
//!   (`burn_peft_adapter.json`, or the pre-issue-10 `adapter_config.json` of this crate) or
//!   AdapterHub's (`model.save_adapter(dir, name, with_head=True)` in Python, `.bin` or
//!   `.safetensors`): its adapter and head are added by name and activated.

mod common;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use burn::train::Interrupter;
use burn_peft::core::Setup;
use burn_peft::core::adapterhub::{self, HubAdapterFile, HubHead, HubHeadFile, is_hub_dir};
use burn_peft::core::{AdapterConfig, AdapterInit, BottleneckWidth};
use burn_peft::models::adapterhub::load_adapterhub_classifier;
use burn_peft::models::bert::BertConfig;
use burn_peft::models::head::{BertClassifier, HeadInit, HeadPooling};
use burn_peft::models::hub::resolve_model_dir;
use burn_peft::models::tokenizer::TextTokenizer;
use burn_peft::train::TrainError;
use burn_peft::train::adapter_io::load_classifier_adapter;
use burn_peft::train::data::{
    ClassificationBatcher, GlueDataset, GlueTask, Split, TokenizedDataset, download_glue,
    load_permutation,
};
use burn_peft::train::optim::{OptimConfig, Schedule};
use burn_peft::train::trainer::{
    ClassificationData, ClassifierTrainingConfig, RunOptions, TrainingMethod, evaluate,
    train_classifier_from_dir,
};
use common::{Args, human_bytes};

type AnyError = Box<dyn std::error::Error>;

/// Number of labels and pooling of the head in an AdapterHub directory (2 and dense + tanh
/// when it has none).
fn hub_head_shape(dir: &Path) -> Result<(usize, HeadPooling), AnyError> {
    let path = dir.join(adapterhub::HEAD_CONFIG_FILE);
    if !path.is_file() {
        return Ok((2, HeadPooling::DenseTanh));
    }
    match HubHeadFile::read(&path)?.head {
        HubHead::Classification(h) if h.use_pooler => Ok((h.num_labels, HeadPooling::Pooler)),
        HubHead::Classification(h) => Ok((h.num_labels, HeadPooling::DenseTanh)),
        HubHead::Static { .. } => {
            Err(format!("{}: a static head is not a classifier head", path.display()).into())
        }
    }
}

fn main() -> ExitCode {
    // Reuse freed tensor buffers instead of page-faulting new ones (CPU backends, glibc).
    burn_peft::device::tune_host_allocator();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

struct Row {
    method: String,
    trainable: usize,
    total: usize,
    accuracy: f64,
    train_secs: Option<f64>,
    examples_per_sec: Option<f64>,
    adapter_bytes: Option<u64>,
}

fn print_table(rows: &[Row], base_bytes: u64) {
    println!();
    println!(
        "| method | trainable params | dev accuracy | train time | train ex/s | adapter file | base model |"
    );
    println!("|---|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} ({:.2}%) | {:.2}% | {} | {} | {} | {} |",
            r.method,
            r.trainable,
            100.0 * r.trainable as f64 / r.total.max(1) as f64,
            r.accuracy,
            r.train_secs
                .map(|s| format!("{s:.1} s"))
                .unwrap_or("-".into()),
            r.examples_per_sec
                .map(|s| format!("{s:.1}"))
                .unwrap_or("-".into()),
            r.adapter_bytes.map(human_bytes).unwrap_or("-".into()),
            human_bytes(base_bytes),
        );
    }
}

fn method_from(args: &Args) -> Result<TrainingMethod, AnyError> {
    let name: String = args.get_or("method", "pfeiffer".to_string())?;
    let rf: f64 = args.get_or("reduction-factor", 16.0)?;
    let width = match args.get::<usize>("bottleneck")? {
        Some(d) => BottleneckWidth::BottleneckDim(d),
        None => BottleneckWidth::ReductionFactor(rf),
    };
    let dropout: f64 = args.get_or("dropout", 0.0)?;
    let init = match args
        .get_or("adapter-init", "identity".to_string())?
        .as_str()
    {
        "identity" => AdapterInit::Identity,
        "bert" => AdapterInit::Bert,
        "houlsby" => AdapterInit::Houlsby,
        "mam" => AdapterInit::MamAdapter,
        other => {
            return Err(
                format!("unknown --adapter-init `{other}` (identity, bert, houlsby, mam)").into(),
            );
        }
    };
    let adapter = |mut config: AdapterConfig| {
        config.bottleneck.width = width;
        config.bottleneck.dropout = dropout;
        config.bottleneck.init = init;
        TrainingMethod::Adapter { config }
    };
    Ok(match name.as_str() {
        "houlsby" => adapter(AdapterConfig::houlsby(rf)),
        "pfeiffer" => adapter(AdapterConfig::pfeiffer(rf)),
        "parallel" => adapter(AdapterConfig::parallel()),
        "head-only" | "head" => TrainingMethod::HeadOnly,
        "full" => TrainingMethod::Full,
        other => {
            return Err(format!(
                "unknown --method `{other}` (houlsby, pfeiffer, parallel, head-only, full)"
            )
            .into());
        }
    })
}

fn load_split(dir: &Path, split: Split, tok: &TextTokenizer) -> Result<TokenizedDataset, AnyError> {
    let dataset = GlueDataset::from_dir(dir, GlueTask::Sst2, split)?;
    Ok(TokenizedDataset::from_glue(&dataset, tok)?)
}

fn run() -> Result<(), AnyError> {
    let args = Args::parse(&["eval-only", "overwrite"])?;
    let device = burn_peft::device::select_device(args.get::<String>("device")?.as_deref())?;
    let model_spec: String = args.get_or(
        "model",
        "sentence-transformers/all-MiniLM-L6-v2".to_string(),
    )?;
    let model_dir = resolve_model_dir(
        &model_spec,
        &["config.json", "model.safetensors", "tokenizer.json"],
    )?;
    let data_dir = match args.get::<PathBuf>("data")? {
        Some(d) => d,
        None => download_glue(GlueTask::Sst2, None)?,
    };
    let max_len: usize = args.get_or("max-len", 64)?;
    let batch_size: usize = args.get_or("batch-size", 32)?;
    let eval_only = args.flag("eval-only");
    let adapters = args.all("adapter");
    let method = method_from(&args)?;
    let default_lr = if method == TrainingMethod::Full {
        2e-5
    } else {
        1e-3
    };
    let schedule = match args.get_or("schedule", "linear".to_string())?.as_str() {
        "linear" => Schedule::WarmupLinear { warmup_ratio: 0.06 },
        "constant" => Schedule::Constant,
        other => return Err(format!("unknown --schedule `{other}` (linear, constant)").into()),
    };
    let max_grad_norm = match args.get_or("max-grad-norm", "1.0".to_string())?.as_str() {
        "none" => None,
        v => Some(v.parse::<f64>().map_err(|e| {
            format!("--max-grad-norm `{v}`: expected a positive number or `none` ({e})")
        })?),
    };
    let head_init = match args.get_or("head-init", "pytorch".to_string())?.as_str() {
        "pytorch" => HeadInit::PyTorchDefault,
        "adapterhub" => HeadInit::adapterhub(),
        other => {
            return Err(format!("unknown --head-init `{other}` (pytorch, adapterhub)").into());
        }
    };
    let optim = OptimConfig::new()
        .with_max_grad_norm(max_grad_norm)
        .with_lr(args.get_or("lr", default_lr)?)
        .with_weight_decay(args.get_or("weight-decay", 0.0)?)
        .with_schedule(schedule);
    let config = ClassifierTrainingConfig::new()
        .with_method(method.clone())
        .with_optim(optim)
        .with_epochs(args.get_or("epochs", 1)?)
        .with_batch_size(batch_size)
        .with_max_steps(args.get("max-steps")?)
        .with_seed(args.get_or("seed", 42)?)
        .with_grad_accumulation(args.get_or("grad-accumulation", 1)?)
        .with_checkpoint_every(args.get_or("checkpoint-every", 200)?)
        .with_model_id(Some(model_spec.clone()))
        .with_head_init(head_init)
        .with_log_every(args.get_or("log-every", 50)?);
    let overwrite = args.flag("overwrite");
    let method_tag: String = args.get_or("method", "pfeiffer".to_string())?;
    let out: PathBuf = args.get_or("out", PathBuf::from(format!("runs/sst2-{method_tag}")))?;
    let train_order: Option<PathBuf> = args.get("train-order")?;
    args.finish()?;
    config.validate()?;

    let base_bytes = burn_peft::models::find_checkpoint(&model_dir)
        .ok()
        .and_then(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .unwrap_or(0);
    eprintln!(
        "model: {} | data: {} | device: {device:?}",
        model_dir.display(),
        data_dir.display()
    );
    let started = Instant::now();
    // Checked against the model before anything is tokenized or trained: a --max-len beyond
    // its positions, a tokenizer of another model; a file without truncation is truncated to
    // the model's limit.
    let limits = BertConfig::from_hf_file(model_dir.join("config.json"))?.input_limits();
    let tokenizer = Arc::new(
        TextTokenizer::from_pretrained_dir(&model_dir)?
            .with_max_len(max_len)?
            .fit_to_model(&limits)?,
    );
    let valid = load_split(&data_dir, Split::Validation, &tokenizer)?;
    let batcher = ClassificationBatcher::new(tokenizer.clone());

    if eval_only {
        if adapters.is_empty() {
            return Err("--eval-only needs at least one --adapter DIR".into());
        }
        // The head type comes from the first adapter; the base is loaded once for all of them.
        // A directory is ours (burn_peft_adapter.json) or AdapterHub's (`save_adapter`).
        let (num_labels, pooling) = if is_hub_dir(Path::new(&adapters[0])) {
            hub_head_shape(Path::new(&adapters[0]))?
        } else {
            let first = burn_peft::core::read_adapter_file(&adapters[0])?;
            let pooling = match first.head.as_ref().map(|h| h.kind.as_str()) {
                Some("sequence_classification_pooler") => HeadPooling::Pooler,
                _ => HeadPooling::DenseTanh,
            };
            (
                first.head.as_ref().map(|h| h.num_labels).unwrap_or(2),
                pooling,
            )
        };
        let (mut model, report) =
            BertClassifier::from_pretrained(&model_dir, num_labels, pooling, &device)?;
        eprintln!("{report}");
        eprintln!("base loaded in {:.1}s", started.elapsed().as_secs_f64());
        let mut rows = Vec::new();
        for (i, dir) in adapters.iter().enumerate() {
            let swap = Instant::now();
            let (kind, weights) = if is_hub_dir(Path::new(dir)) {
                // Named adapters accumulate on the one base; a second directory with the same
                // adapter name is loaded under `<name>_<i>`.
                let file = HubAdapterFile::read(Path::new(dir).join(adapterhub::CONFIG_FILE))?;
                let taken = burn_peft::core::adapters(&model)
                    .iter()
                    .any(|a| a.name == file.name);
                let load_as = taken.then(|| format!("{}_{i}", file.name));
                let loaded =
                    load_adapterhub_classifier(&mut model, dir, load_as.as_deref(), &device)?;
                eprintln!("{}", loaded.adapter);
                let name = loaded.adapter.name.clone();
                burn_peft::core::set_active(&mut model, Some(Setup::single(&name)))?;
                if let Some(head) = &loaded.head {
                    model.set_active_head(head)?;
                }
                ("adapterhub", loaded.adapter.weights)
            } else {
                let file = load_classifier_adapter(&mut model, dir, &device)?;
                let kind = match file.adapter {
                    burn_peft::core::AdapterMethod::Bottleneck(_) => "bottleneck",
                    burn_peft::core::AdapterMethod::HeadOnly => "head-only",
                    burn_peft::core::AdapterMethod::Lora(_) => "lora",
                    burn_peft::core::AdapterMethod::Ia3(_) => "ia3",
                    burn_peft::core::AdapterMethod::Fusion { .. } => "fusion",
                };
                (kind, burn_peft::core::file::weights_file(Path::new(dir)))
            };
            eprintln!(
                "adapter {dir} loaded in {:.3}s",
                swap.elapsed().as_secs_f64()
            );
            let eval = evaluate(&model, valid.items(), &batcher, 64, &device)?;
            let trainable = BertClassifier::adapter_trainable();
            let summary = burn_peft::core::param_summary(&model, &trainable)?;
            rows.push(Row {
                method: format!("{dir} ({kind})"),
                trainable: summary.selected,
                total: summary.total,
                accuracy: eval.accuracy,
                train_secs: None,
                examples_per_sec: Some(eval.examples_per_sec),
                adapter_bytes: std::fs::metadata(weights).ok().map(|m| m.len()),
            });
        }
        print_table(&rows, base_bytes);
        return Ok(());
    }

    let train = load_split(&data_dir, Split::Train, &tokenizer)?;
    let first_epoch_order = match train_order {
        Some(path) => {
            let order = load_permutation(path)?;
            if order.len() != train.items().len() {
                return Err(format!(
                    "--train-order has {} rows, train.tsv {}",
                    order.len(),
                    train.items().len()
                )
                .into());
            }
            Some(order)
        }
        None => None,
    };
    eprintln!(
        "data: {} train / {} dev examples, tokenized in {:.1}s",
        train.items().len(),
        valid.items().len(),
        started.elapsed().as_secs_f64()
    );
    let pooling = if method == TrainingMethod::Full {
        HeadPooling::Pooler
    } else {
        HeadPooling::DenseTanh
    };
    let interrupter = Interrupter::new();
    let on_ctrl_c = interrupter.clone();
    ctrlc::set_handler(move || {
        eprintln!(
            "\nCtrl-C: stopping after the current step and checkpointing it (rerun the same \
             command to resume)..."
        );
        on_ctrl_c.stop(Some("Ctrl-C"));
    })?;
    let data = ClassificationData {
        train: train.items().to_vec(),
        valid: valid.items().to_vec(),
        first_epoch_order,
    };
    // Seeds the device, then loads the base and creates the head: reproducible.
    let result = train_classifier_from_dir(
        &model_dir,
        2,
        pooling,
        &device,
        &data,
        batcher,
        &config,
        &out,
        RunOptions {
            interrupter: Some(interrupter),
            overwrite,
            ..RunOptions::default()
        },
    );
    let report = match result {
        Ok((_, report)) => report,
        Err(TrainError::RunFinished { epochs, .. }) => {
            common::print_finished_run(&out, epochs);
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let train_secs: f64 = report.epochs.iter().map(|e| e.train_seconds).sum();
    let examples: usize = report.epochs.iter().map(|e| e.train_examples).sum();
    if report.interrupted {
        eprintln!(
            "interrupted: adapter so far saved to {}",
            report.adapter_dir.display()
        );
    }
    print_table(
        &[Row {
            method: report.method.clone(),
            trainable: report.trainable_params,
            total: report.total_params,
            accuracy: report.final_eval.accuracy,
            train_secs: Some(train_secs),
            examples_per_sec: Some(examples as f64 / train_secs.max(1e-9)),
            adapter_bytes: Some(report.adapter_bytes),
        }],
        base_bytes,
    );
    println!(
        "\nadapter: {} | metrics: {}",
        report.adapter_dir.display(),
        out.join("metrics.json").display()
    );
    Ok(())
}
