//! Adapter training for sequence classification with burn-train's `SupervisedTraining` +
//! `Learner`, and evaluation of a trained model. The run loop shared with
//! [`crate::lm::train_causal_lm`] (resume checks, checkpoints, the training loop) and
//! [`RunOptions`] live in [`crate::run`].

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::config::Config;
use burn::tensor::Device;
use burn::train::metric::store::{Aggregate, Direction, Split};
use burn::train::metric::{AccuracyMetric, LossMetric};
use burn::train::{MetricEarlyStoppingStrategy, StoppingCondition};
use peft_core::{
    AdapterConfig, AdapterFile, AdapterMethod, AttachReport, ParamSummary, Setup, add_adapter,
    add_fusion, freeze_except, param_summary, set_active,
};
use peft_models::bert::BertModel;
use peft_models::head::{BertClassifier, ClassificationHeadConfig, HeadInit, HeadPooling};
use serde::Serialize;

use crate::adapter_io::save_full_classifier;
use crate::data::{ClassificationBatcher, EncodedItem};
use crate::error::{Result, TrainError};
use crate::loader::{EpochOrder, epoch_plan};
use crate::optim::OptimConfig;
use crate::render::EpochSummary;
pub use crate::run::RunOptions;
use crate::run::{
    Fingerprint, RunData, RunSpec, Trained, check_not_empty, fill_final, io_err, loop_config,
    save_adapter_artefact, train_task, training_device, write_json,
};
use crate::task::ClassificationTask;

mod eval;
mod method;
pub use eval::{EvalReport, evaluate, evaluate_with_order};
pub use method::TrainingMethod;

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
    /// Write a checkpoint every this many optimizer steps (0: only at epoch ends and on
    /// interruption, which always checkpoint). Default: 200.
    #[config(default = 200)]
    pub checkpoint_every: usize,
    /// The base model (Hub id or directory), recorded with each checkpoint so that resuming
    /// on another base is refused. Default: none (only architecture, width and depth are
    /// compared).
    #[config(default = "None")]
    pub model_id: Option<String>,
    /// Continue from the last complete checkpoint in the output directory. `false` starts
    /// over: an earlier run's artefacts there are removed first. Default: true.
    #[config(default = true)]
    pub resume: bool,
    /// The task's name: the adapter (or fusion) and the head that train are the ones of this
    /// name; other adapters and heads of the model stay frozen. Default: `default`
    /// ([`peft_core::DEFAULT_ADAPTER`]).
    #[config(default = "peft_core::DEFAULT_ADAPTER.to_string()")]
    pub task: String,
    /// Weight init of a fresh head ([`train_classifier_from_dir`]). Default:
    /// `HeadInit::PyTorchDefault`; `HeadInit::adapterhub()` is AdapterHub's.
    #[config(default = "HeadInit::PyTorchDefault")]
    pub head_init: HeadInit,
}

