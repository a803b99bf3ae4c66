//! Causal language modelling with adapters: a text corpus cut into fixed-size token blocks,
//! [`LmTask`] (a [`Gpt2Model`] as a burn-train task reporting loss and perplexity),
//! [`train_causal_lm`] through the run loop of [`crate::run`] that
//! [`crate::trainer::train_classifier`] uses too (Learner, checkpoints, resume, adapter files),
//! and [`evaluate_lm`].
//!
//! The data pipeline is
//! [`read_documents`] (plain text, blank-line paragraphs or JSON Lines) →
//! [`tokenize_documents`] (ids, the EOS token between documents) →
//! [`chunk_tokens`] (blocks of `block_size` tokens; the remainder is dropped or padded) →
//! [`LmBatcher`] → [`LmBatch`] tensors. [`load_lm_blocks`] runs the first three steps.
//!
//! Submodules: [`data`] (the pipeline above), [`task`] ([`LmTask`], [`LmOutput`]); their items
//! are re-exported here.

pub mod data;
pub mod task;

pub use data::{
    LmBatch, LmBatcher, LmBlock, LmData, Remainder, TextFormat, chunk_tokens, load_lm_blocks,
    parse_documents, read_documents, tokenize_documents,
};
pub use task::{LmOutput, LmTask};

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::config::Config;
use burn::data::dataloader::DataLoader;
use burn::module::Module;
use burn::train::metric::LossMetric;
use peft_core::{
    AdapterConfig, AdapterFile, AdapterMethod, DEFAULT_ADAPTER, MethodConfig, Setup, Trainable,
    add_adapter, attach_adapters, freeze_except, param_summary, remove_adapters, set_active,
};
use peft_models::gpt2::{Gpt2Model, causal_lm_loss, next_token_targets};
use serde::Serialize;

use crate::error::{Result, TrainError};
use crate::loader::{EpochLoader, EpochOrder};
use crate::optim::OptimConfig;
use crate::render::EpochSummary;
use crate::run::{
    Fingerprint, RunData, RunOptions, RunSpec, Trained, check_not_empty, fill_final, io_err,
    loop_config, save_adapter_artefact, train_task, training_device, write_json,
};

/// Settings of a causal-LM adapter training run.
#[derive(Config, Debug, PartialEq)]
pub struct LmTrainingConfig {
    /// The adapters (the base is frozen). Default: Pfeiffer, reduction factor 16.
    #[config(default = "AdapterConfig::pfeiffer(16.0)")]
    pub adapter: AdapterConfig,
    /// Train a named adapter of another method (LoRA, IA³) instead of [`Self::adapter`].
    /// Default: none.
    #[config(default = "None")]
    pub method: Option<MethodConfig>,
    /// Optimiser and schedule. Default: [`OptimConfig::new`].
    #[config(default = "OptimConfig::new()")]
    pub optim: OptimConfig,
    /// Number of epochs. Default: 1.
    #[config(default = 1)]
    pub epochs: usize,
    /// Training batch size (blocks). Default: 8.
    #[config(default = 8)]
    pub batch_size: usize,
    /// Evaluation batch size (blocks). Default: 16.
    #[config(default = 16)]
    pub eval_batch_size: usize,
    /// Gradient accumulation steps per optimiser step. Default: 1.
    #[config(default = 1)]
    pub grad_accumulation: usize,
    /// Seed for block order, dropout and fresh adapter weights. Default: 42.
    #[config(default = 42)]
    pub seed: u64,
    /// Print a progress line every this many batches (0: epoch summaries only). Default: 50.
    #[config(default = 50)]
    pub log_every: usize,
    /// Write a checkpoint every this many optimizer steps (0: only at epoch ends and on
    /// interruption, which always checkpoint). Default: 200.
    #[config(default = 200)]
    pub checkpoint_every: usize,
    /// The base model (Hub id or directory), recorded with each checkpoint so that resuming
    /// on another base is refused. Default: none.
    #[config(default = "None")]
    pub model_id: Option<String>,
    /// Continue from the last complete checkpoint in the output directory. `false` starts
    /// over: an earlier run's artefacts there are removed first. Default: true.
    #[config(default = true)]
    pub resume: bool,
}

