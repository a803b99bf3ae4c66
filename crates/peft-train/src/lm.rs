//! Causal language modelling with adapters: a text corpus cut into fixed-size token blocks,
//! [`LmTask`] (a [`Gpt2Model`] as a burn-train task reporting loss and perplexity),
//! [`train_causal_lm`] on the same Learner, checkpoint and adapter-file machinery as
//! [`crate::trainer::train_classifier`], and [`evaluate_lm`].
//!
//! The data pipeline is
//! [`read_documents`] (plain text, blank-line paragraphs or JSON Lines) →
//! [`tokenize_documents`] (ids, the EOS token between documents) →
//! [`chunk_tokens`] (blocks of `block_size` tokens; the remainder is dropped or padded) →
//! [`LmBatcher`] → [`LmBatch`] tensors. [`load_lm_blocks`] runs the first three steps.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use burn::config::Config;
use burn::data::dataloader::DataLoader;
use burn::data::dataloader::batcher::Batcher;
use burn::module::Module;
use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLearningRate;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, ExecutionError, Int, Tensor, TensorData};
use burn::train::metric::{
    Adaptor, ItemLazy, LossInput, LossMetric, PerplexityInput, PerplexityMetric,
};
use burn::train::{InferenceStep, Learner, SupervisedTraining, TrainOutput, TrainStep};
use peft_core::{
    AdapterConfig, AdapterFile, AdapterMethod, Trainable, attach_adapters, freeze_except,
    param_summary,
};
use peft_models::gpt2::{Gpt2Model, causal_lm_loss};
use peft_models::tokenizer::TextTokenizer;
use serde::Serialize;

use crate::data::lines_of;
use crate::error::{Result, TrainError};
use crate::loader::{EpochLoader, EpochOrder};
use crate::optim::OptimConfig;
use crate::render::EpochSummary;
use crate::task::{StepGuard, guarded_step};
use crate::trainer::{
    LaunchSettings, RunOptions, io_err, launch, resume_point, save_adapter_artefact,
    training_device, write_json,
};

// ---------------------------------------------------------------------------------------------
// Data
// ---------------------------------------------------------------------------------------------

/// How a corpus file is split into documents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TextFormat {
    /// The whole file is one document, kept verbatim (newlines included).
    Plain,
    /// Documents are separated by one or more blank (whitespace-only) lines; the lines of a
    /// document are joined with `\n`.
    Paragraphs,
    /// JSON Lines: one JSON object per line, the document in the string field `field`
    /// (Hugging Face datasets use `text`). Blank lines are skipped.
    JsonLines {
        /// The field holding the text.
        field: String,
    },
}

impl TextFormat {
    /// JSON Lines with the text in `field`.
    pub fn json_lines(field: impl Into<String>) -> Self {
        Self::JsonLines {
            field: field.into(),
        }
    }

    /// The format a file name suggests: `.jsonl` / `.ndjson` are JSON Lines with the field
    /// `text`, anything else is [`TextFormat::Plain`].
    pub fn from_path(path: impl AsRef<Path>) -> Self {
        let ext = path
            .as_ref()
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("jsonl") | Some("ndjson") => Self::json_lines("text"),
            _ => Self::Plain,
        }
    }
}

fn malformed(path: &Path, line: usize, message: String) -> TrainError {
    TrainError::MalformedRow {
        path: path.to_path_buf(),
        line,
        message,
    }
}

/// Read the documents of a corpus file. Empty documents are left out.
///
/// # Errors
/// - [`TrainError::Io`]: the file cannot be read.
/// - [`TrainError::EmptyData`]: no non-empty document.
/// - [`TrainError::MalformedRow`] (1-based line number): invalid UTF-8; for JSON Lines a line
///   that is not JSON, not an object, or lacks the string field.
pub fn read_documents(path: impl AsRef<Path>, format: &TextFormat) -> Result<Vec<String>> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    parse_documents(&bytes, path, format)
}

