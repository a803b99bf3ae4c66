//! Adapter fine-tuning of GPT-2 as a language model on a text file, then generation.
//!
//! ```text
//! cargo run --release --example gpt2_lm [--features wgpu|vulkan|metal|cuda|ndarray] -- \
//!     --text corpus.txt [flags]
//! ```
//!
//! `--help` lists every flag with its default; values are checked before anything is loaded or
//! downloaded.
//!
//! The base stays frozen; only bottleneck adapters train (burn-train Learner, adapter-only
//! checkpoints, resume, Ctrl-C). Prints the validation perplexity before and after and a
//! continuation of `--prompt` by the base and by the adapted model.
//!
//! Model and data:
//! - `--model DIR|HUB_ID`: Hugging Face GPT-2 directory or Hub id (default `gpt2`; needs
//!   `config.json` and `model.safetensors` or `pytorch_model.bin`; honours `HF_ENDPOINT`,
//!   `HF_HUB_OFFLINE`)
//! - `--tokenizer PATH`: a `tokenizer.json` (default: the one in the model directory), e.g.
//!   `$PEFT_ASSETS_DIR/models/gpt2-tokenizer/tokenizer.json` for
//!   `--model $PEFT_ASSETS_DIR/models/tiny-random-gpt2`
//! - `--text FILE`: the corpus, plain text, or JSON Lines when it ends in `.jsonl`
//! - `--format plain|paragraphs|jsonl` (default from the extension): one document per file, per
//!   blank-line-separated paragraph, or per JSON line; EOS separates documents
//! - `--field NAME`: the JSON Lines text field (default `text`)
//! - `--block-size N`: tokens per training block (default min(128, n_positions)); the remainder
//!   is dropped, or padded (mask 0) with `--pad-remainder`
//! - `--valid-fraction F`: share of the blocks held out for validation (default 0.1)
//! - `--device NAME`: flex, ndarray, wgpu, vulkan, metal, cuda (default: the compiled-in
//!   backend, or `BURN_DEVICE`)
//!
//! Training:
//! - `--method houlsby|pfeiffer` (default pfeiffer), `--reduction-factor F` (16) or
//!   `--bottleneck N`, `--dropout F` (adapter dropout, 0.0)
//! - `--epochs N` (1), `--batch-size N` (8), `--lr F` (1e-3), `--schedule linear|constant`
//!   (linear: 6% warm-up then linear decay), `--grad-accumulation N` (1), `--log-every N` (10),
//!   `--seed N` (42; also the sampling seed)
//! - `--out DIR` (default `runs/gpt2-lm-<method>`): checkpoints, `adapter/`, `metrics.json`.
//!   An `--out` that holds a run is refused (exit 2, before any download) unless the command
//!   says what to do with it: `--resume` continues it from its last checkpoint (with the same
//!   settings: others are refused, naming the difference; raise `--epochs` to continue a
//!   finished run), `--overwrite` starts over, removing the earlier run's checkpoints and
//!   results. Ctrl-C stops after the current step and checkpoints it (rerun with `--resume`)
//! - `--checkpoint-every N` (200): a checkpoint every N optimizer steps (also at each epoch end)
//!
//! Generation:
//! - `--prompt TEXT` (default `The`), `--max-new-tokens N` (40)
//! - `--temperature F` (0 = greedy, the default), `--top-k N`, `--top-p F`

mod common;

use std::path::PathBuf;
use std::process::ExitCode;

use burn::train::Interrupter;
use burn_peft::cli::{GenerationArgs, RunDirArgs, ScheduleArg, continue_prompt};
use burn_peft::core::{AdapterConfig, BottleneckWidth};
use burn_peft::models::gpt2::Gpt2Model;
use burn_peft::models::hub::resolve_model_dir;
use burn_peft::models::tokenizer::TextTokenizer;
use burn_peft::train::lm::{
    LmData, LmTrainingConfig, Remainder, TextFormat, load_lm_blocks, train_causal_lm,
};
use burn_peft::train::optim::OptimConfig;
use burn_peft::train::trainer::RunOptions;
use clap::{Parser, ValueEnum};
use common::human_bytes;

type AnyError = Box<dyn std::error::Error>;

/// The adapter methods a causal LM trains here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum LmMethod {
    /// Houlsby et al. 2019.
    Houlsby,
    /// Pfeiffer et al. 2021.
    Pfeiffer,
}

/// How the corpus file splits into documents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum FormatArg {
    /// One document per file.
    Plain,
    /// One document per blank-line-separated paragraph.
    Paragraphs,
    /// One document per JSON line (field --field).
    Jsonl,
}