impl LmTrainingConfig {
    /// Check the values.
    pub fn validate(&self) -> Result<()> {
        loop_config!(self).validate()?;
        self.adapter.validate()?;
        if let Some(method) = &self.method {
            method.validate()?;
        }
        self.optim.validate()
    }
}

/// Loss and perplexity of a model on blocks of text.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LmEvalReport {
    /// Mean next-token cross-entropy per target token (nats).
    pub loss: f64,
    /// `exp(loss)`.
    pub perplexity: f64,
    /// Target tokens evaluated.
    pub tokens: usize,
    /// Blocks evaluated.
    pub blocks: usize,
    /// Target tokens per second.
    pub tokens_per_sec: f64,
}

/// What a causal-LM training run produced.
#[derive(Clone, Debug, Serialize)]
pub struct LmTrainingReport {
    /// Method name.
    pub method: String,
    /// Trainable parameters (the adapters).
    pub trainable_params: usize,
    /// All parameters.
    pub total_params: usize,
    /// Adapters attached (count).
    pub adapters_attached: usize,
    /// Tokens per block.
    pub block_size: usize,
    /// Training blocks.
    pub train_blocks: usize,
    /// Validation blocks.
    pub valid_blocks: usize,
    /// Per-epoch numbers (epochs run in this process).
    pub epochs: Vec<EpochSummary>,
    /// The base model (no adapters) on the validation blocks.
    pub eval_before: LmEvalReport,
    /// The trained model on the validation blocks.
    pub final_eval: LmEvalReport,
    /// Wall-clock seconds of the run.
    pub seconds: f64,
    /// Epochs completed before this process, if it resumed a checkpoint.
    pub resumed_from_epoch: Option<usize>,
    /// Optimizer step of the checkpoint resumed, if it resumed one.
    pub resumed_from_step: Option<usize>,
    /// Optimizer steps done at the end (whole run).
    pub steps: usize,
    /// Whether the run was interrupted (Ctrl-C).
    pub interrupted: bool,
    /// The saved adapter directory.
    pub adapter_dir: PathBuf,
    /// Size in bytes of the saved weights file.
    pub adapter_bytes: u64,
}

/// Error unless every block fits `model` with a soft prompt of `prompt` positions in front:
/// 2 to `n_positions - prompt` tokens, a mask of the same length, ids inside the vocabulary.
fn check_blocks(model: &Gpt2Model, blocks: &[LmBlock], prompt: usize) -> Result<()> {
    let max = model.n_positions.saturating_sub(prompt);
    for (i, b) in blocks.iter().enumerate() {
        let bad = |m: String| Err(TrainError::InvalidConfig(format!("block {i}: {m}")));
        if b.len() < 2 || b.len() > max {
            return bad(format!(
                "{} tokens; blocks need 2 to n_positions - prompt = {} - {prompt} tokens",
                b.len(),
                model.n_positions
            ));
        }
        if b.attention_mask.len() != b.len() {
            return bad(format!(
                "attention mask has {} entries for {} tokens",
                b.attention_mask.len(),
                b.len()
            ));
        }
        if let Some(t) = b
            .input_ids
            .iter()
            .find(|&&t| t as usize >= model.vocab_size)
        {
            return bad(format!(
                "token id {t} is outside the vocabulary ({})",
                model.vocab_size
            ));
        }
    }
    Ok(())
}