/// [`read_documents`] on bytes already read; `path` is only used in errors.
///
/// # Errors
/// As [`read_documents`], without [`TrainError::Io`].
pub fn parse_documents(bytes: &[u8], path: &Path, format: &TextFormat) -> Result<Vec<String>> {
    let mut docs = Vec::new();
    match format {
        TextFormat::Plain => {
            let text = std::str::from_utf8(bytes).map_err(|e| {
                let line = 1 + bytes[..e.valid_up_to()]
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count();
                malformed(path, line, format!("not valid UTF-8: {e}"))
            })?;
            docs.push(text.to_string());
        }
        TextFormat::Paragraphs => {
            let mut current: Vec<&str> = Vec::new();
            for line in lines_of(bytes, path) {
                let (_, text) = line?;
                if text.trim().is_empty() {
                    if !current.is_empty() {
                        docs.push(current.join("\n"));
                        current.clear();
                    }
                } else {
                    current.push(text);
                }
            }
            if !current.is_empty() {
                docs.push(current.join("\n"));
            }
        }
        TextFormat::JsonLines { field } => {
            for line in lines_of(bytes, path) {
                let (n, text) = line?;
                if text.trim().is_empty() {
                    continue;
                }
                let value: serde_json::Value = serde_json::from_str(text)
                    .map_err(|e| malformed(path, n, format!("invalid JSON: {e}")))?;
                let object = value.as_object().ok_or_else(|| {
                    malformed(path, n, "expected a JSON object per line".to_string())
                })?;
                let doc = match object.get(field) {
                    Some(serde_json::Value::String(s)) => s.clone(),
                    Some(other) => {
                        return Err(malformed(
                            path,
                            n,
                            format!("field `{field}` is not a string: {other}"),
                        ));
                    }
                    None => {
                        return Err(malformed(path, n, format!("missing field `{field}`")));
                    }
                };
                docs.push(doc);
            }
        }
    }
    docs.retain(|d| !d.is_empty());
    if docs.is_empty() {
        return Err(TrainError::EmptyData {
            path: path.to_path_buf(),
        });
    }
    Ok(docs)
}

/// Token ids of `docs` concatenated, with `eos_id` between consecutive documents (GPT-2's
/// `<|endoftext|>` is 50256). No special tokens are added otherwise
/// ([`TextTokenizer::encode_plain`]).
///
/// # Errors
/// [`TrainError::Model`] when the tokenizer fails.
pub fn tokenize_documents(
    docs: &[String],
    tokenizer: &TextTokenizer,
    eos_id: u32,
) -> Result<Vec<u32>> {
    let mut tokens = Vec::new();
    for (i, doc) in docs.iter().enumerate() {
        if i > 0 {
            tokens.push(eos_id);
        }
        tokens.extend(tokenizer.encode_plain(doc)?);
    }
    Ok(tokens)
}

/// What happens to the tokens after the last full block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Remainder {
    /// Leave them out (Hugging Face `run_clm`'s `group_texts`).
    Drop,
    /// Keep them in a last block filled up with `pad_id` and attention mask 0: the padding is
    /// neither attended to nor predicted. A remainder of a single token is still dropped (it
    /// predicts nothing).
    Pad {
        /// The id written at padding positions (any id in the vocabulary; GPT-2 has no pad
        /// token, its EOS is the usual choice).
        pad_id: u32,
    },
}

/// One training sequence: `block_size` token ids and their attention mask (1 = token,
/// 0 = padding).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LmBlock {
    /// Token ids.
    pub input_ids: Vec<u32>,
    /// 1 for tokens, 0 for padding; as long as `input_ids`.
    pub attention_mask: Vec<u32>,
}

impl LmBlock {
    /// A block of real tokens only (mask all ones).
    pub fn new(input_ids: Vec<u32>) -> Self {
        let attention_mask = vec![1; input_ids.len()];
        Self {
            input_ids,
            attention_mask,
        }
    }

    /// Number of tokens (padding included).
    pub fn len(&self) -> usize {
        self.input_ids.len()
    }

