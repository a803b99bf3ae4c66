//! Adapter fine-tuning of GPT-2 as a language model on a text file, then generation.
//!
//! ```text
//! cargo run --release --example gpt2_lm [--features wgpu|vulkan|metal|cuda|ndarray] -- \
//!     --text corpus.txt [flags]
//! ```
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
//! - `--out DIR` (default `runs/gpt2-lm-<method>`): checkpoints, `adapter/`, `metrics.json`;
//!   rerunning with the same `--out` resumes from the last checkpoint (with the same settings:
//!   others are refused, naming the difference); Ctrl-C stops after the current step and
//!   checkpoints it; a finished run in `--out` is reported (raise `--epochs` to continue it)
//! - `--overwrite`: start over in `--out`, removing the earlier run's checkpoints and results
//! - `--checkpoint-every N` (200): a checkpoint every N optimizer steps (also at each epoch end)
//!
//! Generation:
//! - `--prompt TEXT` (default `The`), `--max-new-tokens N` (40)
//! - `--temperature F` (0 = greedy, the default), `--top-k N`, `--top-p F`

mod common;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use burn::module::Module;
use burn::train::Interrupter;
use burn_peft::core::{AdapterConfig, BottleneckWidth};
use burn_peft::models::gpt2::{GenerationConfig, Gpt2Model};
use burn_peft::models::hub::resolve_model_dir;
use burn_peft::models::tokenizer::TextTokenizer;
use burn_peft::train::TrainError;
use burn_peft::train::lm::{
    LmData, LmTrainingConfig, Remainder, TextFormat, load_lm_blocks, train_causal_lm,
};
use burn_peft::train::optim::{OptimConfig, Schedule};
use burn_peft::train::trainer::RunOptions;
use common::{Args, human_bytes};

type AnyError = Box<dyn std::error::Error>;

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

fn adapter_from(args: &Args) -> Result<(String, AdapterConfig), AnyError> {
    let name: String = args.get_or("method", "pfeiffer".to_string())?;
    let rf: f64 = args.get_or("reduction-factor", 16.0)?;
    let mut config = match name.as_str() {
        "houlsby" => AdapterConfig::houlsby(rf),
        "pfeiffer" => AdapterConfig::pfeiffer(rf),
        other => return Err(format!("unknown --method `{other}` (houlsby, pfeiffer)").into()),
    };
    if let Some(d) = args.get::<usize>("bottleneck")? {
        config.bottleneck.width = BottleneckWidth::BottleneckDim(d);
    }
    config.bottleneck.dropout = args.get_or("dropout", 0.0)?;
    Ok((name, config))
}

fn format_from(args: &Args, text: &Path) -> Result<TextFormat, AnyError> {
    let field: String = args.get_or("field", "text".to_string())?;
    Ok(match args.get::<String>("format")?.as_deref() {
        None => match TextFormat::from_path(text) {
            TextFormat::JsonLines { .. } => TextFormat::json_lines(field),
            other => other,
        },
        Some("plain") => TextFormat::Plain,
        Some("paragraphs") => TextFormat::Paragraphs,
        Some("jsonl") => TextFormat::json_lines(field),
        Some(other) => {
            return Err(format!("unknown --format `{other}` (plain, paragraphs, jsonl)").into());
        }
    })
}

fn generation_from(args: &Args, seed: u64) -> Result<GenerationConfig, AnyError> {
    let temperature: f64 = args.get_or("temperature", 0.0)?;
    if !(temperature >= 0.0 && temperature.is_finite()) {
        return Err(format!("--temperature must be >= 0, got {temperature}").into());
    }
    let config = GenerationConfig::new()
        .with_max_new_tokens(args.get_or("max-new-tokens", 40)?)
        .with_top_k(args.get("top-k")?)
        .with_top_p(args.get("top-p")?)
        .with_seed(seed);
    Ok(if temperature == 0.0 {
        config
    } else {
        config.with_do_sample(true).with_temperature(temperature)
    })
}

/// The prompt continued by `model` (in eval mode), decoded.
fn continue_prompt(
    model: &Gpt2Model,
    tokenizer: &TextTokenizer,
    prompt: &[u32],
    config: &GenerationConfig,
) -> Result<String, AnyError> {
    let out = model.valid().generate(&[prompt.to_vec()], config)?;
    let ids = out.first().map(Vec::as_slice).unwrap_or_default();
    Ok(tokenizer.decode(ids)?)
}

fn run() -> Result<(), AnyError> {
    let args = Args::parse(&["pad-remainder", "overwrite"])?;
    let device = burn_peft::device::select_device(args.get::<String>("device")?.as_deref())?;
    let model_spec: String = args.get_or("model", "gpt2".to_string())?;
    let tokenizer_path: Option<PathBuf> = args.get("tokenizer")?;
    let text: PathBuf = args
        .get("text")?
        .ok_or("--text FILE is required (plain text, or JSON Lines ending in .jsonl)")?;
    let format = format_from(&args, &text)?;
    let block_size: Option<usize> = args.get("block-size")?;
    let valid_fraction: f64 = args.get_or("valid-fraction", 0.1)?;
    let pad_remainder = args.flag("pad-remainder");
    let (method, adapter) = adapter_from(&args)?;
    let schedule = match args.get_or("schedule", "linear".to_string())?.as_str() {
        "linear" => Schedule::WarmupLinear { warmup_ratio: 0.06 },
        "constant" => Schedule::Constant,
        other => return Err(format!("unknown --schedule `{other}` (linear, constant)").into()),
    };
    let seed: u64 = args.get_or("seed", 42)?;
    let config = LmTrainingConfig::new()
        .with_adapter(adapter)
        .with_optim(
            OptimConfig::new()
                .with_lr(args.get_or("lr", 1e-3)?)
                .with_schedule(schedule),
        )
        .with_epochs(args.get_or("epochs", 1)?)
        .with_batch_size(args.get_or("batch-size", 8)?)
        .with_grad_accumulation(args.get_or("grad-accumulation", 1)?)
        .with_seed(seed)
        .with_checkpoint_every(args.get_or("checkpoint-every", 200)?)
        .with_model_id(Some(model_spec.clone()))
        .with_log_every(args.get_or("log-every", 10)?);
    let overwrite = args.flag("overwrite");
    let prompt: String = args.get_or("prompt", "The".to_string())?;
    let generation = generation_from(&args, seed)?;
    let out: PathBuf = args.get_or("out", PathBuf::from(format!("runs/gpt2-lm-{method}")))?;
    args.finish()?;
    config.validate()?;
    generation.validate()?;

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
            "\nCtrl-C: stopping after the current step and checkpointing it (rerun the same \
             command to resume)..."
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
    let (trained, report) = match result {
        Ok(done) => done,
        Err(TrainError::RunFinished { epochs, .. }) => {
            common::print_finished_run(&out, epochs);
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
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
