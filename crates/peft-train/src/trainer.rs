//! Adapter training for sequence classification with burn-train's `SupervisedTraining` +
//! `Learner`, and evaluation of a trained model. The run machinery shared with
//! [`crate::lm::train_causal_lm`] (device and resume checks, checkpointers, renderer, launch,
//! adapter artefact) lives here as crate-private helpers.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::config::Config;
use burn::module::Module;
use burn::tensor::Device;
use burn::train::checkpoint::FileCheckpointer;
use burn::train::metric::store::{Aggregate, Direction, Split};
use burn::train::metric::{AccuracyMetric, LearningRateMetric, LossMetric};
use burn::train::{
    InferenceStep, Interrupter, Learner, LearnerModel, MetricEarlyStoppingStrategy,
    StoppingCondition, SupervisedTraining,
};
use peft_core::{
    AdapterConfig, AdapterFile, AdapterMethod, AttachReport, ParamSummary, Trainable,
    attach_adapters, freeze_except, param_summary, save_adapter,
};
use peft_models::head::{BertClassifier, HEAD_PATTERN};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{AdapterCheckpointer, last_complete_epoch};
use crate::data::{ClassificationBatcher, EncodedItem, shuffled_indices};
use crate::error::{Result, TrainError};
use crate::loader::{EpochLoader, EpochOrder};
use crate::optim::OptimConfig;
use crate::render::{EpochSummary, ProgressRenderer};
use crate::task::{ClassificationTask, StepGuard};
use burn::data::dataloader::DataLoader;

/// What trains.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TrainingMethod {
    /// Bottleneck adapters (and the head); the base is frozen.
    Adapter {
        /// The adapter setup.
        config: AdapterConfig,
    },
    /// Only the head; the base is frozen.
    HeadOnly,
    /// Every parameter (full fine-tuning, the baseline).
    Full,
}

impl TrainingMethod {
    /// The parameters that train (and are saved).
    pub fn trainable(&self) -> Trainable {
        match self {
            Self::Adapter { .. } => BertClassifier::adapter_trainable(),
            Self::HeadOnly => Trainable::none().with_pattern(HEAD_PATTERN),
            Self::Full => Trainable::none().with_pattern(".*"),
        }
    }

    /// A short name for reports.
    pub fn name(&self) -> String {
        match self {
            Self::Adapter { config } => format!(
                "adapter ({} site{}, {:?})",
                config.placement.sites.len(),
                if config.placement.sites.len() == 1 {
                    ""
                } else {
                    "s"
                },
                config.placement.composition
            ),
            Self::HeadOnly => "head-only".into(),
            Self::Full => "full".into(),
        }
    }
}

/// Settings of a classification training run.
#[derive(Config, Debug, PartialEq)]
pub struct ClassifierTrainingConfig {
    /// What trains. Default: Pfeiffer adapters, reduction factor 16.
    #[config(default = "TrainingMethod::Adapter { config: AdapterConfig::pfeiffer(16.0) }")]
    pub method: TrainingMethod,
    /// Optimiser and schedule. Default: [`OptimConfig::new`].
    #[config(default = "OptimConfig::new()")]
    pub optim: OptimConfig,
    /// Number of epochs. Default: 1.
    #[config(default = 1)]
    pub epochs: usize,
    /// Training batch size. Default: 32.
    #[config(default = 32)]
    pub batch_size: usize,
    /// Evaluation batch size. Default: 64.
    #[config(default = 64)]
    pub eval_batch_size: usize,
    /// Gradient accumulation steps per optimiser step. Default: 1.
    #[config(default = 1)]
    pub grad_accumulation: usize,
    /// Stop each epoch after this many batches (the first ones of the epoch order). Default: none.
    #[config(default = "None")]
    pub max_steps: Option<usize>,
    /// Seed for data order, dropout and fresh weights. Default: 42.
    #[config(default = 42)]
    pub seed: u64,
    /// Print a progress line every this many batches (0: epoch summaries only). Default: 50.
    #[config(default = 50)]
    pub log_every: usize,
    /// Stop when validation accuracy has not improved for this many epochs. Default: none.
    #[config(default = "None")]
    pub early_stopping_patience: Option<usize>,
    /// Continue from the last complete checkpoint in the output directory. Default: true.
    #[config(default = true)]
    pub resume: bool,
}

impl ClassifierTrainingConfig {
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
        if self.max_steps == Some(0) {
            return bad("max_steps must be at least 1");
        }
        if let TrainingMethod::Adapter { config } = &self.method {
            config.validate()?;
        }
        self.optim.validate()
    }
}

