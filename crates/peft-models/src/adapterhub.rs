//! AdapterHub (`adapters` 1.3.0) directories for our models, both directions.
//!
//! The format itself (file names, config mapping, key names) is [`peft_core::adapterhub`]; each
//! model supplies only its key prefix and site names (`bert/weights.rs`, `gpt2/weights.rs`)
//! through [`HubModel`]. Loading builds each adapter (and head) from the directory's own config
//! on a copy of the model and keeps the copy only when every tensor of the files landed and
//! every tensor the adapter needs was there: a failed load leaves the model exactly as it was.
//!
//! ```no_run
//! use burn::tensor::Device;
//! use peft_core::{Setup, set_active};
//! use peft_models::adapterhub::{load_adapterhub, load_adapterhub_classifier, save_adapterhub_classifier};
//! use peft_models::bert::head::{BertClassifier, HeadPooling};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let device = Device::default();
//! let (mut model, _) = BertClassifier::from_pretrained("all-MiniLM-L6-v2", 2, HeadPooling::DenseTanh, &device)?;
//! // A directory written by Python's `model.save_adapter(dir, "sst2", with_head=True)`:
//! let loaded = load_adapterhub_classifier(&mut model, "sst2-adapter", None, &device)?;
//! println!("{}", loaded.adapter); // name, tensors, and any keys of the files we did not use
//! set_active(&mut model, Some(Setup::single(&loaded.adapter.name)))?;
//! // ... and back: Python reads it with `model.load_adapter(dir, use_safetensors=True)`.
//! save_adapterhub_classifier(&model, &loaded.adapter.name, "sst2-for-python")?;
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::Module;
use burn::tensor::Device;
use peft_core::adapterhub::weights::{find_weights, hub_bytes, place, read_tensors};
use peft_core::adapterhub::{
    self as hub, HEAD_CONFIG_FILE, HEAD_WEIGHTS_BIN, HEAD_WEIGHTS_SAFETENSORS, HubAdapterLoad,
    HubClassificationHead, HubHead, HubHeadFile, HubKeys, HubModelInfo, Landing,
    classification_linear_indices, keys::head_key,
};
use peft_core::{AdapterHost, DEFAULT_ADAPTER, PeftError, adapters, sites};

use crate::bert::BertModel;
use crate::bert::head::{BertClassifier, ClassificationHeadConfig, HeadMeta, HeadPooling};
use crate::bert::weights::hub_keys;
use crate::checkpoint::LoadReport;
use crate::error::{ModelError, Result};
use crate::gpt2::Gpt2Model;
use crate::gpt2::weights::GPT2_HUB_KEYS;

/// A model whose adapters can be read from and written to AdapterHub directories.
pub trait HubModel: AdapterHost + Module {
    /// AdapterHub's key names for this model, relative to this module.
    fn hub_keys(&self) -> HubKeys;
    /// What AdapterHub's `adapter_config.json` records about the model (`model_type`,
    /// `hidden_size`, the flex-head `model_class` a Python loader should use).
    fn hub_info(&self) -> HubModelInfo;
}

impl HubModel for BertModel {
    fn hub_keys(&self) -> HubKeys {
        hub_keys(self.embeddings.position_scheme)
    }

    fn hub_info(&self) -> HubModelInfo {
        let model_type = self.embeddings.position_scheme.architecture();
        HubModelInfo {
            model_type: model_type.into(),
            hidden_size: self.hidden_size,
            model_class: match model_type {
                "roberta" => "RobertaAdapterModel",
                _ => "BertAdapterModel",
            }
            .into(),
            model_name: String::new(),
        }
    }
}

impl HubModel for BertClassifier {
    fn hub_keys(&self) -> HubKeys {
        self.bert.hub_keys().under("bert.")
    }

    fn hub_info(&self) -> HubModelInfo {
        self.bert.hub_info()
    }
}

impl HubModel for Gpt2Model {
    fn hub_keys(&self) -> HubKeys {
        GPT2_HUB_KEYS
    }

    fn hub_info(&self) -> HubModelInfo {
        HubModelInfo {
            model_type: "gpt2".into(),
            hidden_size: self.n_embd,
            model_class: "GPT2AdapterModel".into(),
            model_name: String::new(),
        }
    }
}

