//! Adapter fine-tuning on GLUE SST-2: the flagship example.
//!
//! ```text
//! cargo run --release --example sst2 [--features wgpu|vulkan|metal|cuda|ndarray] -- [flags]
//! ```
//!
//! `--help` lists every flag with its default; values are checked before anything is loaded or
//! downloaded. The `burn-peft` tool (`burn-peft train --task sst2`) does the same for every
//! GLUE task and the user's own data.
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
//! - `--out DIR` (default `runs/sst2-<method>`): checkpoints, `adapter/`, `metrics.json`,
//!   `curve.svg` (training loss per batch, validation accuracy per epoch). An
//!   `--out` that holds a run is refused (exit 2, before any download) unless the command says
//!   what to do with it: `--resume` continues it from its last checkpoint (the same settings
//!   are required: a different method, batch size, learning rate, seed, ... is refused, naming
//!   it; raise `--epochs` to continue a finished run), `--overwrite` starts over. Ctrl-C stops
//!   after the current step and checkpoints it (rerun with `--resume`)
//! - `--adapter-init identity|bert|houlsby|mam` (identity: zero up-projection, a fresh adapter
//!   changes nothing; bert: AdapterHub's default for `seq_bn`), `--head-init pytorch|adapterhub`
//!   (pytorch), `--max-grad-norm F|none` (1.0). The PyTorch + AdapterHub peer's recipe
//!   (`bench_peer.py epoch`): `--adapter-init bert --head-init adapterhub --max-grad-norm none
//!   --schedule constant --train-order sst2_train_perm_seed0.txt` (see `docs/fidelity.md`)
//! - `--resume`: continue the run in `--out`; `--overwrite`: start over in `--out`, removing
//!   the earlier run's checkpoints and results (not both)
//! - `--checkpoint-every N` (200): a checkpoint every N optimizer steps (also at each epoch end)
//!
//! The same command with the same `--seed` on the same backend gives the same numbers: the
//! seed is applied before the head, the adapters, the data order and every dropout mask.
//!
//! Evaluation only:
//! - `--eval-only --adapter DIR [--adapter DIR2 ...]`: load the base once, then evaluate each
//!   saved adapter on it: every directory is loaded under its own name (AdapterHub's saved name,
//!   else the directory's) next to the others, then each is evaluated by activating it; one row
//!   each, with the load and the switch time. A directory is ours (`burn_peft_adapter.json`, or
//!   the pre-issue-10 `adapter_config.json` of this crate) or AdapterHub's
//!   (`model.save_adapter(dir, name, with_head=True)` in Python, `.bin` or `.safetensors`).

mod common;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use burn::train::Interrupter;
use burn_peft::cli::table::{ResultRow, results_table};
use burn_peft::cli::{ClassifierTrainArgs, MethodArg};
use burn_peft::models::bert::BertConfig;
use burn_peft::models::head::HeadPooling;
use burn_peft::models::hub::resolve_model_dir;
use burn_peft::models::tokenizer::TextTokenizer;
use burn_peft::train::data::{
    ClassificationBatcher, GlueDataset, GlueTask, Split, TokenizedDataset, download_glue,
    load_permutation,
};
use burn_peft::train::serve::{dir_head, evaluate_adapter_dirs};
use burn_peft::train::trainer::{ClassificationData, RunOptions, train_classifier_from_dir};
use clap::Parser;

type AnyError = Box<dyn std::error::Error>;

/// Adapter fine-tuning on GLUE SST-2 (see the doc comment of examples/sst2.rs).
#[derive(Parser, Debug)]
#[command(name = "sst2")]
struct Cli {
    /// A Hugging Face model directory or Hub id (honours HF_ENDPOINT)
    #[arg(long, value_name = "DIR|HUB_ID", default_value = "sentence-transformers/all-MiniLM-L6-v2",
          value_parser = burn_peft::cli::model_spec)]
    model: String,
    /// A directory with train.tsv and dev.tsv [default: download GLUE SST-2 once into
    /// ~/.cache/burn-peft/glue]
    #[arg(long, value_name = "DIR", value_parser = burn_peft::cli::existing_dir)]
    data: Option<PathBuf>,
    /// flex, ndarray, wgpu, vulkan, metal, cuda [default: the compiled-in backend, or BURN_DEVICE]
    #[arg(long, value_parser = burn_peft::cli::device_name)]
    device: Option<String>,
    /// Output directory: checkpoints, adapter/, metrics.json [default: runs/sst2-<method>]
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Evaluate saved adapters (--adapter DIR, repeatable) on one loaded base instead of training
    #[arg(long, requires = "adapter")]
    eval_only: bool,
    /// A saved adapter directory (ours or AdapterHub's), for --eval-only
    #[arg(long, value_name = "DIR", value_parser = burn_peft::cli::existing_dir, requires = "eval_only")]
    adapter: Vec<PathBuf>,
    #[command(flatten)]
    train: ClassifierTrainArgs,
}

