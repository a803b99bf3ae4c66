//! Serving saved classifier adapters: several adapter directories (ours or AdapterHub's), each
//! loaded under its own name onto one loaded base, evaluated one after the other by activating
//! it, and batched predictions with class probabilities in input order.
//!
//! The `sst2` example's `--eval-only` and the `burn-peft eval` / `predict` commands call these.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::tensor::Device;
use burn::tensor::activation::softmax;
use peft_core::adapterhub::{self, HubFile, HubHead, HubHeadFile, is_hub_dir};
use peft_core::{
    AdapterHost, AdapterMethod, DEFAULT_ADAPTER, PeftError, Setup, param_summary,
    read_adapter_file, set_active, sites,
};
use peft_models::adapterhub::load_adapterhub_classifier;
use peft_models::bert::BertInput;
use peft_models::head::{BertClassifier, ClassificationHeadConfig, HeadMeta, HeadPooling};
use peft_models::peft::{load_peft_classifier, peft_classifier_labels};

use crate::adapter_io::load_classifier_adapter;
use crate::data::{ClassificationBatcher, EncodedItem};
use crate::error::{Result, TrainError};
use crate::trainer::{EvalReport, evaluate};

/// The file format of an adapter directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DirFormat {
    /// burn-peft's own (`burn_peft_adapter.json`, or the pre-issue-10 `adapter_config.json`).
    BurnPeft,
    /// AdapterHub's `save_adapter` directory (`adapter_config.json` with a `config` object).
    AdapterHub,
    /// Hugging Face PEFT's `save_pretrained` directory (`adapter_config.json` with a
    /// `peft_type`, `adapter_model.safetensors`): LoRA or IA³, `SEQ_CLS` classifier.
    Peft,
}

impl DirFormat {
    /// The format of `dir`, told apart by its files' content.
    pub fn of(dir: &Path) -> Self {
        if is_hub_dir(dir) {
            Self::AdapterHub
        } else if peft_core::peft::is_peft_dir(dir) {
            Self::Peft
        } else {
            Self::BurnPeft
        }
    }
}

/// The head an adapter directory brings: classes, pooling and class names.
#[derive(Clone, Debug, PartialEq)]
pub struct DirHead {
    /// Number of classes (2 when the directory has no head).
    pub num_labels: usize,
    /// How the head pools the encoder output.
    pub pooling: HeadPooling,
    /// Class names by id, if the file names them.
    pub labels: Vec<String>,
    /// Classifier or regression head: recorded in our files; for AdapterHub and PEFT
    /// directories Hugging Face's rule (one label: regression).
    pub problem_type: peft_core::ProblemType,
}

/// Hugging Face's rule for a config without `problem_type`: one label is regression.
fn inferred_problem_type(num_labels: usize) -> peft_core::ProblemType {
    if num_labels == 1 {
        peft_core::ProblemType::Regression
    } else {
        peft_core::ProblemType::SingleLabelClassification
    }
}

/// The head of the adapter directory `dir` (ours or AdapterHub's), read from its config files
/// only: nothing is loaded.
///
/// # Errors
/// A missing or malformed config file; an AdapterHub static head (not a classifier head).
pub fn dir_head(dir: &Path) -> Result<DirHead> {
    if DirFormat::of(dir) == DirFormat::Peft {
        // PEFT saves no class names; its classifier sits on the pooler.
        let num_labels = peft_classifier_labels(dir)?.unwrap_or(2);
        return Ok(DirHead {
            num_labels,
            pooling: HeadPooling::Pooler,
            labels: Vec::new(),
            problem_type: inferred_problem_type(num_labels),
        });
    }
    if DirFormat::of(dir) == DirFormat::AdapterHub {
        let path = dir.join(adapterhub::HEAD_CONFIG_FILE);
        if !path.is_file() {
            return Ok(DirHead {
                num_labels: 2,
                pooling: HeadPooling::DenseTanh,
                labels: Vec::new(),
                problem_type: peft_core::ProblemType::SingleLabelClassification,
            });
        }
        return match HubHeadFile::read(&path)?.head {
            HubHead::Classification(h) => {
                let mut labels: Vec<(usize, String)> = h
                    .label2id
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(l, i)| (i, l))
                    .collect();
                labels.sort();
                Ok(DirHead {
                    num_labels: h.num_labels,
                    pooling: if h.use_pooler {
                        HeadPooling::Pooler
                    } else {
                        HeadPooling::DenseTanh
                    },
                    labels: labels.into_iter().map(|(_, l)| l).collect(),
                    problem_type: inferred_problem_type(h.num_labels),
                })
            }
            HubHead::Static { .. } => Err(TrainError::NotAnAdapter {
                path,
                message: "a static head (the saving model's own head) is not a classifier head"
                    .into(),
            }),
        };
    }
    let file = read_adapter_file(dir)?;
    Ok(match &file.head {
        Some(h) => DirHead {
            num_labels: h.num_labels,
            pooling: if h.kind == "sequence_classification_pooler" {
                HeadPooling::Pooler
            } else {
                HeadPooling::DenseTanh
            },
            labels: h.label_names.clone(),
            problem_type: h.problem_type,
        },
        None => DirHead {
            num_labels: 2,
            pooling: HeadPooling::DenseTanh,
            labels: Vec::new(),
            problem_type: peft_core::ProblemType::SingleLabelClassification,
        },
    })
}