/// Evaluate `model` (used in eval mode: no dropout) on `blocks`: the token-weighted mean
/// next-token cross-entropy and its perplexity.
///
/// # Errors
/// [`TrainError::InvalidConfig`] for no block, no target token, a zero batch size or a block
/// that does not fit the model.
pub fn evaluate_lm(
    model: &Gpt2Model,
    blocks: &[LmBlock],
    batch_size: usize,
) -> Result<LmEvalReport> {
    if blocks.is_empty() || batch_size == 0 {
        return Err(TrainError::InvalidConfig(
            "nothing to evaluate (no block or batch size 0)".into(),
        ));
    }
    check_blocks(model, blocks, model.prompt_len())?;
    let model = model.valid();
    let loader = EpochLoader::new(
        blocks.to_vec(),
        LmBatcher,
        batch_size,
        EpochOrder::Sequential,
        model.device(),
    );
    let started = Instant::now();
    let (mut nll, mut tokens) = (0.0f64, 0.0f64);
    for batch in loader.iter() {
        let batch = batch.map_err(|e| TrainError::Learner(e.to_string()))?;
        let out = model.forward(batch.input_ids.clone(), Some(batch.attention_mask.clone()));
        let count = next_token_targets(
            out.clone(),
            batch.input_ids.clone(),
            batch.attention_mask.clone(),
        )
        .map_or(0.0, |t| t.weights.float().sum().into_scalar::<f64>());
        let loss = causal_lm_loss(out, batch.input_ids, batch.attention_mask);
        nll += loss.into_scalar::<f64>() * count;
        tokens += count;
    }
    if tokens <= 0.0 {
        return Err(TrainError::InvalidConfig(
            "the blocks hold no target token".into(),
        ));
    }
    let loss = nll / tokens;
    Ok(LmEvalReport {
        loss,
        perplexity: loss.exp(),
        tokens: tokens as usize,
        blocks: blocks.len(),
        tokens_per_sec: tokens / started.elapsed().as_secs_f64().max(1e-9),
    })
}