fn main() -> ExitCode {
    // Reuse freed tensor buffers instead of page-faulting new ones (CPU backends, glibc).
    burn_peft::device::tune_host_allocator();
    let cli: Cli = burn_peft::cli::parse_or_exit();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn load_split(
    dir: &std::path::Path,
    split: Split,
    tok: &TextTokenizer,
) -> Result<TokenizedDataset, AnyError> {
    let dataset = GlueDataset::from_dir(dir, GlueTask::Sst2, split)?;
    Ok(TokenizedDataset::from_glue(&dataset, tok)?)
}

fn run(cli: Cli) -> Result<(), AnyError> {
    let device = burn_peft::device::select_device(cli.device.as_deref())?;
    let config = cli.train.config(&cli.model);
    config.validate()?;
    let out = cli
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("runs/sst2-{}", cli.train.adapter.method.name())));
    // An earlier run in --out needs --resume or --overwrite: decided before any download.
    if !cli.eval_only
        && let Err(message) = cli.train.run_dir.check(&out, cli.train.epochs)
    {
        burn_peft::cli::exit_usage(&message);
    }
    // Every adapter's config is read (and checked) before the base is resolved.
    let heads = cli
        .adapter
        .iter()
        .map(|d| dir_head(d))
        .collect::<Result<Vec<_>, _>>()?;
    let model_dir = resolve_model_dir(
        &cli.model,
        &["config.json", "model.safetensors", "tokenizer.json"],
    )?;
    let data_dir = match &cli.data {
        Some(d) => d.clone(),
        None => download_glue(GlueTask::Sst2, None)?,
    };
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
            .with_max_len(cli.train.max_len)?
            .fit_to_model(&limits)?,
    );
    let valid = load_split(&data_dir, Split::Validation, &tokenizer)?;
    let batcher = ClassificationBatcher::new(tokenizer.clone());

    if cli.eval_only {
        // One base, every adapter loaded under its own name, each evaluated by activating it.
        let first = &heads[0];
        let (mut model, report) = burn_peft::models::head::BertClassifier::from_pretrained(
            &model_dir,
            first.num_labels,
            first.pooling,
            &device,
        )?;
        eprintln!("{report}");
        eprintln!("base loaded in {:.1}s", started.elapsed().as_secs_f64());
        let evals = evaluate_adapter_dirs(
            &mut model,
            &cli.adapter,
            valid.items(),
            &batcher,
            64,
            &device,
        )?;
        let rows: Vec<ResultRow> = evals.iter().map(ResultRow::from_eval).collect();
        println!("\n{}", results_table(&rows, base_bytes));
        for e in &evals {
            println!(
                "{}: loaded as `{}` in {:.3}s, activated in {:.6}s",
                e.adapter.dir.display(),
                e.adapter.name,
                e.adapter.load_seconds,
                e.activate_seconds
            );
        }
        return Ok(());
    }

    let train = load_split(&data_dir, Split::Train, &tokenizer)?;
    let first_epoch_order = match &cli.train.train_order {
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
    let pooling = if cli.train.adapter.method == MethodArg::Full {
        HeadPooling::Pooler
    } else {
        HeadPooling::DenseTanh
    };
    let interrupter = Interrupter::new();
    let on_ctrl_c = interrupter.clone();
    ctrlc::set_handler(move || {
        eprintln!(
            "\nCtrl-C: stopping after the current step and checkpointing it (rerun with \
             --resume to continue)..."
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
            overwrite: cli.train.run_dir.overwrite,
            ..RunOptions::default()
        },
    );
    let (_, report) = result?;
    if report.interrupted {
        eprintln!(
            "interrupted: adapter so far saved to {}",
            report.adapter_dir.display()
        );
    }
    println!(
        "\n{}",
        results_table(&[ResultRow::from_training(&report)], base_bytes)
    );
    let curve = out.join("curve.svg");
    burn_peft::core::file::write_atomic(
        &curve,
        burn_peft::cli::curve::curve_svg(&report)?.as_bytes(),
    )?;
    println!(
        "\nadapter: {} | metrics: {} | curves: {}",
        report.adapter_dir.display(),
        out.join("metrics.json").display(),
        curve.display()
    );
    Ok(())
}
