//! Sentence-pair regression (GLUE STS-B) with a one-output head: Hugging Face's
//! `problem_type = "regression"` (`num_labels == 1`, loss `MSELoss(logits.squeeze(), labels)`).
//!
//! [`ScoredItem`]s (tokenized pairs with a float target) → [`RegressionBatcher`] →
//! [`RegressionBatch`] → [`RegressionTask`] (`TrainStep`/`InferenceStep`, [`mse_loss`]).
//! [`train_regressor_from_dir`] runs the shared run loop ([`crate::run`]) and saves the adapter
//! with its head marked [`ProblemType::Regression`]; [`evaluate_regression`] reports Pearson and
//! Spearman as GLUE does, and [`predict_scores`] the raw scores in input order.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::data::dataloader::batcher::Batcher;
use burn::module::Module;
use burn::tensor::{Device, Int, Tensor, TensorData};
use burn::train::RegressionOutput;
use burn::train::metric::LossMetric;
use peft_core::{AdapterFile, AdapterMethod, ProblemType};
use peft_models::bert::{BertInput, BertModel};
use peft_models::head::{BertClassifier, ClassificationHeadConfig, HeadPooling};
use serde::Serialize;

use crate::correlation::{pearson, spearman};
use crate::data::stsb::ScoredPair;
use crate::data::{ClassificationBatcher, EncodedItem, TextClassificationItem, TokenizedDataset};
use crate::error::{Result, TrainError};
use crate::loader::epoch_plan;
use crate::predict::{BatchOrder, predict};
use crate::render::EpochSummary;
use crate::run::{
    Fingerprint, RunData, RunOptions, RunSpec, Trained, check_not_empty, fill_final, loop_config,
    save_adapter_artefact, train_task, training_device, write_json,
};
use crate::task::{StepGuard, guarded_task};
use crate::trainer::{ClassifierTrainingConfig, TrainingMethod, prepare_model};

/// A tokenized pair with its regression target.
#[derive(Clone, Debug, PartialEq)]
pub struct ScoredItem {
    /// The tokenized pair (its `label` is unused: 0).
    pub encoded: EncodedItem,
    /// The target (an STS-B similarity in `[0, 5]`).
    pub score: f32,
}

/// Tokenize STS-B pairs once, up front.
///
/// # Errors
/// Tokenizer errors, naming the example.
pub fn tokenize_scored(
    pairs: &[ScoredPair],
    tokenizer: &peft_models::tokenizer::TextTokenizer,
) -> Result<Vec<ScoredItem>> {
    let items: Vec<TextClassificationItem> = pairs
        .iter()
        .map(|p| TextClassificationItem {
            text_a: p.text_a.clone(),
            text_b: Some(p.text_b.clone()),
            label: 0,
        })
        .collect();
    let ds = TokenizedDataset::new(&items, tokenizer)?;
    Ok(ds
        .items()
        .iter()
        .zip(pairs)
        .map(|(e, p)| ScoredItem {
            encoded: e.clone(),
            score: p.score,
        })
        .collect())
}

/// A regression batch, padded to its longest item.
#[derive(Debug, Clone)]
pub struct RegressionBatch {
    /// Token ids `[batch, seq]`.
    pub input_ids: Tensor<2, Int>,
    /// Segment ids `[batch, seq]`.
    pub token_type_ids: Tensor<2, Int>,
    /// 1 for tokens, 0 for padding, `[batch, seq]`.
    pub attention_mask: Tensor<2, Int>,
    /// Targets `[batch, 1]`.
    pub targets: Tensor<2>,
}

/// Pads [`ScoredItem`]s into a [`RegressionBatch`] (the padding of [`ClassificationBatcher`]).
#[derive(Debug, Clone)]
pub struct RegressionBatcher {
    inner: ClassificationBatcher,
}

impl RegressionBatcher {
    /// A batcher padding like `inner`.
    pub fn new(inner: ClassificationBatcher) -> Self {
        Self { inner }
    }

    /// The classification batcher (same padding) for inference on the encoded items.
    pub fn inner(&self) -> &ClassificationBatcher {
        &self.inner
    }
}

