//! Putting saved adapters onto a loaded classifier, and swapping them; saving and loading
//! fully fine-tuned classifiers, which are whole models, not adapters.

use std::path::Path;

use burn::store::{BurnToPyTorchAdapter, ModuleSnapshot, SafetensorsStore};
use burn::tensor::Device;
use peft_core::{
    AdapterFile, AdapterMethod, HeadInfo, PeftError, Trainable, attach_adapters,
    load_adapter_weights, read_adapter_file, remove_adapters,
};
use peft_models::checkpoint::load_hf_subset;
use peft_models::head::{BertClassifier, HEAD_PATTERN, HeadPooling};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::run::io_err;

/// The description of a fully fine-tuned classifier, next to its `model.safetensors` and
/// `config.json`.
pub const FULL_MODEL_FILE: &str = "classifier.json";

/// The weights file of a fully fine-tuned classifier.
pub const FULL_WEIGHTS_FILE: &str = "model.safetensors";

/// What `classifier.json` holds: the head of a fully fine-tuned classifier.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FullModelFile {
    /// The library that wrote it.
    pub library: String,
    /// The head (kind and number of classes).
    pub head: HeadInfo,
    /// How the head pools the encoder output.
    pub pooling: HeadPooling,
}

/// Save a fully fine-tuned classifier as a model directory `dir`: `model.safetensors` (every
/// weight, encoder under `bert.`, head under `head.`; PyTorch layout), `config.json` copied from
/// `base_dir` (the directory the base was loaded from) and [`FULL_MODEL_FILE`]. The encoder
/// loads with [`peft_models::bert::BertModel::from_pretrained`], the whole classifier with
/// [`load_full_classifier`]. Returns the size of the weights file.
///
/// # Errors
/// [`TrainError::Io`] when `base_dir` has no `config.json` or a file cannot be written;
/// [`TrainError::Peft`] when the weights cannot be serialised.
pub fn save_full_classifier(model: &BertClassifier, dir: &Path, base_dir: &Path) -> Result<u64> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let config_src = base_dir.join("config.json");
    let config = std::fs::read(&config_src).map_err(io_err(&config_src))?;
    let weights_err = |message: String| PeftError::Weights {
        path: dir.join(FULL_WEIGHTS_FILE),
        message,
    };
    let mut store = SafetensorsStore::from_bytes(None)
        .with_to_adapter(BurnToPyTorchAdapter)
        .metadata("format", "pt");
    model
        .save_into(&mut store)
        .map_err(|e| weights_err(e.to_string()))?;
    let bytes = store.get_bytes().map_err(|e| weights_err(e.to_string()))?;
    let description = FullModelFile {
        library: format!("burn-peft {}", env!("CARGO_PKG_VERSION")),
        head: model.head_info(),
        pooling: model.head()?.pooling,
    };
    let json = serde_json::to_vec_pretty(&description)
        .map_err(|e| TrainError::InvalidConfig(e.to_string()))?;
    peft_core::file::write_atomic(&dir.join(FULL_WEIGHTS_FILE), &bytes)?;
    peft_core::file::write_atomic(&dir.join("config.json"), &config)?;
    peft_core::file::write_atomic(&dir.join(FULL_MODEL_FILE), &json)?;
    Ok(bytes.len() as u64)
}

/// Load a classifier saved by [`save_full_classifier`] (full fine-tuning) from `dir`.
///
/// # Errors
/// [`TrainError::Io`] / [`TrainError::InvalidConfig`] when `dir` has no readable
/// [`FULL_MODEL_FILE`] (e.g. it is an adapter directory); model errors from loading the weights.
pub fn load_full_classifier(dir: impl AsRef<Path>, device: &Device) -> Result<BertClassifier> {
    let dir = dir.as_ref();
    let path = dir.join(FULL_MODEL_FILE);
    let text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
    let file: FullModelFile = serde_json::from_str(&text)
        .map_err(|e| TrainError::InvalidConfig(format!("{}: {e}", path.display())))?;
    let (mut model, _) =
        BertClassifier::from_pretrained(dir, file.head.num_labels, file.pooling, device)?;
    load_hf_subset(
        &mut model,
        dir.join(FULL_WEIGHTS_FILE),
        &[],
        &Trainable::none().with_pattern(HEAD_PATTERN),
    )?;
    Ok(model)
}