/// Data for a classification run, tokenized.
#[derive(Clone, Debug, Default)]
pub struct ClassificationData {
    /// Training examples.
    pub train: Vec<EncodedItem>,
    /// Validation examples.
    pub valid: Vec<EncodedItem>,
    /// Order of the first epoch (e.g. the PyTorch peer's permutation); later epochs shuffle
    /// from the seed.
    pub first_epoch_order: Option<Vec<usize>>,
}

/// Options that are not part of the recorded configuration.
#[derive(Clone, Default)]
pub struct RunOptions {
    /// Stops training when triggered (Ctrl-C); a fresh one is used if absent.
    pub interrupter: Option<Interrupter>,
    /// Print nothing (tests).
    pub quiet: bool,
}

/// Accuracy and loss of a model on a data set.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct EvalReport {
    /// Accuracy in percent.
    pub accuracy: f64,
    /// Correct predictions.
    pub correct: usize,
    /// Examples evaluated.
    pub examples: usize,
    /// Mean cross-entropy.
    pub loss: f64,
    /// Examples per second.
    pub examples_per_sec: f64,
}

/// What a training run produced.
#[derive(Clone, Debug, Serialize)]
pub struct TrainingReport {
    /// Method name.
    pub method: String,
    /// Trainable vs total parameters.
    pub trainable_params: usize,
    /// All parameters.
    pub total_params: usize,
    /// Adapters attached (count).
    pub adapters_attached: usize,
    /// Per-epoch numbers (epochs run in this process).
    pub epochs: Vec<EpochSummary>,
    /// Final evaluation on the validation set.
    pub final_eval: EvalReport,
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

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let bytes =
        serde_json::to_vec_pretty(value).map_err(|e| TrainError::InvalidConfig(e.to_string()))?;
    peft_core::file::write_atomic(path, &bytes).map_err(TrainError::from)
}

/// The device `model` lives on, which must be an autodiff device.
pub(crate) fn training_device<M: Module>(model: &M) -> Result<Device> {
    let device = model
        .devices()
        .first()
        .cloned()
        .ok_or_else(|| TrainError::InvalidConfig("model has no parameters".into()))?;
    if !device.is_autodiff() {
        return Err(TrainError::InvalidConfig(
            "training needs the model on an autodiff device (`device.autodiff()`)".into(),
        ));
    }
    Ok(device)
}

/// The epoch to resume after: the last complete checkpoint in `ckpt_dir` when `resume` is set.
/// An error when that checkpoint is already at `epochs` or beyond.
pub(crate) fn resume_point(
    out: &Path,
    ckpt_dir: &Path,
    resume: bool,
    epochs: usize,
) -> Result<Option<usize>> {
    if !resume {
        return Ok(None);
    }
    match last_complete_epoch(ckpt_dir) {
        Some(done) if done >= epochs => Err(TrainError::InvalidConfig(format!(
            "{} already holds a checkpoint of epoch {done}; ask for more epochs or use another output directory",
            out.display()
        ))),
        other => Ok(other),
    }
}

/// What [`launch`] needs besides the training builder and the learner.
pub(crate) struct LaunchSettings<'a> {
    /// Number of epochs.
    pub epochs: usize,
    /// Gradient accumulation steps per optimiser step.
    pub grad_accumulation: usize,
    /// Progress line every this many batches (0: epoch summaries only).
    pub log_every: usize,
    /// Resume after this epoch.
    pub resume_epoch: Option<usize>,
    /// Checkpoint directory.
    pub ckpt_dir: &'a Path,
    /// The tensors the model checkpoints keep.
    pub trainable: &'a Trainable,
    /// Stops training (Ctrl-C, non-finite loss).
    pub interrupter: &'a Interrupter,
    /// The guard the task steps with, checked for a non-finite loss afterwards.
    pub guard: &'a StepGuard,
    /// Print nothing.
    pub quiet: bool,
}

/// What [`launch`] returns.
pub(crate) struct Launched<M> {
    /// The trained task.
    pub task: M,
    /// Whether the run was interrupted.
    pub interrupted: bool,
    /// The epoch summaries of the epochs run in this process.
    pub epochs: Vec<EpochSummary>,
}