    /// Whether the block holds no position at all.
    pub fn is_empty(&self) -> bool {
        self.input_ids.is_empty()
    }

    /// Number of next-token targets: real tokens after the first position.
    pub fn targets(&self) -> usize {
        self.attention_mask
            .iter()
            .skip(1)
            .filter(|&&m| m != 0)
            .count()
    }
}

/// Cut `tokens` into blocks of `block_size` tokens; see [`Remainder`] for the rest.
///
/// # Errors
/// [`TrainError::InvalidConfig`] when `block_size < 2` (a block needs a token to predict).
pub fn chunk_tokens(
    tokens: &[u32],
    block_size: usize,
    remainder: Remainder,
) -> Result<Vec<LmBlock>> {
    if block_size < 2 {
        return Err(TrainError::InvalidConfig(format!(
            "block_size must be at least 2, got {block_size}"
        )));
    }
    let mut blocks: Vec<LmBlock> = tokens
        .chunks_exact(block_size)
        .map(|c| LmBlock::new(c.to_vec()))
        .collect();
    let rest = tokens.chunks_exact(block_size).remainder();
    if let Remainder::Pad { pad_id } = remainder
        && rest.len() >= 2
    {
        let mut input_ids = rest.to_vec();
        let mut attention_mask = vec![1; rest.len()];
        input_ids.resize(block_size, pad_id);
        attention_mask.resize(block_size, 0);
        blocks.push(LmBlock {
            input_ids,
            attention_mask,
        });
    }
    Ok(blocks)
}

/// Read, tokenize and chunk a corpus file: [`read_documents`], [`tokenize_documents`],
/// [`chunk_tokens`].
///
/// # Errors
/// As those functions; [`TrainError::EmptyData`] when the text has no token, and
/// [`TrainError::InvalidConfig`] when it is too short for a single block.
pub fn load_lm_blocks(
    path: impl AsRef<Path>,
    format: &TextFormat,
    tokenizer: &TextTokenizer,
    eos_id: u32,
    block_size: usize,
    remainder: Remainder,
) -> Result<Vec<LmBlock>> {
    let path = path.as_ref();
    let docs = read_documents(path, format)?;
    let tokens = tokenize_documents(&docs, tokenizer, eos_id)?;
    if tokens.is_empty() {
        return Err(TrainError::EmptyData {
            path: path.to_path_buf(),
        });
    }
    let blocks = chunk_tokens(&tokens, block_size, remainder)?;
    if blocks.is_empty() {
        return Err(TrainError::InvalidConfig(format!(
            "{} has {} tokens, fewer than one block of {block_size}: use a smaller block size \
             or pad the remainder",
            path.display(),
            tokens.len()
        )));
    }
    Ok(blocks)
}

/// Training and validation blocks of a language-modelling run.
#[derive(Clone, Debug, Default)]
pub struct LmData {
    /// Training blocks.
    pub train: Vec<LmBlock>,
    /// Validation blocks.
    pub valid: Vec<LmBlock>,
}

impl LmData {
    /// Hold out the last `valid_fraction` of `blocks` (at least one block) for validation.
    ///
    /// # Errors
    /// [`TrainError::InvalidConfig`] for fewer than two blocks or a fraction outside `(0, 1)`.
    pub fn split(mut blocks: Vec<LmBlock>, valid_fraction: f64) -> Result<Self> {
        if !(valid_fraction > 0.0 && valid_fraction < 1.0) {
            return Err(TrainError::InvalidConfig(format!(
                "valid_fraction must be in (0, 1), got {valid_fraction}"
            )));
        }
        let n = blocks.len();
        if n < 2 {
            return Err(TrainError::InvalidConfig(format!(
                "{n} block(s) cannot be split into training and validation data: use more text \
                 or a smaller block size"
            )));
        }
        let valid = ((n as f64 * valid_fraction).round() as usize).clamp(1, n - 1);
        let valid = blocks.split_off(n - valid);
        Ok(Self {
            train: blocks,
            valid,
        })
    }
}