/// A path every BERT base has: an adapter file whose saved selection matches it would
/// overwrite the shared base.
const BASE_PROBE: &str = "bert.embeddings.word_embeddings.weight";

/// Put the adapter saved in `dir` onto `model` (a classifier on a loaded base), replacing the
/// adapters and head weights it had: checks that the adapter was made for this base and head
/// size, attaches adapters as the file says, and loads adapter and head weights.
///
/// Swapping tasks on one loaded base is calling this again with another directory; the base
/// is never reloaded.
///
/// # Errors
/// [`TrainError::NotAnAdapter`] for a fully fine-tuned model directory, or an adapter file
/// whose saved tensors include the base (it would overwrite the shared base); adapter-file
/// errors ([`TrainError::Peft`]) for a missing, malformed or incompatible adapter.
pub fn load_classifier_adapter(
    model: &mut BertClassifier,
    dir: impl AsRef<Path>,
    device: &Device,
) -> Result<AdapterFile> {
    let dir = dir.as_ref();
    let described = [
        peft_core::file::CONFIG_FILE,
        peft_core::file::LEGACY_CONFIG_FILE,
    ]
    .iter()
    .any(|f| dir.join(f).exists());
    if !described && dir.join(FULL_MODEL_FILE).is_file() {
        return Err(TrainError::NotAnAdapter {
            path: dir.to_path_buf(),
            message: "it holds a fully fine-tuned model: load it with \
                      `adapter_io::load_full_classifier`"
                .into(),
        });
    }
    let file = read_adapter_file(dir)?;
    if file.saved().matches(BASE_PROBE)? {
        return Err(TrainError::NotAnAdapter {
            path: dir.to_path_buf(),
            message: format!(
                "its saved tensors ({}) include the base model's: loading it would overwrite \
                 the shared base (a full fine-tuning saved as an adapter by an older version; \
                 retrain, it is now saved as a model)",
                file.saved_patterns.join(", ")
            ),
        });
    }
    file.check_base(&model.base_info(), dir)?;
    if let Some(head) = &file.head
        && head.num_labels != model.head()?.num_labels()
    {
        return Err(PeftError::Incompatible {
            path: dir.to_path_buf(),
            message: format!(
                "the adapter's head has {} classes, the model's {}",
                head.num_labels,
                model.head()?.num_labels()
            ),
        }
        .into());
    }
    match &file.adapter {
        AdapterMethod::Bottleneck(config) => {
            attach_adapters(model, config, device)?;
        }
        AdapterMethod::Lora(_)
        | AdapterMethod::Ia3(_)
        | AdapterMethod::PrefixTuning(_)
        | AdapterMethod::PromptTuning(_) => {
            let config = file.adapter.method_config().ok_or_else(|| {
                PeftError::InvalidConfig(format!("{}: no adapter config", dir.display()))
            })?;
            remove_adapters(model);
            peft_core::add_adapter(model, peft_core::DEFAULT_ADAPTER, &config, device)?;
            peft_core::set_active(
                model,
                Some(peft_core::Setup::single(peft_core::DEFAULT_ADAPTER)),
            )?;
        }
        AdapterMethod::HeadOnly => {
            remove_adapters(model);
        }
        AdapterMethod::Fusion { adapters, config } => {
            if !peft_core::fusions(model).contains(adapters) {
                peft_core::add_fusion(model, adapters, config, device)?;
            }
            peft_core::set_active(
                model,
                Some(peft_core::Setup::fuse(adapters.iter().cloned())),
            )?;
        }
    }
    load_adapter_weights(model, dir, &file)?;
    Ok(file)
}