/// The part of a run every task shares: add the learning-rate metric, the epoch count, the
/// interrupter, adapter-only checkpointers, the headless renderer (or the TUI), gradient
/// accumulation and resume to `training` (which already has the task's metrics and early
/// stopping), launch it, and turn a non-finite loss or a Learner error into a [`TrainError`].
pub(crate) fn launch<M: LearnerModel>(
    training: SupervisedTraining<M>,
    learner: Learner<M>,
    settings: &LaunchSettings<'_>,
) -> Result<Launched<M>> {
    let s = settings;
    let renderer = ProgressRenderer::new(s.log_every);
    let renderer = if s.quiet { renderer.quiet() } else { renderer };
    let summaries = renderer.summaries();
    let use_tui = cfg!(feature = "tui") && std::io::stdout().is_terminal() && !s.quiet;

    let mut training = training
        .metric_train_numeric(LearningRateMetric::new())
        .num_epochs(s.epochs)
        .with_interrupter(s.interrupter.clone())
        .with_custom_checkpointers(
            AdapterCheckpointer::new(s.ckpt_dir, "model", s.trainable.clone()),
            FileCheckpointer::new(s.ckpt_dir, "optim"),
            FileCheckpointer::new(s.ckpt_dir, "scheduler"),
        );
    if !use_tui {
        training = training.renderer(Box::new(renderer));
    }
    if s.grad_accumulation > 1 {
        training = training.grads_accumulation(s.grad_accumulation);
    }
    if let Some(epoch) = s.resume_epoch {
        training = training.checkpoint(epoch);
    }
    let result = training.launch(learner);

    if let Some((step, loss)) = s.guard.report().non_finite {
        let checkpoint = last_complete_epoch(s.ckpt_dir)
            .map(|e| {
                s.ckpt_dir
                    .join(format!("model-{e}.bpk"))
                    .display()
                    .to_string()
            })
            .unwrap_or_else(|| "none".into());
        return Err(TrainError::NonFiniteLoss {
            step,
            loss,
            checkpoint,
        });
    }
    if let Some(error) = result.error {
        return Err(TrainError::Learner(error.to_string()));
    }
    Ok(Launched {
        task: result.model,
        interrupted: result.interrupted.is_some(),
        epochs: summaries.lock().map(|s| s.clone()).unwrap_or_default(),
    })
}

/// Save the trainable tensors of `model` described by `file` into `out/adapter` (or
/// `out/adapter-interrupted`); returns the directory and the size of its weights file.
pub(crate) fn save_adapter_artefact<M: Module>(
    model: &M,
    out: &Path,
    interrupted: bool,
    file: &AdapterFile,
) -> Result<(PathBuf, u64)> {
    let adapter_dir = out.join(if interrupted {
        "adapter-interrupted"
    } else {
        "adapter"
    });
    save_adapter(model, &adapter_dir, file)?;
    let weights = adapter_dir.join(peft_core::file::WEIGHTS_FILE);
    let bytes = std::fs::metadata(&weights).map_err(io_err(&weights))?.len();
    Ok((adapter_dir, bytes))
}

/// Prepare `model` for `method`: attach adapters, freeze all but the trainable parameters.
pub fn prepare_model(
    mut model: BertClassifier,
    method: &TrainingMethod,
    device: &Device,
) -> Result<(BertClassifier, Option<AttachReport>, ParamSummary)> {
    let attached = match method {
        TrainingMethod::Adapter { config } => Some(attach_adapters(&mut model, config, device)?),
        _ => None,
    };
    let trainable = method.trainable();
    let model = freeze_except(model, &trainable)?;
    let summary = param_summary(&model, &trainable)?;
    Ok((model, attached, summary))
}

/// Evaluate `model` (used in eval mode: no dropout) on `items`, after checking that they and
/// the batcher's tokenizer fit the model.
pub fn evaluate(
    model: &BertClassifier,
    items: &[EncodedItem],
    batcher: &ClassificationBatcher,
    batch_size: usize,
    device: &Device,
) -> Result<EvalReport> {
    if items.is_empty() {
        return Err(TrainError::InvalidConfig("nothing to evaluate".into()));
    }
    batcher.check_fits(&model.bert.input_limits(), items)?;
    let task = ClassificationTask::new(model.valid(), StepGuard::default());
    let loader = EpochLoader::new(
        items.to_vec(),
        batcher.clone(),
        batch_size,
        EpochOrder::Sequential,
        device.clone().inner(),
    );
    let started = Instant::now();
    let (mut correct, mut loss_sum) = (0usize, 0.0f64);
    let mut iter = loader.iter();
    for batch in iter.by_ref() {
        let batch = batch.map_err(|e| TrainError::Learner(e.to_string()))?;
        let n = batch.labels.dims()[0];
        let out = InferenceStep::step(&task, batch);
        let pred = out.output.argmax(1).reshape([n]);
        correct += pred.equal(out.targets).int().sum().into_scalar::<i64>() as usize;
        loss_sum += out.loss.into_scalar::<f64>() * n as f64;
    }
    let n = items.len();
    Ok(EvalReport {
        accuracy: 100.0 * correct as f64 / n as f64,
        correct,
        examples: n,
        loss: loss_sum / n as f64,
        examples_per_sec: n as f64 / started.elapsed().as_secs_f64().max(1e-9),
    })
}