/// A batch of blocks for causal language modelling.
#[derive(Clone, Debug)]
pub struct LmBatch {
    /// Token ids `[batch, seq]`.
    pub input_ids: Tensor<2, Int>,
    /// 1 for tokens, 0 for padding, `[batch, seq]`.
    pub attention_mask: Tensor<2, Int>,
}

/// Stacks [`LmBlock`]s into an [`LmBatch`]. Blocks of one run have the same length; shorter
/// ones would be right-padded with id 0 and mask 0 to the longest of the batch. Never fails.
#[derive(Clone, Copy, Debug, Default)]
pub struct LmBatcher;

impl Batcher<LmBlock, LmBatch> for LmBatcher {
    fn batch(&self, items: Vec<LmBlock>, device: &Device) -> LmBatch {
        let batch = items.len();
        let seq = items.iter().map(LmBlock::len).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(batch * seq);
        let mut mask = Vec::with_capacity(batch * seq);
        for item in &items {
            for j in 0..seq {
                ids.push(item.input_ids.get(j).map_or(0, |&t| i64::from(t)));
                mask.push(item.attention_mask.get(j).map_or(0, |&m| i64::from(m)));
            }
        }
        LmBatch {
            input_ids: Tensor::from_data(TensorData::new(ids, [batch, seq]), device),
            attention_mask: Tensor::from_data(TensorData::new(mask, [batch, seq]), device),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Task and metrics
// ---------------------------------------------------------------------------------------------

/// The output of an LM step, for burn-train's [`LossMetric`] and [`PerplexityMetric`].
///
/// burn's `SequenceOutput` would hand the metric every position, padding included, and
/// `PerplexityMetric` can only skip padding by a target id (which would also skip real
/// occurrences of that id). The [`PerplexityInput`] built here instead has two "classes" per
/// predicted position: `[log p, log(1 - p)]`, with `p` the model's probability of the true next
/// token, so the metric's `log_softmax` gives back exactly `log p` for class 0; masked targets
/// get class [`LmOutput::MASKED_TARGET`], which [`LmOutput::perplexity_metric`] skips. The
/// metric's epoch value is then `exp(total NLL / real targets)`, the same token-weighted
/// perplexity as [`evaluate_lm`].
#[derive(Debug)]
pub struct LmOutput {
    /// Mean next-token cross-entropy over the real targets, `[1]`.
    pub loss: Tensor<1>,
    /// Next-token logits `[batch, seq, vocab]`.
    pub logits: Tensor<3>,
    /// Token ids `[batch, seq]` (the targets, shifted by one).
    pub input_ids: Tensor<2, Int>,
    /// 1 for tokens, 0 for padding, `[batch, seq]`.
    pub attention_mask: Tensor<2, Int>,
}

impl LmOutput {
    /// The perplexity-input class of positions whose target is padding.
    pub const MASKED_TARGET: usize = 1;

    /// burn-train's perplexity metric set up for this output (skipping padding targets).
    pub fn perplexity_metric() -> PerplexityMetric {
        PerplexityMetric::new().with_pad_token(Self::MASKED_TARGET)
    }
}

impl ItemLazy for LmOutput {
    fn sync(self) -> std::result::Result<Self, ExecutionError> {
        // As burn's own outputs: no read-back, leave the autodiff graph.
        self.loss.device().flush()?;
        Ok(Self {
            loss: self.loss.without_autodiff(),
            logits: self.logits.without_autodiff(),
            input_ids: self.input_ids.without_autodiff(),
            attention_mask: self.attention_mask.without_autodiff(),
        })
    }
}

impl Adaptor<LossInput> for LmOutput {
    fn adapt(&self) -> LossInput {
        LossInput::new(self.loss.clone())
    }
}

impl Adaptor<PerplexityInput> for LmOutput {
    fn adapt(&self) -> PerplexityInput {
        let [b, s, _] = self.logits.dims();
        let device = self.logits.device();
        if s < 2 || b == 0 {
            // Nothing to predict: one masked row.
            return PerplexityInput::new(
                Tensor::zeros([1, 2], &device),
                Tensor::from_data(
                    TensorData::new(vec![Self::MASKED_TARGET as i64], [1]),
                    &device,
                ),
            );
        }
        let n = b * (s - 1);
        let log_probs = log_softmax(self.logits.clone().narrow(1, 0, s - 1), 2);
        let targets = self
            .input_ids
            .clone()
            .narrow(1, 1, s - 1)
            .reshape([b, s - 1, 1]);
        let log_p: Tensor<1> = log_probs.gather(2, targets).reshape([n]);
        // log(1 - p); -inf when p rounds to 1, clamped so log_softmax stays finite.
        let log_not_p = log_p.clone().exp().neg().log1p().clamp_min(-1.0e4);
        let outputs: Tensor<2> = Tensor::stack(vec![log_p, log_not_p], 1);
        let masked = self
            .attention_mask
            .clone()
            .narrow(1, 1, s - 1)
            .reshape([n])
            .equal_elem(0)
            .int();
        PerplexityInput::new(outputs, masked)
    }
}

/// A [`Gpt2Model`] as a burn-train causal-LM task.
#[derive(Module, Debug)]
pub struct LmTask {
    /// The model (frozen base, trainable adapters).
    pub model: Gpt2Model,
    /// Clipping, loss scaling, non-finite guard.
    #[module(skip)]
    pub guard: StepGuard,
}

impl LmTask {
    /// Wrap a model.
    pub fn new(model: Gpt2Model, guard: StepGuard) -> Self {
        Self { model, guard }
    }

    /// Logits `[batch, seq, vocab]` and the mean next-token cross-entropy `[1]` over the real
    /// targets of a batch (`input_ids`, `attention_mask`: `[batch, seq]`,
    /// `seq <= n_positions`).
    pub fn forward_lm(&self, batch: LmBatch) -> LmOutput {
        let LmBatch {
            input_ids,
            attention_mask,
        } = batch;
        let logits = self
            .model
            .forward(input_ids.clone(), Some(attention_mask.clone()));
        let loss = causal_lm_loss(logits.clone(), input_ids.clone(), attention_mask.clone());
        LmOutput {
            loss,
            logits,
            input_ids,
            attention_mask,
        }
    }
}

impl TrainStep for LmTask {
    type Input = LmBatch;
    type Output = LmOutput;

    fn step(&self, batch: LmBatch) -> TrainOutput<LmOutput> {
        let out = self.forward_lm(batch);
        let loss = self.guard.scale_loss(out.loss.clone());
        TrainOutput::new(self, loss.backward(), out)
    }

    fn optimize(
        self,
        optim: &mut ModuleOptimizer,
        lr: ModuleLearningRate,
        grads: GradientsParams,
    ) -> Self {
        let guard = self.guard.clone();
        guarded_step(self, optim, lr, grads, &guard)
    }
}

impl InferenceStep for LmTask {
    type Input = LmBatch;
    type Output = LmOutput;

    fn step(&self, batch: LmBatch) -> LmOutput {
        self.forward_lm(batch)
    }
}

// ---------------------------------------------------------------------------------------------
// Training and evaluation
// ---------------------------------------------------------------------------------------------

/// Settings of a causal-LM adapter training run.
#[derive(Config, Debug, PartialEq)]
pub struct LmTrainingConfig {
    /// The adapters (the base is frozen). Default: Pfeiffer, reduction factor 16.
    #[config(default = "AdapterConfig::pfeiffer(16.0)")]
    pub adapter: AdapterConfig,
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
    /// Continue from the last complete checkpoint in the output directory. Default: true.
    #[config(default = true)]
    pub resume: bool,
}

impl LmTrainingConfig {
    /// Check the values.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(TrainError::InvalidConfig(m.to_string()));
        if self.epochs == 0 {
            return bad("epochs must be at least 1");
        }
        if self.batch_size == 0 || self.eval_batch_size == 0 {
            return bad("batch sizes must be at least 1");
        }
        if self.grad_accumulation == 0 {
            return bad("grad_accumulation must be at least 1");
        }
        self.adapter.validate()?;
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
    /// Epoch the run resumed after, if it resumed.
    pub resumed_from_epoch: Option<usize>,
    /// Whether the run was interrupted (Ctrl-C).
    pub interrupted: bool,
    /// The saved adapter directory.
    pub adapter_dir: PathBuf,
    /// Size in bytes of the saved weights file.
    pub adapter_bytes: u64,
}

/// Error unless every block fits `model`: 2 to `n_positions` tokens, a mask of the same
/// length, ids inside the vocabulary.
fn check_blocks(model: &Gpt2Model, blocks: &[LmBlock]) -> Result<()> {
    for (i, b) in blocks.iter().enumerate() {
        let bad = |m: String| Err(TrainError::InvalidConfig(format!("block {i}: {m}")));
        if b.len() < 2 || b.len() > model.n_positions {
            return bad(format!(
                "{} tokens; blocks need 2 to n_positions = {} tokens",
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
    check_blocks(model, blocks)?;
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
        let [_, s] = batch.input_ids.dims();
        let count = batch
            .attention_mask
            .clone()
            .narrow(1, 1, s - 1)
            .float()
            .sum()
            .into_scalar::<f64>();
        let out = model.forward(batch.input_ids.clone(), Some(batch.attention_mask.clone()));
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
/// `out/checkpoints` hold only the adapters (plus optimizer and schedule) and a run resumes
/// from the last complete one; the adapters are saved to `out/adapter` (`out/adapter-interrupted`
/// after Ctrl-C), the configuration to `out/training_config.json` and an
/// [`LmTrainingReport`] (with the validation perplexity before and after) to
/// `out/metrics.json`. Metrics: `Loss`, `Perplexity`, `Learning Rate`.
///
/// # Errors
/// [`TrainError::InvalidConfig`] for an invalid configuration, empty data, blocks that do not fit
/// the model, a model not on an autodiff device or a finished run in `out`;
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
    if data.train.is_empty() || data.valid.is_empty() {
        return Err(TrainError::InvalidConfig(
            "training and validation data must not be empty".into(),
        ));
    }
    check_blocks(&model, &data.train)?;
    check_blocks(&model, &data.valid)?;
    std::fs::create_dir_all(out).map_err(io_err(out))?;
    let started = Instant::now();
    let device = training_device(&model)?;
    let eval_before = evaluate_lm(&model, &data.valid, config.eval_batch_size)?;

    device.seed(config.seed);
    let mut model = model;
    let attached = attach_adapters(&mut model, &config.adapter, &device)?;
    let trainable = Trainable::adapters();
    let model = freeze_except(model, &trainable)?;
    let summary = param_summary(&model, &trainable)?;

    let ckpt_dir = out.join("checkpoints");
    let resume_epoch = resume_point(out, &ckpt_dir, config.resume, config.epochs)?;
    let train_loader = EpochLoader::new(
        data.train.clone(),
        LmBatcher,
        config.batch_size,
        EpochOrder::Shuffled { seed: config.seed },
        device.clone(),
    )
    .with_device_reseed(config.seed)
    .starting_at_epoch(resume_epoch.unwrap_or(0));
    let total_steps = config.epochs
        * train_loader
            .num_batches()
            .div_ceil(config.grad_accumulation);
    let valid_loader = EpochLoader::new(
        data.valid.clone(),
        LmBatcher,
        config.eval_batch_size,
        EpochOrder::Sequential,
        device.clone(),
    );

    let interrupter = options.interrupter.clone().unwrap_or_default();
    let guard = StepGuard::new(
        config.optim.max_grad_norm,
        config.grad_accumulation,
        Some(interrupter.clone()),
    );
    let task = LmTask::new(model, guard.clone());
    let training = SupervisedTraining::new(out, Arc::new(train_loader), Arc::new(valid_loader))
        .metrics((LossMetric::new(), LmOutput::perplexity_metric()));
    let launched = launch(
        training,
        Learner::new(
            task,
            config.optim.optimizer(),
            config.optim.scheduler(total_steps),
        ),
        &LaunchSettings {
            epochs: config.epochs,
            grad_accumulation: config.grad_accumulation,
            log_every: config.log_every,
            resume_epoch,
            ckpt_dir: &ckpt_dir,
            trainable: &trainable,
            interrupter: &interrupter,
            guard: &guard,
            quiet: options.quiet,
        },
    )?;
    let interrupted = launched.interrupted;
    let model = launched.task.model;

    // Artefacts.
    let final_eval = evaluate_lm(&model, &data.valid, config.eval_batch_size)?;
    let file = AdapterFile::new(
        AdapterMethod::Bottleneck(config.adapter.clone()),
        model.base_info(),
        &trainable,
    );
    let (adapter_dir, adapter_bytes) = save_adapter_artefact(&model, out, interrupted, &file)?;
    write_json(&out.join("training_config.json"), config)?;
    let placement = &config.adapter.placement;
    let report = LmTrainingReport {
        method: format!(
            "adapter ({} site{}, {:?})",
            placement.sites.len(),
            if placement.sites.len() == 1 { "" } else { "s" },
            placement.composition
        ),
        trainable_params: summary.trainable,
        total_params: summary.total,
        adapters_attached: attached.attached.len(),
        block_size: data.train.iter().map(LmBlock::len).max().unwrap_or(0),
        train_blocks: data.train.len(),
        valid_blocks: data.valid.len(),
        epochs: launched.epochs,
        eval_before,
        final_eval,
        seconds: started.elapsed().as_secs_f64(),
        resumed_from_epoch: resume_epoch,
        interrupted,
        adapter_dir,
        adapter_bytes,
    };
    write_json(&out.join("metrics.json"), &report)?;
    Ok((model, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path() -> PathBuf {
        PathBuf::from("corpus")
    }

    #[test]
    fn jsonl_errors_carry_line_numbers() {
        let format = TextFormat::json_lines("text");
        let ok = b"{\"text\": \"a\"}\n\n{\"text\": \"b\", \"id\": 3}\r\n";
        assert_eq!(
            parse_documents(ok, &path(), &format).ok(),
            Some(vec!["a".to_string(), "b".to_string()])
        );
        let cases: [(&[u8], usize, &str); 4] = [
            (b"{\"text\": \"a\"}\n{\"text\": \n", 2, "invalid JSON"),
            (b"{\"text\": \"a\"}\n\n[1, 2]\n", 3, "object"),
            (b"{\"body\": \"a\"}\n", 1, "missing field `text`"),
            (b"{\"text\": \"a\"}\n{\"text\": 5}\n", 2, "not a string"),
        ];
        for (bytes, want_line, want) in cases {
            match parse_documents(bytes, &path(), &format) {
                Err(TrainError::MalformedRow { line, message, .. }) => {
                    assert_eq!(line, want_line, "{message}");
                    assert!(message.contains(want), "{message}");
                }
                other => panic!("expected MalformedRow, got {other:?}"),
            }
        }
        assert!(matches!(
            parse_documents(b"\n{\"text\": \"\"}\n", &path(), &format),
            Err(TrainError::EmptyData { .. })
        ));
    }

    #[test]
    fn plain_and_paragraph_documents() {
        let text = b"one\ntwo\n\n \nthree\n";
        assert_eq!(
            parse_documents(text, &path(), &TextFormat::Plain).ok(),
            Some(vec!["one\ntwo\n\n \nthree\n".to_string()])
        );
        assert_eq!(
            parse_documents(text, &path(), &TextFormat::Paragraphs).ok(),
            Some(vec!["one\ntwo".to_string(), "three".to_string()])
        );
        match parse_documents(b"ok\n\xff\n", &path(), &TextFormat::Plain) {
            Err(TrainError::MalformedRow { line, .. }) => assert_eq!(line, 2),
            other => panic!("expected MalformedRow, got {other:?}"),
        }
        assert!(matches!(
            parse_documents(b"", &path(), &TextFormat::Plain),
            Err(TrainError::EmptyData { .. })
        ));
        assert_eq!(
            TextFormat::from_path("a/b.JSONL"),
            TextFormat::json_lines("text")
        );
        assert_eq!(TextFormat::from_path("a/b.txt"), TextFormat::Plain);
    }

    #[test]
    fn chunking_drops_or_pads_the_remainder() {
        let tokens: Vec<u32> = (0..11).collect();
        let drop = chunk_tokens(&tokens, 4, Remainder::Drop).unwrap_or_default();
        assert_eq!(drop.len(), 2);
        assert_eq!(drop[1].input_ids, vec![4, 5, 6, 7]);
        assert_eq!(drop[1].targets(), 3);
        let pad = chunk_tokens(&tokens, 4, Remainder::Pad { pad_id: 99 }).unwrap_or_default();
        assert_eq!(pad.len(), 3);
        assert_eq!(pad[2].input_ids, vec![8, 9, 10, 99]);
        assert_eq!(pad[2].attention_mask, vec![1, 1, 1, 0]);
        assert_eq!(pad[2].targets(), 2);
        // A single leftover token predicts nothing and is dropped even with padding.
        let one = chunk_tokens(&tokens[..9], 4, Remainder::Pad { pad_id: 0 }).unwrap_or_default();
        assert_eq!(one.len(), 2);
        assert!(chunk_tokens(&tokens, 1, Remainder::Drop).is_err());
    }

    #[test]
    fn split_holds_out_the_tail() {
        let blocks: Vec<LmBlock> = (0..10).map(|i| LmBlock::new(vec![i, i])).collect();
        let data = LmData::split(blocks.clone(), 0.2).unwrap_or_default();
        assert_eq!((data.train.len(), data.valid.len()), (8, 2));
        assert_eq!(data.valid[0].input_ids, vec![8, 8]);
        assert!(LmData::split(blocks[..1].to_vec(), 0.5).is_err());
        assert!(LmData::split(blocks, 1.0).is_err());
    }

    #[test]
    fn perplexity_input_reproduces_the_masked_loss() {
        use burn::train::metric::{Metric, MetricMetadata, Numeric};
        let device = Device::flex();
        let logits: Tensor<3> = Tensor::random(
            [2, 5, 7],
            burn::tensor::Distribution::Normal(0.0, 2.0),
            &device,
        );
        let ids = Tensor::<2, Int>::from_data(
            TensorData::new(vec![1i64, 4, 6, 0, 2, 3, 3, 5, 0, 0], [2, 5]),
            &device,
        );
        let mask = Tensor::<2, Int>::from_data(
            TensorData::new(vec![1i64, 1, 1, 1, 1, 1, 1, 1, 0, 0], [2, 5]),
            &device,
        );
        let loss = causal_lm_loss(logits.clone(), ids.clone(), mask.clone());
        let out = LmOutput {
            loss: loss.clone(),
            logits,
            input_ids: ids,
            attention_mask: mask,
        };
        let mut metric = LmOutput::perplexity_metric();
        let input: PerplexityInput = out.adapt();
        let metadata = MetricMetadata {
            progress: burn::data::dataloader::Progress::new(1, 1, None),
            iteration: Some(0),
            lr: None,
        };
        let updated = metric.update(&input, &metadata);
        assert!(updated.is_ok());
        let ppl = metric.final_value().current();
        let want = loss.into_scalar::<f64>().exp();
        assert!(
            (ppl - want).abs() < 1e-4 * want,
            "metric {ppl} vs exp(loss) {want}"
        );
    }
}