impl ClassifierTrainingConfig {
    /// Check the values.
    pub fn validate(&self) -> Result<()> {
        loop_config!(self).validate()?;
        let bad = |m: &str| Err(TrainError::InvalidConfig(m.to_string()));
        if self.max_steps == Some(0) {
            return bad("max_steps must be at least 1");
        }
        match &self.method {
            TrainingMethod::Adapter { config } => config.validate()?,
            TrainingMethod::Lora { config } => config.validate()?,
            TrainingMethod::Ia3 { config } => config.validate()?,
            TrainingMethod::PrefixTuning { config } => config.validate()?,
            TrainingMethod::PromptTuning { config } => config.validate()?,
            TrainingMethod::Fusion { config, .. } => config.validate()?,
            _ => {}
        }
        peft_core::setup::check_name(&self.task)?;
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
    /// Passes over the validation set this process made: one per epoch before the last, and
    /// one for the final weights (none extra when early stopping had just scored them).
    pub valid_evaluations: usize,
    /// Wall-clock seconds of the run.
    pub seconds: f64,
    /// Epochs completed before this process, if it resumed a checkpoint.
    pub resumed_from_epoch: Option<usize>,
    /// Optimizer step of the checkpoint resumed, if it resumed one.
    pub resumed_from_step: Option<usize>,
    /// Optimizer steps done at the end (whole run).
    pub steps: usize,
    /// Whether early stopping ended the run.
    pub early_stopped: bool,
    /// Whether the run was interrupted (Ctrl-C).
    pub interrupted: bool,
    /// The saved adapter directory (`out/adapter`), or for full fine-tuning the saved model
    /// directory (`out/model`); `-interrupted` after Ctrl-C.
    pub adapter_dir: PathBuf,
    /// Size in bytes of the saved weights file.
    pub adapter_bytes: u64,
}

/// Prepare `model` to train task `task` with `method` (AdapterHub's `train_adapter` /
/// `train_adapter_fusion`): add adapter `task` (or the fusion layer) unless the model has it
/// already with the same config, activate it, make head `task` the active head, and freeze
/// every other parameter.
///
/// # Errors
/// The model has no head named `task`; an adapter `task` exists with another config; a fused
/// adapter is missing; invalid configs.
pub fn prepare_model(
    mut model: BertClassifier,
    method: &TrainingMethod,
    task: &str,
    device: &Device,
) -> Result<(BertClassifier, Option<AttachReport>, ParamSummary)> {
    model.set_active_head(task)?;
    let attached = match method {
        TrainingMethod::Adapter { .. }
        | TrainingMethod::Lora { .. }
        | TrainingMethod::Ia3 { .. }
        | TrainingMethod::PrefixTuning { .. }
        | TrainingMethod::PromptTuning { .. } => {
            let Some(config) = method.adapter_config() else {
                return Err(peft_core::PeftError::InvalidConfig(format!(
                    "{} attaches no adapter",
                    method.name()
                ))
                .into());
            };
            let existing = peft_core::adapters(&model)
                .into_iter()
                .find(|a| a.name == task);
            let report = match existing {
                Some(a) if a.config == config => None,
                Some(_) => {
                    return Err(peft_core::PeftError::AlreadyExists {
                        kind: "adapter",
                        name: task.to_string(),
                    }
                    .into());
                }
                None => Some(add_adapter(&mut model, task, &config, device)?),
            };
            set_active(&mut model, Some(Setup::single(task)))?;
            report
        }
        TrainingMethod::Fusion { adapters, config } => {
            if !peft_core::fusions(&model).contains(adapters) {
                add_fusion(&mut model, adapters, config, device)?;
            }
            set_active(&mut model, Some(Setup::fuse(adapters.iter().cloned())))?;
            None
        }
        TrainingMethod::HeadOnly | TrainingMethod::Full => {
            set_active(&mut model, None)?;
            None
        }
    };
    let trainable = method.trainable(task);
    let model = freeze_except(model, &trainable)?;
    let summary = param_summary(&model, &trainable)?;
    Ok((model, attached, summary))
}

/// The settings a checkpoint of a classification run records, and a resume must match.
fn signature(
    config: &ClassifierTrainingConfig,
    model: &BertClassifier,
    train_items: &[EncodedItem],
    order: &EpochOrder,
) -> Result<serde_json::Value> {
    let mut data = Fingerprint::default();
    data.add([train_items.len() as u64]);
    for item in train_items {
        data.add([item.input_ids.len() as u64, item.label as u64]);
        data.add(item.input_ids.iter().map(|&t| u64::from(t)));
        data.add(item.token_type_ids.iter().map(|&t| u64::from(t)));
    }
    let order = match order {
        EpochOrder::Sequential => "sequential".to_string(),
        EpochOrder::Shuffled { seed } => format!("shuffled({seed})"),
        EpochOrder::FirstThenShuffled { first, seed } => {
            let mut f = Fingerprint::default();
            f.add(first.iter().map(|&i| i as u64));
            format!("first {} then shuffled({seed})", f.hex())
        }
    };
    let value = serde_json::json!({
        "task": "sequence_classification",
        "method": config.method,
        "head": model.head_info(),
        "model": model.base_info(),
        "model_id": config.model_id,
        "batch_size": config.batch_size,
        "grad_accumulation": config.grad_accumulation,
        "optim": config.optim,
        "seed": config.seed,
        "max_steps": config.max_steps,
        "data": data.hex(),
        "data_order": order,
    });
    Ok(value)
}

/// Train `model` (on an autodiff device, base loaded, head attached) on `data`, writing
/// checkpoints, the adapter directory (`out/adapter`), `out/training_config.json` and
/// `out/metrics.json`.
///
/// Randomness: adapters are initialised after seeding the device with `config.seed`; the data
/// order and the dropout masks (reseeded before every batch) follow from `config.seed` too. The
/// head passed in was initialised by the caller: seed the device before creating it, or use
/// [`train_classifier_from_dir`], which does, to make a run reproducible bit for bit.
///
/// Checkpoints (`out/checkpoints`) are written every `config.checkpoint_every` optimizer steps,
/// at each epoch end and when `options.interrupter` stops the run; the next call with the same
/// `out` continues from the last one exactly (same data order and dropout masks).
///
/// # Errors
/// [`TrainError::InvalidConfig`] for an invalid configuration, empty data, a label outside the
/// head or a model not on an autodiff device; [`TrainError::RunFinished`] when `out` holds a
/// finished run (and `options.overwrite` is off); [`TrainError::ResumeMismatch`] when its
/// checkpoint was made with other settings; [`TrainError::SchedulerState`] /
/// [`TrainError::Checkpoint`] for a checkpoint that cannot be restored;
/// [`TrainError::NonFiniteLoss`]; I/O, adapter and Learner errors.
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
    check_not_empty(&data.train, &data.valid)?;
    let num_labels = model.heads.require("head", &config.task)?.num_labels();
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
    let base_dir = match (&config.method, &options.base_dir) {
        (TrainingMethod::Full, None) => {
            return Err(TrainError::InvalidConfig(
                "full fine-tuning saves a whole model, which needs the base's config.json: set \
                 RunOptions::base_dir (train_classifier_from_dir does)"
                    .into(),
            ));
        }
        (_, dir) => dir.clone(),
    };
    let limits = model.bert.input_limits();
    batcher.check_fits(&limits, &data.train)?;
    batcher.check_fits(&limits, &data.valid)?;
    std::fs::create_dir_all(out).map_err(io_err(out))?;
    let started = Instant::now();
    let device = training_device(&model)?;