/// An adapter directory loaded onto a classifier under its own name.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LoadedAdapter {
    /// The directory.
    pub dir: PathBuf,
    /// Its format.
    pub format: DirFormat,
    /// The name of the adapter and of its head on the model.
    pub name: String,
    /// The method (`bottleneck`, `lora`, `ia3`, `prefix_tuning`, …) or `head-only`.
    pub kind: &'static str,
    /// Whether the model holds an adapter of this name (false for head-only).
    pub has_adapter: bool,
    /// Class names of its head, if known.
    pub labels: Vec<String>,
    /// Size in bytes of the adapter's weights file.
    pub weights_bytes: u64,
    /// Seconds the load took (reading, checking, placing the weights).
    pub load_seconds: f64,
}

/// A name for the adapter in `dir` that the model does not use yet: AdapterHub's saved name,
/// else the directory's name (characters outside `[A-Za-z0-9_-]` become `_`), with `_2`, `_3`,
/// ... appended while it is taken.
pub fn free_name(model: &BertClassifier, dir: &Path) -> Result<String> {
    let base = if DirFormat::of(dir) == DirFormat::AdapterHub {
        HubFile::read(dir.join(adapterhub::CONFIG_FILE))?
            .name()
            .to_string()
    } else {
        let canonical = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        let last = canonical
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // A run's `out/adapter` is better known by its run directory's name.
        let pick = if last == "adapter" {
            canonical
                .parent()
                .and_then(Path::file_name)
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or(last)
        } else {
            last
        };
        pick.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let base = if base.is_empty() || base == DEFAULT_ADAPTER {
        "adapter".to_string()
    } else {
        base
    };
    let taken = |n: &str| {
        model.heads.get(n).is_some() || peft_core::adapters(model).iter().any(|a| a.name == n)
    };
    let mut name = base.clone();
    let mut i = 2;
    while taken(&name) {
        name = format!("{base}_{i}");
        i += 1;
    }
    Ok(name)
}

/// Load the adapter directory `dir` (ours or AdapterHub's, with its head) onto `model` under
/// `name`, next to the adapters and heads the model already holds; nothing else changes and
/// the active setup is left as it was ([`activate`] switches to it).
///
/// Our files store their adapter and head as [`DEFAULT_ADAPTER`]: they are loaded into a
/// scratch copy of the base (checks included: base model, head size) and moved over under
/// `name`. A failed load leaves `model` as it was.
///
/// # Errors
/// `name` is taken or invalid; the directory is a fusion (load its adapters, then train or
/// activate the fusion in code) or a fully fine-tuned model; every error of
/// [`load_classifier_adapter`] and [`load_adapterhub_classifier`].
pub fn load_adapter_as(
    model: &mut BertClassifier,
    dir: &Path,
    name: &str,
    device: &Device,
) -> Result<LoadedAdapter> {
    peft_core::setup::check_name(name)?;
    if model.heads.get(name).is_some() || peft_core::adapters(model).iter().any(|a| a.name == name)
    {
        return Err(PeftError::AlreadyExists {
            kind: "adapter",
            name: name.to_string(),
        }
        .into());
    }
    let started = Instant::now();
    let format = DirFormat::of(dir);
    let head = dir_head(dir)?;
    let (kind, has_adapter, weights) = match format {
        DirFormat::Peft => {
            if peft_classifier_labels(dir)?.is_none() {
                return Err(TrainError::NotAnAdapter {
                    path: dir.to_path_buf(),
                    message: "its PEFT weights hold no `classifier` (modules_to_save): there is \
                              no head to classify with"
                        .into(),
                });
            }
            // It makes its head the active one: the active head is left as it was.
            let active = model.active_head.clone();
            let loaded = load_peft_classifier(model, dir, name, device)?;
            model.active_head = active;
            (
                loaded.config.kind().name(),
                true,
                dir.join(peft_core::peft::WEIGHTS_FILE),
            )
        }
        DirFormat::AdapterHub => {
            let loaded = load_adapterhub_classifier(model, dir, Some(name), device)?;
            let kind = loaded.adapter.config.kind().name();
            (kind, true, loaded.adapter.weights)
        }
        DirFormat::BurnPeft => {
            let file = read_adapter_file(dir)?;
            if let AdapterMethod::Fusion { .. } = file.adapter {
                return Err(TrainError::NotAnAdapter {
                    path: dir.to_path_buf(),
                    message: "it holds an AdapterFusion layer, not an adapter: load the fused \
                              adapters, then the fusion, in code"
                        .into(),
                });
            }
            let head_config =
                ClassificationHeadConfig::new(model.bert.hidden_size, head.num_labels)
                    .with_pooling(head.pooling);
            let mut scratch = BertClassifier::new(model.bert.clone(), &head_config, device)?;
            peft_core::remove_adapters(&mut scratch);
            let file = load_classifier_adapter(&mut scratch, dir, device)?;
            let mut staged = model.clone();
            let mut moved = 0;
            // Every kind of module the file attached as `default`: residual sites, LoRA / IA³ on
            // the projections, prefixes and prompts.
            for (layer, site, slot) in sites(&scratch) {
                let dst = staged.adapter_layer_mut(layer, site);
                if let (Some((c, m)), Some(dst)) = (slot.adapters().entry(DEFAULT_ADAPTER), dst) {
                    dst.insert(name, c.clone(), m.clone());
                    moved += 1;
                }
            }
            for (layer, target, slot) in peft_core::linear_sites(&scratch) {
                let Some(dst) = staged.linear_site_mut(layer, target) else {
                    continue;
                };
                if let Some((c, m)) = slot.lora().entry(DEFAULT_ADAPTER) {
                    dst.insert_lora(name, c.clone(), m.clone());
                    moved += 1;
                }
                if let Some((c, m)) = slot.ia3().entry(DEFAULT_ADAPTER) {
                    dst.insert_ia3(name, c.clone(), m.clone());
                    moved += 1;
                }
            }
            if let (Some(src), Some(dst)) = (scratch.prefix_pool(), staged.prefix_pool_mut()) {
                if let Some((c, m)) = src.adapters().entry(DEFAULT_ADAPTER) {
                    dst.insert(name, c.clone(), m.clone());
                    moved += 1;
                }
                if let Some((c, m)) = src.prompts().entry(DEFAULT_ADAPTER) {
                    dst.insert_prompt(name, c.clone(), m.clone());
                    moved += 1;
                }
            }
            let scratch_head = scratch.heads.get(DEFAULT_ADAPTER).cloned().ok_or_else(|| {
                TrainError::InvalidConfig(format!("{}: no head after loading", dir.display()))
            })?;
            staged.insert_head(
                name,
                HeadMeta {
                    labels: head.labels.clone(),
                },
                scratch_head,
            )?;
            *model = staged;
            let kind = file.adapter.name();
            (kind, moved > 0, peft_core::file::weights_file(dir))
        }
    };
    Ok(LoadedAdapter {
        dir: dir.to_path_buf(),
        format,
        name: name.to_string(),
        kind,
        has_adapter,
        labels: head.labels,
        weights_bytes: std::fs::metadata(&weights).map(|m| m.len()).unwrap_or(0),
        load_seconds: started.elapsed().as_secs_f64(),
    })
}

/// Make `loaded` the model's task: its adapter the active setup (none for head-only) and its
/// head the active head.
///
/// # Errors
/// The adapter or head is not on the model.
pub fn activate(model: &mut BertClassifier, loaded: &LoadedAdapter) -> Result<()> {
    let setup = loaded.has_adapter.then(|| Setup::single(&loaded.name));
    set_active(model, setup)?;
    model.set_active_head(&loaded.name)?;
    Ok(())
}

/// One adapter's evaluation on a shared base.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AdapterEval {
    /// The adapter as loaded.
    pub adapter: LoadedAdapter,
    /// Parameters of this adapter and its head.
    pub params: usize,
    /// All parameters of the model with this adapter active (base, every loaded adapter).
    pub total_params: usize,
    /// Seconds switching to it took (setup and head; the base is not touched).
    pub activate_seconds: f64,
    /// Accuracy and loss on the evaluated items.
    pub eval: EvalReport,
}