impl Batcher<ScoredItem, RegressionBatch> for RegressionBatcher {
    fn batch(&self, items: Vec<ScoredItem>, device: &Device) -> RegressionBatch {
        let n = items.len();
        let scores: Vec<f32> = items.iter().map(|i| i.score).collect();
        let encoded: Vec<EncodedItem> = items.into_iter().map(|i| i.encoded).collect();
        let (input_ids, token_type_ids, attention_mask) =
            self.inner.pad(&encoded).into_tensors(device);
        RegressionBatch {
            input_ids,
            token_type_ids,
            attention_mask,
            targets: Tensor::from_data(TensorData::new(scores, [n, 1]), device),
        }
    }
}

/// Mean squared error of `predictions` `[batch, 1]` against `targets` `[batch, 1]`, shape `[1]`:
/// PyTorch's `MSELoss()(logits.squeeze(), labels.squeeze())` (mean over the batch).
pub fn mse_loss(predictions: Tensor<2>, targets: Tensor<2>) -> Tensor<1> {
    (predictions - targets).powf_scalar(2.0).mean()
}

/// A one-output [`BertClassifier`] as a burn-train regression task.
#[derive(Module, Debug)]
pub struct RegressionTask {
    /// The model (frozen base, trainable adapters and a one-output head).
    pub model: BertClassifier,
    /// Clipping, loss scaling, non-finite guard.
    #[module(skip)]
    pub guard: StepGuard,
}

impl RegressionTask {
    /// Predictions `[batch, 1]` and their [`mse_loss`] for a batch.
    pub fn forward_regression(&self, batch: RegressionBatch) -> RegressionOutput {
        let input = BertInput::new(batch.input_ids)
            .with_token_type_ids(batch.token_type_ids)
            .with_attention_mask(batch.attention_mask);
        let output = self.model.forward(input);
        let loss = mse_loss(output.clone(), batch.targets.clone());
        RegressionOutput::new(loss, output, batch.targets)
    }
}

guarded_task!(
    RegressionTask,
    BertClassifier,
    RegressionBatch => RegressionOutput,
    forward_regression
);

/// Correlations and loss of a regression model on a data set. GLUE reports STS-B as
/// Pearson / Spearman; [`RegressionEval::score`] (their mean, as `transformers`' `run_glue`
/// `combined_score`) is the one number.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RegressionEval {
    /// Pearson correlation of predictions and targets (NaN when either is constant).
    pub pearson: f64,
    /// Spearman rank correlation (average ranks for ties).
    pub spearman: f64,
    /// `(pearson + spearman) / 2`.
    pub score: f64,
    /// Mean squared error.
    pub mse: f64,
    /// Examples evaluated.
    pub examples: usize,
}

/// The model's scores for `items`, in input order (eval mode, length-grouped batches).
///
/// # Errors
/// Empty `items`; items that do not fit the model; a head with more than one output.
pub fn predict_scores(
    model: &BertClassifier,
    items: &[EncodedItem],
    batcher: &ClassificationBatcher,
    batch_size: usize,
    device: &Device,
) -> Result<Vec<f32>> {
    let p = predict(
        model,
        items,
        batcher,
        batch_size,
        BatchOrder::ByLength,
        device,
    )?;
    p.logits
        .iter()
        .map(|z| match z.as_slice() {
            [s] => Ok(*s),
            _ => Err(TrainError::InvalidConfig(format!(
                "a regression head has one output, this one has {}",
                z.len()
            ))),
        })
        .collect()
}

/// Pearson, Spearman and MSE of `model` on `items`.
///
/// # Errors
/// As [`predict_scores`].
pub fn evaluate_regression(
    model: &BertClassifier,
    items: &[ScoredItem],
    batcher: &ClassificationBatcher,
    batch_size: usize,
    device: &Device,
) -> Result<RegressionEval> {
    let encoded: Vec<EncodedItem> = items.iter().map(|i| i.encoded.clone()).collect();
    let scores = predict_scores(model, &encoded, batcher, batch_size, device)?;
    Ok(regression_eval(
        &scores.iter().map(|&s| f64::from(s)).collect::<Vec<_>>(),
        &items.iter().map(|i| f64::from(i.score)).collect::<Vec<_>>(),
    ))
}