/// Load the adapter AdapterHub saved in `dir` onto `model` as `load_as` (default: its name in
/// the file), beside the adapters it has. Head files in `dir` are not read (a classifier reads
/// them with [`load_adapterhub_classifier`]); their presence is listed in the warnings.
///
/// # Errors
/// See [`peft_core::adapterhub::load_hub_adapter`]; the model is unchanged on error.
pub fn load_adapterhub<M: HubModel>(
    model: &mut M,
    dir: impl AsRef<Path>,
    load_as: Option<&str>,
    device: &Device,
) -> Result<HubAdapterLoad> {
    let dir = dir.as_ref();
    let keys = model.hub_keys();
    let mut report = hub::load_hub_adapter(model, &keys, dir, load_as, device)?;
    if dir.join(HEAD_CONFIG_FILE).is_file() {
        report.warnings.push(format!(
            "{HEAD_CONFIG_FILE} not read: this model has no AdapterHub heads (a static head is the model's own, e.g. GPT-2's tied lm_head)"
        ));
    }
    Ok(report)
}

/// Load the fusion layer AdapterHub saved in `dir` (`save_adapter_fusion`); the adapters it
/// fuses must be loaded. Returns the fused adapter names and any warnings.
pub fn load_adapterhub_fusion<M: HubModel>(
    model: &mut M,
    dir: impl AsRef<Path>,
    device: &Device,
) -> Result<(Vec<String>, Vec<String>)> {
    let keys = model.hub_keys();
    Ok(hub::load_hub_fusion(model, &keys, dir, device)?)
}

/// Save adapter `name` in AdapterHub's format (`adapter_config.json` + `adapter.safetensors`).
pub fn save_adapterhub<M: HubModel>(model: &M, name: &str, dir: impl AsRef<Path>) -> Result<()> {
    Ok(hub::save_hub_adapter(
        model,
        &model.hub_keys(),
        name,
        dir,
        &model.hub_info(),
    )?)
}

/// Save the fusion of `names` as `save_adapter_fusion` does.
pub fn save_adapterhub_fusion<M: HubModel, S: AsRef<str>>(
    model: &M,
    names: &[S],
    dir: impl AsRef<Path>,
) -> Result<()> {
    let names: Vec<String> = names.iter().map(|n| n.as_ref().to_string()).collect();
    let config = sites(model)
        .into_iter()
        .find_map(|(_, _, s)| {
            s.fusions()
                .iter()
                .find(|(_, meta, _)| meta.adapters == names)
                .map(|(_, meta, _)| meta.config.clone())
        })
        .ok_or_else(|| PeftError::NotFound {
            kind: "fusion",
            name: names.join(","),
            available: peft_core::fusions(model)
                .iter()
                .map(|f| f.join(","))
                .collect::<Vec<_>>()
                .join("; "),
        })?;
    Ok(hub::save_hub_fusion(
        model,
        &model.hub_keys(),
        &names,
        &config,
        dir,
        &model.hub_info(),
    )?)
}

/// What [`load_adapterhub_classifier`] did.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassifierHubLoad {
    /// The adapter.
    pub adapter: HubAdapterLoad,
    /// The head's name on the model, if the directory held one (it is named like the adapter,
    /// AdapterHub's convention, so a setup ending in the adapter uses it).
    pub head: Option<String>,
}

/// The parts of our [`HeadPooling`] an AdapterHub classification head maps to.
fn head_pooling(h: &HubClassificationHead, path: &Path) -> Result<HeadPooling> {
    let unsupported = |field: &str, message: String| {
        ModelError::from(PeftError::HubUnsupported {
            path: path.to_path_buf(),
            field: field.into(),
            message,
        })
    };
    if !h.bias {
        return Err(unsupported(
            "config.bias",
            "a head without output bias is not supported".into(),
        ));
    }
    match (h.layers, h.use_pooler, h.activation_function.as_deref()) {
        (2, false, Some("tanh")) => Ok(HeadPooling::DenseTanh),
        (1, true, _) => Ok(HeadPooling::Pooler),
        (layers, use_pooler, act) => Err(unsupported(
            "config.layers",
            format!(
                "a classification head with layers {layers}, use_pooler {use_pooler}, activation {act:?} is not supported (supported: layers 2 + tanh on [CLS], or layers 1 on the pooler output)"
            ),
        )),
    }
}