/// Load every directory of `dirs` onto `model` under its own name ([`free_name`]), then
/// evaluate each on `items` by activating it: one base, no reload between adapters.
///
/// # Errors
/// As [`load_adapter_as`], [`activate`] and [`evaluate`]; a head whose class count differs
/// from the labels of `items` is caught by [`evaluate`]'s checks only when a label exceeds it,
/// so check [`dir_head`] first when the data has its own label set.
pub fn evaluate_adapter_dirs(
    model: &mut BertClassifier,
    dirs: &[PathBuf],
    items: &[EncodedItem],
    batcher: &ClassificationBatcher,
    batch_size: usize,
    device: &Device,
) -> Result<Vec<AdapterEval>> {
    let mut loaded = Vec::new();
    for dir in dirs {
        let name = free_name(model, dir)?;
        loaded.push(load_adapter_as(model, dir, &name, device)?);
    }
    let mut rows = Vec::new();
    for adapter in loaded {
        let started = Instant::now();
        activate(model, &adapter)?;
        let activate_seconds = started.elapsed().as_secs_f64();
        if let Some(bad) = items
            .iter()
            .find(|i| i.label >= model.head().map(|h| h.num_labels()).unwrap_or(0))
        {
            return Err(TrainError::InvalidConfig(format!(
                "{}: its head has {} classes, the data has label {}",
                adapter.dir.display(),
                model.head()?.num_labels(),
                bad.label
            )));
        }
        let eval = evaluate(model, items, batcher, batch_size, device)?;
        let summary = param_summary(model, &BertClassifier::task_trainable(&adapter.name))?;
        rows.push(AdapterEval {
            adapter,
            params: summary.selected,
            total_params: summary.total,
            activate_seconds,
            eval,
        });
    }
    Ok(rows)
}