/// [`RegressionEval`] of `predictions` against `targets` (equal lengths, at least 2).
fn regression_eval(predictions: &[f64], targets: &[f64]) -> RegressionEval {
    let pearson = pearson(predictions, targets).unwrap_or(f64::NAN);
    let spearman = spearman(predictions, targets).unwrap_or(f64::NAN);
    let n = predictions.len().max(1) as f64;
    RegressionEval {
        pearson,
        spearman,
        score: (pearson + spearman) / 2.0,
        mse: predictions
            .iter()
            .zip(targets)
            .map(|(p, t)| (p - t).powi(2))
            .sum::<f64>()
            / n,
        examples: predictions.len(),
    }
}

/// Data for a regression run, tokenized.
#[derive(Clone, Debug, Default)]
pub struct RegressionData {
    /// Training examples.
    pub train: Vec<ScoredItem>,
    /// Validation examples.
    pub valid: Vec<ScoredItem>,
}

/// What a regression run produced.
#[derive(Clone, Debug, Serialize)]
pub struct RegressionTrainingReport {
    /// Always `regression`.
    pub problem_type: ProblemType,
    /// Method name.
    pub method: String,
    /// Trainable parameters.
    pub trainable_params: usize,
    /// All parameters.
    pub total_params: usize,
    /// Per-epoch numbers (validation loss is the MSE).
    pub epochs: Vec<EpochSummary>,
    /// Final evaluation on the validation set (scored once, after the last epoch).
    pub final_eval: RegressionEval,
    /// Optimizer steps done (whole run).
    pub steps: usize,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Whether the run was interrupted.
    pub interrupted: bool,
    /// The saved adapter directory.
    pub adapter_dir: PathBuf,
    /// Size in bytes of the saved weights file.
    pub adapter_bytes: u64,
}