    // Training order and the optional cut to max_steps batches.
    let (train_items, order) = epoch_plan(
        &data.train,
        config.max_steps,
        config.batch_size,
        data.first_epoch_order.as_ref(),
        config.seed,
    );

    let signature = signature(config, &model, &train_items, &order)?;
    let trainable = config.method.trainable(&config.task);
    let spec = RunSpec {
        config: loop_config!(config),
        signature: &signature,
        trainable: &trainable,
        device: &device,
        out,
        options: &options,
    };
    let run_data = RunData {
        train: train_items,
        valid: data.valid.clone(),
        batcher: batcher.clone(),
        order,
    };
    let patience = config.early_stopping_patience;
    let trained = train_task::<ClassificationTask, _, _, _, _>(
        model,
        run_data,
        &spec,
        |model, device| {
            let (model, attached, summary) =
                prepare_model(model, &config.method, &config.task, device)?;
            Ok((model, (attached, summary)))
        },
        |training| {
            let training = training.metrics((AccuracyMetric::new(), LossMetric::new()));
            match patience {
                Some(n) => training.early_stopping(MetricEarlyStoppingStrategy::new(
                    &AccuracyMetric::new(),
                    Aggregate::Mean,
                    Direction::Highest,
                    Split::Valid,
                    StoppingCondition::NoImprovementSince { n_epochs: n },
                )),
                None => training,
            }
        },
    )?;
    let Trained {
        model,
        prepared: (attached, summary),
        resumed,
        interrupted,
        early_stopped,
        steps,
        mut epochs,
        valid_passes,
    } = trained;