/// Train `model` (on an autodiff device, base loaded, head attached) on `data`, writing
/// checkpoints, the adapter directory (`out/adapter`), `out/training_config.json` and
/// `out/metrics.json`.
pub fn train_classifier(
    model: BertClassifier,
    data: &ClassificationData,
    batcher: ClassificationBatcher,
    config: &ClassifierTrainingConfig,
    out: impl AsRef<Path>,
    options: RunOptions,
) -> Result<(BertClassifier, TrainingReport)> {
    config.validate()?;
    let out = out.as_ref();
    if data.train.is_empty() || data.valid.is_empty() {
        return Err(TrainError::InvalidConfig(
            "training and validation data must not be empty".into(),
        ));
    }
    let num_labels = model.head.num_labels();
    if let Some(bad) = data
        .train
        .iter()
        .chain(&data.valid)
        .find(|i| i.label >= num_labels)
    {
        return Err(TrainError::InvalidConfig(format!(
            "label {} found, but the head has {num_labels} classes",
            bad.label
        )));
    }
    let limits = model.bert.input_limits();
    batcher.check_fits(&limits, &data.train)?;
    batcher.check_fits(&limits, &data.valid)?;
    std::fs::create_dir_all(out).map_err(io_err(out))?;
    let started = Instant::now();
    let device = training_device(&model)?;
    device.seed(config.seed);
    let (model, attached, summary) = prepare_model(model, &config.method, &device)?;
    let trainable = config.method.trainable();

    // Training order and the optional cut to max_steps batches.
    let per_epoch = config.max_steps.map(|s| s * config.batch_size);
    let (train_items, order) = match (per_epoch, &data.first_epoch_order) {
        (Some(n), first) => {
            let order = first
                .clone()
                .filter(|o| o.len() == data.train.len())
                .unwrap_or_else(|| shuffled_indices(data.train.len(), config.seed));
            let items: Vec<EncodedItem> = order
                .iter()
                .take(n)
                .filter_map(|&i| data.train.get(i).cloned())
                .collect();
            (items, EpochOrder::Sequential)
        }
        (None, Some(first)) => (
            data.train.clone(),
            EpochOrder::FirstThenShuffled {
                first: first.clone(),
                seed: config.seed,
            },
        ),
        (None, None) => (
            data.train.clone(),
            EpochOrder::Shuffled { seed: config.seed },
        ),
    };

    let ckpt_dir = out.join("checkpoints");
    let resume_epoch = resume_point(out, &ckpt_dir, config.resume, config.epochs)?;
    let train_loader = EpochLoader::new(
        train_items,
        batcher.clone(),
        config.batch_size,
        order,
        device.clone(),
    )
    .with_device_reseed(config.seed)
    .starting_at_epoch(resume_epoch.unwrap_or(0));
    let batches = train_loader.num_batches();
    let total_steps = config.epochs * batches.div_ceil(config.grad_accumulation);
    let valid_loader = EpochLoader::new(
        data.valid.clone(),
        batcher.clone(),
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
    let task = ClassificationTask::new(model, guard.clone());
    let optim = config.optim.optimizer();
    let scheduler = config.optim.scheduler(total_steps);

    let mut training = SupervisedTraining::new(
        out,
        std::sync::Arc::new(train_loader),
        std::sync::Arc::new(valid_loader),
    )
    .metrics((AccuracyMetric::new(), LossMetric::new()));
    if let Some(n) = config.early_stopping_patience {
        training = training.early_stopping(MetricEarlyStoppingStrategy::new(
            &AccuracyMetric::new(),
            Aggregate::Mean,
            Direction::Highest,
            Split::Valid,
            StoppingCondition::NoImprovementSince { n_epochs: n },
        ));
    }
    let launched = launch(
        training,
        Learner::new(task, optim, scheduler),
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
    let final_eval = evaluate(
        &model,
        &data.valid,
        &batcher,
        config.eval_batch_size,
        &device,
    )?;
    let method = match &config.method {
        TrainingMethod::Adapter { config } => AdapterMethod::Bottleneck(config.clone()),
        _ => AdapterMethod::HeadOnly,
    };
    let file = AdapterFile::new(method, model.base_info(), &trainable).with_head(model.head_info());
    let (adapter_dir, adapter_bytes) = save_adapter_artefact(&model, out, interrupted, &file)?;
    write_json(&out.join("training_config.json"), config)?;
    let report = TrainingReport {
        method: config.method.name(),
        trainable_params: summary.trainable,
        total_params: summary.total,
        adapters_attached: attached.map(|a| a.attached.len()).unwrap_or(0),
        epochs: launched.epochs,
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