/// Adapter fine-tuning of GPT-2 as a language model (see the doc comment of
/// examples/gpt2_lm.rs).
#[derive(Parser, Debug)]
#[command(name = "gpt2_lm")]
struct Cli {
    /// Hugging Face GPT-2 directory or Hub id
    #[arg(long, value_name = "DIR|HUB_ID", default_value = "gpt2", value_parser = burn_peft::cli::model_spec)]
    model: String,
    /// A tokenizer.json [default: the one in the model directory]
    #[arg(long, value_name = "PATH", value_parser = burn_peft::cli::existing_file)]
    tokenizer: Option<PathBuf>,
    /// The corpus: plain text, or JSON Lines when it ends in .jsonl
    #[arg(long, value_name = "FILE", value_parser = burn_peft::cli::existing_file)]
    text: PathBuf,
    /// Document split [default: from the extension]
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// The JSON Lines text field
    #[arg(long, default_value = "text")]
    field: String,
    /// Tokens per training block [default: min(128, n_positions)]
    #[arg(long, value_name = "N", value_parser = burn_peft::cli::positive_usize)]
    block_size: Option<usize>,
    /// Pad the last block (mask 0) instead of dropping it
    #[arg(long)]
    pad_remainder: bool,
    /// Share of the blocks held out for validation
    #[arg(long, value_name = "F", default_value_t = 0.1, value_parser = burn_peft::cli::probability)]
    valid_fraction: f64,
    /// flex, ndarray, wgpu, vulkan, metal, cuda [default: the compiled-in backend, or BURN_DEVICE]
    #[arg(long, value_parser = burn_peft::cli::device_name)]
    device: Option<String>,
    /// Adapter method
    #[arg(long, value_enum, default_value_t = LmMethod::Pfeiffer)]
    method: LmMethod,
    /// Bottleneck width as d_model / F
    #[arg(long, value_name = "F", default_value_t = 16.0, value_parser = burn_peft::cli::positive_f64)]
    reduction_factor: f64,
    /// Bottleneck width N (instead of --reduction-factor)
    #[arg(long, value_name = "N", value_parser = burn_peft::cli::positive_usize)]
    bottleneck: Option<usize>,
    /// Adapter dropout probability
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = burn_peft::cli::probability)]
    dropout: f64,
    /// Epochs
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = burn_peft::cli::positive_usize)]
    epochs: usize,
    /// Training batch size
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = burn_peft::cli::positive_usize)]
    batch_size: usize,
    /// Peak learning rate
    #[arg(long, value_name = "F", default_value_t = 1e-3, value_parser = burn_peft::cli::positive_f64)]
    lr: f64,
    /// Learning-rate schedule (linear: 6% warm-up then linear decay)
    #[arg(long, value_enum, default_value_t = ScheduleArg::Linear)]
    schedule: ScheduleArg,
    /// Batches per optimizer step
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = burn_peft::cli::positive_usize)]
    grad_accumulation: usize,
    /// A progress line every N batches
    #[arg(long, value_name = "N", default_value_t = 10)]
    log_every: usize,
    /// Seed (also the sampling seed)
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Output directory [default: runs/gpt2-lm-<method>]
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    #[command(flatten)]
    run_dir: RunDirArgs,
    /// A checkpoint every N optimizer steps (also at each epoch end)
    #[arg(long, value_name = "N", default_value_t = 200)]
    checkpoint_every: usize,
    #[command(flatten)]
    generation: GenerationArgs,
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