    // The final weights, scored once: early stopping scored them after their epoch already;
    // otherwise (the last epoch, or an interruption) they are scored here.
    let scored = epochs.last().filter(|_| early_stopped && !interrupted);
    let (final_eval, valid_evaluations) = match scored.and_then(EvalReport::from_summary) {
        Some(report) => (report, valid_passes),
        None => {
            let report = evaluate(
                &model,
                &data.valid,
                &batcher,
                config.eval_batch_size,
                &device,
            )?;
            fill_final(&mut epochs, config.epochs, |e| {
                e.valid_loss = Some(report.loss);
                e.valid_accuracy = Some(report.accuracy);
            });
            (report, valid_passes + 1)
        }
    };

    // Artefacts.
    let (adapter_dir, adapter_bytes) = match (&config.method, &base_dir) {
        (TrainingMethod::Full, Some(base_dir)) => {
            // A whole model, not an adapter: loading it over a shared base would replace it.
            let dir = out.join(if interrupted {
                "model-interrupted"
            } else {
                "model"
            });
            let bytes = save_full_classifier(&model, &dir, base_dir)?;
            (dir, bytes)
        }
        (method, _) => {
            let method = match method {
                TrainingMethod::Fusion { adapters, config } => AdapterMethod::Fusion {
                    adapters: adapters.clone(),
                    config: config.clone(),
                },
                m => m
                    .adapter_config()
                    .map_or(AdapterMethod::HeadOnly, |c| AdapterMethod::of(&c)),
            };
            let file = AdapterFile::new(method, model.base_info(), &trainable)
                .with_head(model.head_info());
            save_adapter_artefact(&model, out, interrupted, &file)?
        }
    };
    write_json(&out.join("training_config.json"), config)?;
    let report = TrainingReport {
        method: config.method.name(),
        trainable_params: summary.trainable,
        total_params: summary.total,
        adapters_attached: attached.map(|a| a.attached.len()).unwrap_or(0),
        epochs,
        final_eval,
        valid_evaluations,
        seconds: started.elapsed().as_secs_f64(),
        resumed_from_epoch: resumed.as_ref().map(|s| s.epochs_done),
        resumed_from_step: resumed.as_ref().map(|s| s.step),
        steps,
        early_stopped,
        interrupted,
        adapter_dir,
        adapter_bytes,
    };
    write_json(&out.join("metrics.json"), &report)?;
    Ok((model, report))
}

/// [`train_classifier`] on a model loaded from a Hugging Face directory, the way the `sst2`
/// example runs: the device is seeded with `config.seed` before the head is created, so two
/// runs with the same arguments give the same weights and metrics bit for bit (on a
/// deterministic backend such as Flex). `device` may be a plain device; training uses its
/// autodiff form.
///
/// # Errors
/// As [`peft_models::head::BertClassifier::from_pretrained`] and [`train_classifier`].
#[allow(clippy::too_many_arguments)]
pub fn train_classifier_from_dir(
    model_dir: impl AsRef<Path>,
    num_labels: usize,
    pooling: HeadPooling,
    device: &Device,
    data: &ClassificationData,
    batcher: ClassificationBatcher,
    config: &ClassifierTrainingConfig,
    out: impl AsRef<Path>,
    options: RunOptions,
) -> Result<(BertClassifier, TrainingReport)> {
    config.validate()?;
    let device = if device.is_autodiff() {
        device.clone()
    } else {
        device.clone().autodiff()
    };
    let model_dir = model_dir.as_ref();
    // Seed first: the head's initial weights come from the device RNG.
    device.seed(config.seed);
    let (bert, _) = BertModel::from_pretrained(model_dir, &device)?;
    let head = ClassificationHeadConfig::new(bert.hidden_size, num_labels)
        .with_pooling(pooling)
        .with_init(config.head_init);
    let model = BertClassifier::new_named(bert, &config.task, &head, &device)?;
    let options = RunOptions {
        base_dir: options.base_dir.or_else(|| Some(model_dir.to_path_buf())),
        ..options
    };
    train_classifier(model, data, batcher, config, out, options)
}