/// Load an AdapterHub adapter directory onto a classifier: the adapter and, when the directory
/// holds one (`save_adapter(..., with_head=True)`), its classification head, both named
/// `load_as` (default: the adapter's name in the file).
///
/// # Errors
/// As [`load_adapterhub`], plus the head's: an unsupported head shape, a name already in use,
/// head tensors that land nowhere or are missing. The model is unchanged on error.
pub fn load_adapterhub_classifier(
    model: &mut BertClassifier,
    dir: impl AsRef<Path>,
    load_as: Option<&str>,
    device: &Device,
) -> Result<ClassifierHubLoad> {
    let dir = dir.as_ref();
    let keys = model.hub_keys();
    let mut staged = model.clone();
    let adapter = hub::load_hub_adapter(&mut staged, &keys, dir, load_as, device)?;
    let head_config = dir.join(HEAD_CONFIG_FILE);
    let head = if head_config.is_file() {
        let file = HubHeadFile::read(&head_config)?;
        let HubHead::Classification(h) = &file.head else {
            return Err(PeftError::HubUnsupported {
                path: head_config,
                field: "config".into(),
                message: "a static head (the saving model's own head) has no place in a classifier"
                    .into(),
            }
            .into());
        };
        let pooling = head_pooling(h, &head_config)?;
        if let Some(hidden) = file.hidden_size
            && hidden != staged.bert.hidden_size
        {
            return Err(PeftError::Incompatible {
                path: head_config,
                message: format!(
                    "head for width {hidden}, model width {}",
                    staged.bert.hidden_size
                ),
            }
            .into());
        }
        let name = adapter.name.clone();
        let name_in_file = file
            .name
            .clone()
            .unwrap_or_else(|| adapter.name_in_file.clone());
        let dropout = h
            .dropout_prob
            .unwrap_or(staged.bert.embeddings.dropout.prob);
        let config = ClassificationHeadConfig::new(staged.bert.hidden_size, h.num_labels)
            .with_pooling(pooling)
            .with_dropout(dropout);
        let mut labels: Vec<(usize, String)> = h
            .label2id
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|(l, i)| (i, l))
            .collect();
        labels.sort();
        let meta = HeadMeta {
            labels: labels.into_iter().map(|(_, l)| l).collect(),
        };
        staged.insert_head(&name, meta, config.init(device)?)?;
        let weights = find_weights(dir, &[HEAD_WEIGHTS_SAFETENSORS, HEAD_WEIGHTS_BIN])?;
        let tensors = read_tensors(&weights)?;
        let linears = classification_linear_indices(h.layers, h.activation_function.is_some());
        let ours: BTreeMap<usize, &str> = match pooling {
            HeadPooling::DenseTanh => [(linears[0], "dense"), (linears[1], "classifier")].into(),
            HeadPooling::Pooler => [(linears[0], "classifier")].into(),
        };
        let prefix = format!("heads.{name}.");
        place(
            &mut staged,
            &weights,
            tensors,
            &|k| {
                let (idx, leaf) = head_key(k, &name_in_file)?;
                let module = ours.get(&idx)?;
                Some(Landing::Path(format!("heads.{name}.{module}.{leaf}")))
            },
            &|p| p.starts_with(&prefix),
        )?;
        Some(name)
    } else {
        None
    };
    *model = staged;
    Ok(ClassifierHubLoad { adapter, head })
}