/// Train a fresh one-output head (and the adapter of `config.method`) on the base in
/// `model_dir`, as [`crate::trainer::train_classifier_from_dir`] does for classes: the device is
/// seeded first, checkpoints and resume work the same, the adapter directory's head records
/// [`ProblemType::Regression`]. Writes `out/adapter`, `out/training_config.json` and
/// `out/metrics.json`.
///
/// # Errors
/// Full fine-tuning (not supported for regression) or early stopping (it watches accuracy);
/// empty data; otherwise as [`crate::trainer::train_classifier`].
#[allow(clippy::too_many_arguments)]
pub fn train_regressor_from_dir(
    model_dir: impl AsRef<Path>,
    pooling: HeadPooling,
    device: &Device,
    data: &RegressionData,
    batcher: RegressionBatcher,
    config: &ClassifierTrainingConfig,
    out: impl AsRef<Path>,
    options: RunOptions,
) -> Result<(BertClassifier, RegressionTrainingReport)> {
    config.validate()?;
    if config.method == TrainingMethod::Full {
        return Err(TrainError::InvalidConfig(
            "regression trains adapters or the head, not the full model".into(),
        ));
    }
    if config.early_stopping_patience.is_some() {
        return Err(TrainError::InvalidConfig(
            "early stopping watches accuracy: not available for regression".into(),
        ));
    }
    check_not_empty(&data.train, &data.valid)?;
    let out = out.as_ref();
    let started = Instant::now();
    let device = if device.is_autodiff() {
        device.clone()
    } else {
        device.clone().autodiff()
    };
    device.seed(config.seed);
    let (bert, _) = BertModel::from_pretrained(model_dir.as_ref(), &device)?;
    let head = ClassificationHeadConfig::new(bert.hidden_size, 1)
        .with_pooling(pooling)
        .with_init(config.head_init);
    let model = BertClassifier::new_named(bert, &config.task, &head, &device)?;
    let limits = model.bert.input_limits();
    let encoded = |items: &[ScoredItem]| -> Vec<EncodedItem> {
        items.iter().map(|i| i.encoded.clone()).collect()
    };
    batcher.inner().check_fits(&limits, &encoded(&data.train))?;
    batcher.inner().check_fits(&limits, &encoded(&data.valid))?;
    std::fs::create_dir_all(out).map_err(crate::run::io_err(out))?;
    let device = training_device(&model)?;

    let (train_items, order) = epoch_plan(
        &data.train,
        config.max_steps,
        config.batch_size,
        None,
        config.seed,
    );
    let mut fp = Fingerprint::default();
    fp.add([train_items.len() as u64]);
    for item in &train_items {
        fp.add([u64::from(item.score.to_bits())]);
        fp.add(item.encoded.input_ids.iter().map(|&t| u64::from(t)));
        fp.add(item.encoded.token_type_ids.iter().map(|&t| u64::from(t)));
    }
    let signature = serde_json::json!({
        "task": "regression",
        "method": config.method,
        "head": model.head_info(),
        "model": model.base_info(),
        "model_id": config.model_id,
        "batch_size": config.batch_size,
        "grad_accumulation": config.grad_accumulation,
        "optim": config.optim,
        "seed": config.seed,
        "max_steps": config.max_steps,
        "data": fp.hex(),
    });
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
    let trained = train_task::<RegressionTask, _, _, _, _>(
        model,
        run_data,
        &spec,
        |model, device| {
            let (model, _, summary) = prepare_model(model, &config.method, &config.task, device)?;
            Ok((model, summary))
        },
        |training| training.metrics((LossMetric::new(),)),
    )?;
    let Trained {
        model,
        prepared: summary,
        interrupted,
        steps,
        mut epochs,
        ..
    } = trained;
    let final_eval = evaluate_regression(
        &model,
        &data.valid,
        batcher.inner(),
        config.eval_batch_size,
        &device,
    )?;
    fill_final(&mut epochs, config.epochs, |e| {
        e.valid_loss = Some(final_eval.mse);
    });
    let method = config
        .method
        .adapter_config()
        .map_or(AdapterMethod::HeadOnly, |c| AdapterMethod::of(&c));
    let mut head = model.head_info();
    head.problem_type = ProblemType::Regression;
    let file = AdapterFile::new(method, model.base_info(), &trainable).with_head(head);
    let (adapter_dir, adapter_bytes) = save_adapter_artefact(&model, out, interrupted, &file)?;
    write_json(&out.join("training_config.json"), config)?;
    let report = RegressionTrainingReport {
        problem_type: ProblemType::Regression,
        method: config.method.name(),
        trainable_params: summary.trainable,
        total_params: summary.total,
        epochs,
        final_eval,
        steps,
        seconds: started.elapsed().as_secs_f64(),
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

    /// MSE on fixed logits/targets against numpy:
    /// `np.mean((np.array([0.5, 2.0, -1.0, 3.25]) - np.array([1.0, 2.5, 0.0, 3.0]))**2)`
    /// = `(0.25 + 0.25 + 1.0 + 0.0625) / 4` = 0.390625.
    #[test]
    fn mse_matches_numpy() {
        let device = Device::flex();
        let p = Tensor::<2>::from_data(
            TensorData::new(vec![0.5f32, 2.0, -1.0, 3.25], [4, 1]),
            &device,
        );
        let t = Tensor::<2>::from_data(
            TensorData::new(vec![1.0f32, 2.5, 0.0, 3.0], [4, 1]),
            &device,
        );
        let loss: f32 = mse_loss(p, t).into_scalar();
        assert!((loss - 0.390_625).abs() < 1e-7, "{loss}");
    }

    /// Pearson/Spearman/score of fixed numbers against numpy
    /// (`np.corrcoef([1, 2, 3, 5], [1.5, 1.0, 3.5, 4.0])[0, 1]` = 0.8618916073713346; the same
    /// on the ranks = 0.8).
    #[test]
    fn eval_combines_pearson_and_spearman() {
        let e = regression_eval(&[1.0, 2.0, 3.0, 5.0], &[1.5, 1.0, 3.5, 4.0]);
        assert_eq!(e.examples, 4);
        assert!((e.pearson - 0.861_891_607_371_334_6).abs() < 1e-12, "{e:?}");
        assert!((e.spearman - 0.8).abs() < 1e-12, "{e:?}");
        assert!((e.score - (e.pearson + e.spearman) / 2.0).abs() < 1e-15);
        assert!((e.mse - (0.25 + 1.0 + 0.25 + 1.0) / 4.0).abs() < 1e-12);
    }
}