/// Train bottleneck adapters on `model` (on an autodiff device, base loaded, no adapters yet)
/// as a causal language model on `data`, with burn-train's Learner.
///
/// Like [`crate::trainer::train_classifier`]: the base is frozen, checkpoints in
/// `out/checkpoints` (every `config.checkpoint_every` optimizer steps, at epoch ends and on
/// interruption) hold only the adapters (plus optimizer and schedule) and a run resumes
/// exactly from the last complete one (mid-epoch included); the adapters are saved to `out/adapter` (`out/adapter-interrupted`
/// after Ctrl-C), the configuration to `out/training_config.json` and an
/// [`LmTrainingReport`] (with the validation perplexity before and after) to
/// `out/metrics.json`. Metrics: `Loss`, `Perplexity`, `Learning Rate`.
///
/// # Errors
/// [`TrainError::InvalidConfig`] for an invalid configuration, empty data, blocks that do not fit
/// the model or a model not on an autodiff device; [`TrainError::RunFinished`] for a finished
/// run in `out` (unless `options.overwrite`); [`TrainError::ResumeMismatch`] when its checkpoint
/// was made with other settings; [`TrainError::SchedulerState`] / [`TrainError::Checkpoint`]
/// for a checkpoint that cannot be restored;
/// [`TrainError::NonFiniteLoss`] when the loss becomes NaN/inf; I/O, adapter and Learner errors.
pub fn train_causal_lm(
    model: Gpt2Model,
    data: &LmData,
    config: &LmTrainingConfig,
    out: impl AsRef<Path>,
    options: RunOptions,
) -> Result<(Gpt2Model, LmTrainingReport)> {
    config.validate()?;
    let out = out.as_ref();
    check_not_empty(&data.train, &data.valid)?;
    // A prompt-tuning prompt takes positions in front of every block.
    let prompt = match &config.method {
        Some(MethodConfig::PromptTuning(c)) => c.prompt_length,
        _ => 0,
    };
    check_blocks(&model, &data.train, prompt)?;
    check_blocks(&model, &data.valid, prompt)?;
    std::fs::create_dir_all(out).map_err(io_err(out))?;
    let started = Instant::now();
    let device = training_device(&model)?;
    let eval_before = evaluate_lm(&model, &data.valid, config.eval_batch_size)?;

    let mut fingerprint = Fingerprint::default();
    fingerprint.add([data.train.len() as u64]);
    for b in &data.train {
        fingerprint.add([b.len() as u64]);
        fingerprint.add(b.input_ids.iter().map(|&t| u64::from(t)));
        fingerprint.add(b.attention_mask.iter().map(|&t| u64::from(t)));
    }
    let signature = serde_json::json!({
        "task": "causal_lm",
        "method": match &config.method {
            Some(method) => serde_json::json!({ "named": method }),
            None => serde_json::json!(config.adapter),
        },
        "model": model.base_info(),
        "model_id": config.model_id,
        "batch_size": config.batch_size,
        "grad_accumulation": config.grad_accumulation,
        "optim": config.optim,
        "seed": config.seed,
        "data": fingerprint.hex(),
        "data_order": format!("shuffled({})", config.seed),
    });
    let trainable = Trainable::adapters();
    let spec = RunSpec {
        config: loop_config!(config),
        signature: &signature,
        trainable: &trainable,
        device: &device,
        out,
        options: &options,
    };
    let run_data = RunData {
        train: data.train.clone(),
        valid: data.valid.clone(),
        batcher: LmBatcher,
        order: EpochOrder::Shuffled { seed: config.seed },
    };
    let trained = train_task::<LmTask, _, _, _, _>(
        model,
        run_data,
        &spec,
        |mut model, device| {
            let attached = match &config.method {
                Some(method) => {
                    remove_adapters(&mut model);
                    let report = add_adapter(&mut model, DEFAULT_ADAPTER, method, device)?;
                    set_active(&mut model, Some(Setup::single(DEFAULT_ADAPTER)))?;
                    report
                }
                None => attach_adapters(&mut model, &config.adapter, device)?,
            };
            let model = freeze_except(model, &trainable)?;
            let summary = param_summary(&model, &trainable)?;
            Ok((model, (attached, summary)))
        },
        |training| training.metrics((LossMetric::new(), LmOutput::perplexity_metric())),
    )?;
    let Trained {
        model,
        prepared: (attached, summary),
        resumed,
        interrupted,
        steps,
        mut epochs,
        ..
    } = trained;

    // The final weights, scored once (the loop does not score the last epoch).
    let final_eval = evaluate_lm(&model, &data.valid, config.eval_batch_size)?;
    fill_final(&mut epochs, config.epochs, |e| {
        e.valid_loss = Some(final_eval.loss);
        e.valid_perplexity = Some(final_eval.perplexity);
    });

    // Artefacts.
    let method = match &config.method {
        Some(m) => AdapterMethod::of(m),
        None => AdapterMethod::Bottleneck(config.adapter.clone()),
    };
    let file = AdapterFile::new(method, model.base_info(), &trainable);
    let (adapter_dir, adapter_bytes) = save_adapter_artefact(&model, out, interrupted, &file)?;
    write_json(&out.join("training_config.json"), config)?;
    let placement = &config.adapter.placement;
    let report = LmTrainingReport {
        method: match &config.method {
            Some(method) => method.kind().name().to_string(),
            None => format!(
                "adapter ({} site{}, {:?})",
                placement.sites.len(),
                if placement.sites.len() == 1 { "" } else { "s" },
                placement.composition
            ),
        },
        trainable_params: summary.trainable,
        total_params: summary.total,
        adapters_attached: attached.attached.len(),
        block_size: data.train.iter().map(LmBlock::len).max().unwrap_or(0),
        train_blocks: data.train.len(),
        valid_blocks: data.valid.len(),
        epochs,
        eval_before,
        final_eval,
        seconds: started.elapsed().as_secs_f64(),
        resumed_from_epoch: resumed.as_ref().map(|s| s.epochs_done),
        resumed_from_step: resumed.as_ref().map(|s| s.step),
        steps,
        interrupted,
        adapter_dir,
        adapter_bytes,
    };
    write_json(&out.join("metrics.json"), &report)?;
    Ok((model, report))
}