fn run(cli: Cli) -> Result<(), AnyError> {
    let device = burn_peft::device::select_device(cli.device.as_deref())?;
    let model_spec = cli.model.clone();
    let tokenizer_path = cli.tokenizer.clone();
    let text = cli.text.clone();
    let format = match cli.format {
        None => match TextFormat::from_path(&text) {
            TextFormat::JsonLines { .. } => TextFormat::json_lines(cli.field.clone()),
            other => other,
        },
        Some(FormatArg::Plain) => TextFormat::Plain,
        Some(FormatArg::Paragraphs) => TextFormat::Paragraphs,
        Some(FormatArg::Jsonl) => TextFormat::json_lines(cli.field.clone()),
    };
    let block_size = cli.block_size;
    let valid_fraction = cli.valid_fraction;
    let pad_remainder = cli.pad_remainder;
    let rf = cli.reduction_factor;
    let (method, mut adapter) = match cli.method {
        LmMethod::Houlsby => ("houlsby", AdapterConfig::houlsby(rf)),
        LmMethod::Pfeiffer => ("pfeiffer", AdapterConfig::pfeiffer(rf)),
    };
    if let Some(d) = cli.bottleneck {
        adapter.bottleneck.width = BottleneckWidth::BottleneckDim(d);
    }
    adapter.bottleneck.dropout = cli.dropout;
    let seed = cli.seed;
    let config = LmTrainingConfig::new()
        .with_adapter(adapter)
        .with_optim(
            OptimConfig::new()
                .with_lr(cli.lr)
                .with_schedule(cli.schedule.into()),
        )
        .with_epochs(cli.epochs)
        .with_batch_size(cli.batch_size)
        .with_grad_accumulation(cli.grad_accumulation)
        .with_seed(seed)
        .with_checkpoint_every(cli.checkpoint_every)
        .with_model_id(Some(model_spec.clone()))
        .with_log_every(cli.log_every)
        .with_resume(cli.run_dir.resume);
    let overwrite = cli.run_dir.overwrite;
    let prompt = cli.generation.prompt.clone();
    let generation = cli.generation.config(seed);
    let out = cli
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("runs/gpt2-lm-{method}")));
    config.validate()?;
    generation.validate()?;
    // An earlier run in --out needs --resume or --overwrite: decided before any download.
    if let Err(message) = cli.run_dir.check(&out, cli.epochs) {
        burn_peft::cli::exit_usage(&message);
    }

    // Model, tokenizer.
    let mut files = vec!["config.json", "model.safetensors"];
    if tokenizer_path.is_none() {
        files.push("tokenizer.json");
    }
    let model_dir = resolve_model_dir(&model_spec, &files)?;
    let tokenizer_file = tokenizer_path.unwrap_or_else(|| model_dir.join("tokenizer.json"));
    if !tokenizer_file.is_file() {
        return Err(format!(
            "no tokenizer at {}: pass one with --tokenizer PATH/tokenizer.json",
            tokenizer_file.display()
        )
        .into());
    }
    let tokenizer = TextTokenizer::from_file(&tokenizer_file)?;
    let train_device = device.clone().autodiff();
    let (model, load_report) = Gpt2Model::from_pretrained(&model_dir, &train_device)?;
    eprintln!("{load_report}");
    if tokenizer.vocab_size() > model.vocab_size {
        return Err(format!(
            "the tokenizer has {} tokens, the model only {}: they do not belong together",
            tokenizer.vocab_size(),
            model.vocab_size
        )
        .into());
    }
    let base_bytes = burn_peft::models::find_checkpoint(&model_dir)
        .ok()
        .and_then(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .unwrap_or(0);
    eprintln!(
        "model: {} ({} layers, width {}, {} positions) | device: {device:?}",
        model_dir.display(),
        model.h.len(),
        model.n_embd,
        model.n_positions
    );

    // Data.
    let eos = model.eos_token_id;
    let block_size = block_size.unwrap_or(model.n_positions.min(128));
    if block_size > model.n_positions {
        return Err(format!(
            "--block-size {block_size} exceeds the model's n_positions ({})",
            model.n_positions
        )
        .into());
    }
    let remainder = if pad_remainder {
        Remainder::Pad { pad_id: eos }
    } else {
        Remainder::Drop
    };
    let blocks = load_lm_blocks(&text, &format, &tokenizer, eos, block_size, remainder)?;
    let data = LmData::split(blocks, valid_fraction)?;
    eprintln!(
        "data: {} | {} train / {} validation blocks of {block_size} tokens",
        text.display(),
        data.train.len(),
        data.valid.len()
    );

    let prompt_ids = tokenizer.encode_plain(&prompt)?;
    if prompt_ids.is_empty() {
        return Err("--prompt encodes to no token".into());
    }
    let before = continue_prompt(&model, &tokenizer, &prompt_ids, &generation)?;

    // Training.
    let interrupter = Interrupter::new();
    let on_ctrl_c = interrupter.clone();
    ctrlc::set_handler(move || {
        eprintln!(
            "\nCtrl-C: stopping after the current step and checkpointing it (rerun with \
             --resume to continue)..."
        );
        on_ctrl_c.stop(Some("Ctrl-C"));
    })?;
    let result = train_causal_lm(
        model,
        &data,
        &config,
        &out,
        RunOptions {
            interrupter: Some(interrupter),
            overwrite,
            ..RunOptions::default()
        },
    );
    let (trained, report) = result?;
    if report.interrupted {
        eprintln!(
            "interrupted: adapter so far saved to {}",
            report.adapter_dir.display()
        );
    }
    let after = continue_prompt(&trained, &tokenizer, &prompt_ids, &generation)?;

    let train_secs: f64 = report.epochs.iter().map(|e| e.train_seconds).sum();
    println!();
    println!("method: {}", report.method);
    println!(
        "trainable params: {} of {} ({:.2}%)",
        report.trainable_params,
        report.total_params,
        100.0 * report.trainable_params as f64 / report.total_params.max(1) as f64
    );
    println!(
        "validation perplexity: {:.2} before -> {:.2} after ({} tokens)",
        report.eval_before.perplexity, report.final_eval.perplexity, report.final_eval.tokens
    );
    println!(
        "train time: {train_secs:.1} s | adapter file: {} (base model: {})",
        human_bytes(report.adapter_bytes),
        human_bytes(base_bytes)
    );
    println!("\nprompt: {prompt:?}");
    println!("base:    {before:?}");
    println!("adapted: {after:?}");
    println!(
        "\nadapter: {} | metrics: {}",
        report.adapter_dir.display(),
        out.join("metrics.json").display()
    );
    Ok(())
}