/// Class probabilities (softmax of the active head's logits) for every item, in the order of
/// `items`. Items are batched by length (longest first, so padding stays small), at most
/// `batch_size` per batch; the model runs in eval mode (no dropout).
///
/// # Errors
/// [`TrainError::InvalidConfig`] for a zero `batch_size`; items that do not fit the model
/// (length, token ids).
pub fn predict_proba(
    model: &BertClassifier,
    items: &[EncodedItem],
    batcher: &ClassificationBatcher,
    batch_size: usize,
    device: &Device,
) -> Result<Vec<Vec<f32>>> {
    if batch_size == 0 {
        return Err(TrainError::InvalidConfig(
            "batch size must be at least 1".into(),
        ));
    }
    batcher.check_fits(&model.bert.input_limits(), items)?;
    let model = model.valid();
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(items[i].input_ids.len()));
    let mut out = vec![Vec::new(); items.len()];
    for chunk in order.chunks(batch_size) {
        let batch: Vec<EncodedItem> = chunk.iter().map(|&i| items[i].clone()).collect();
        let (input_ids, token_type_ids, attention_mask) = batcher.pad(&batch).into_tensors(device);
        let input = BertInput::new(input_ids)
            .with_token_type_ids(token_type_ids)
            .with_attention_mask(attention_mask);
        let logits = model.forward(input);
        let [rows, classes] = logits.dims();
        let probs = softmax(logits, 1)
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .map_err(|e| TrainError::InvalidConfig(format!("reading probabilities: {e:?}")))?;
        for (r, &i) in chunk.iter().enumerate().take(rows) {
            out[i] = probs[r * classes..(r + 1) * classes].to_vec();
        }
    }
    Ok(out)
}

/// Record `labels` (class names by id) as the head's labels in our adapter directory `dir`
/// (its [`peft_core::file::CONFIG_FILE`]); a directory without a head is left as it is.
///
/// # Errors
/// The description cannot be read or written; `labels` does not match the head's class count.
pub fn set_head_labels(dir: &Path, labels: &[String]) -> Result<()> {
    let mut file = read_adapter_file(dir)?;
    let Some(head) = file.head.as_mut() else {
        return Ok(());
    };
    if head.num_labels != labels.len() {
        return Err(TrainError::InvalidConfig(format!(
            "{}: {} label names for a head of {} classes",
            dir.display(),
            labels.len(),
            head.num_labels
        )));
    }
    head.label_names = labels.to_vec();
    let path = dir.join(peft_core::file::CONFIG_FILE);
    let json = serde_json::to_vec_pretty(&file)
        .map_err(|e| TrainError::InvalidConfig(format!("{}: {e}", path.display())))?;
    peft_core::file::write_atomic(&path, &json)?;
    Ok(())
}