/// Save adapter `name` and the head of the same name (if the classifier has one) in
/// AdapterHub's format: `adapter_config.json`, `adapter.safetensors`, `head_config.json`,
/// `model_head.safetensors` (Python: `load_adapter(dir, use_safetensors=True)` loads both).
pub fn save_adapterhub_classifier(
    model: &BertClassifier,
    name: &str,
    dir: impl AsRef<Path>,
) -> Result<()> {
    let dir = dir.as_ref();
    save_adapterhub(model, name, dir)?;
    let Some(head) = model.heads.get(name) else {
        return Ok(());
    };
    let labels = model
        .heads
        .meta(name)
        .map(|m| m.labels.clone())
        .unwrap_or_default();
    let num_labels = head.num_labels();
    let label2id: BTreeMap<String, usize> = if labels.len() == num_labels {
        labels
            .into_iter()
            .enumerate()
            .map(|(i, l)| (l, i))
            .collect()
    } else {
        (0..num_labels).map(|i| (format!("LABEL_{i}"), i)).collect()
    };
    let (layers, activation, use_pooler, modules): (usize, Option<String>, bool, Vec<&str>) =
        match head.pooling {
            HeadPooling::DenseTanh => (2, Some("tanh".into()), false, vec!["dense", "classifier"]),
            HeadPooling::Pooler => (1, None, true, vec!["classifier"]),
        };
    let indices = classification_linear_indices(layers, activation.is_some());
    let config = HubClassificationHead {
        head_type: "classification".into(),
        num_labels,
        layers,
        activation_function: activation,
        label2id: Some(label2id),
        use_pooler,
        bias: true,
        dropout_prob: Some(head.dropout.prob),
        rest: BTreeMap::new(),
    };
    let file = HubHeadFile::classification(name, config, &model.hub_info());
    let json = file.to_json()?;
    let bytes = hub_bytes(model, &|p| {
        let Some(rest) = p.strip_prefix(&format!("heads.{name}.")) else {
            return Vec::new();
        };
        let Some((module, leaf)) = rest.split_once('.') else {
            return Vec::new();
        };
        modules
            .iter()
            .position(|m| *m == module)
            .map(|i| vec![format!("heads.{name}.{}.{leaf}", indices[i])])
            .unwrap_or_default()
    })?;
    peft_core::file::write_atomic(&dir.join(HEAD_WEIGHTS_SAFETENSORS), &bytes)?;
    peft_core::file::write_atomic(&dir.join(HEAD_CONFIG_FILE), json.as_bytes())?;
    Ok(())
}

/// Load the adapter tensors of an AdapterHub weights file into the adapter
/// [`DEFAULT_ADAPTER`] that `module` already has (attach it with
/// [`peft_core::attach_adapters`] and the matching config first). The file's adapter may have
/// any name (there must be exactly one). Every tensor of the file must land in the model and
/// every tensor of the default adapter must be in the file; the base is not touched.
///
/// Prefer [`load_adapterhub`], which reads the directory's config and builds the adapter.
///
/// # Errors
/// [`ModelError::UnmatchedWeights`] (file tensors that land nowhere, named by where they would
/// land), [`ModelError::MissingWeights`], [`ModelError::IncompatibleWeights`].
pub fn load_adapterhub_weights<M: HubModel>(
    module: &mut M,
    path: impl AsRef<Path>,
) -> Result<LoadReport> {
    let path = path.as_ref();
    let keys = module.hub_keys();
    let tensors = read_tensors(path)?;
    let mut names: Vec<String> = tensors
        .iter()
        .filter_map(|t| {
            let (_, rest) = t.name.split_once(".adapters.")?;
            rest.split_once('.').map(|(n, _)| n.to_string())
        })
        .collect();
    names.sort();
    names.dedup();
    let file_name = match names.as_slice() {
        [one] => one.clone(),
        _ => {
            return Err(ModelError::UnmatchedWeights {
                path: path.to_path_buf(),
                keys: tensors.iter().map(|t| t.name.clone()).collect(),
            });
        }
    };
    let ln_before = adapters(module)
        .iter()
        .find(|a| a.name == DEFAULT_ADAPTER)
        .is_some_and(|a| {
            a.config
                .bottleneck()
                .is_some_and(|c| c.bottleneck.ln_before)
        });
    let needle = format!(".{}.{DEFAULT_ADAPTER}.", keys.our_adapters);
    let placed = place(
        module,
        path,
        tensors,
        &|k| keys.adapter_landing(k, &file_name, DEFAULT_ADAPTER, ln_before),
        &|p| p.contains(&needle),
    )
    .map_err(|e| match e {
        PeftError::HubUnplaced { path, keys } => ModelError::UnmatchedWeights { path, keys },
        PeftError::HubMissingTensors { path, paths } => {
            ModelError::MissingWeights { path, keys: paths }
        }
        PeftError::Incompatible { path, message } => ModelError::IncompatibleWeights {
            path,
            problems: vec![message],
        },
        other => other.into(),
    })?;
    Ok(LoadReport {
        path: path.to_path_buf(),
        loaded: placed.applied.len(),
        unused: Vec::new(),
        not_in_checkpoint: Vec::new(),
    })
}
