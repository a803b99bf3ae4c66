//! Hugging Face PEFT 0.21 directories for our BERT classifier: PEFT's `SEQ_CLS` task, whose
//! `modules_to_save` classifier is `BertForSequenceClassification`'s `classifier` (on the
//! pre-trained pooler: our [`HeadPooling::Pooler`] head).
//!
//! The format itself (config, key names, LoRA/IA³ tensors) is [`peft_core::peft`]; BERT's and
//! GPT-2's module names are `BERT_PEFT_KEYS` / `GPT2_PEFT_KEYS` in their `weights.rs`. For the
//! bare models use [`peft_core::peft::load_peft`] / [`peft_core::peft::save_peft`] with those.

use std::path::{Path, PathBuf};

use burn::module::Param;
use burn::tensor::{Device, Tensor, TensorData};
use peft_core::PeftError;
use peft_core::peft::{
    PeftLoad, SavedModuleTensor, load_peft_with_modules, save_peft_with_modules,
};

use crate::bert::head::{BertClassifier, ClassificationHeadConfig, HeadMeta, HeadPooling};
use crate::bert::weights::BERT_SEQ_CLS_PEFT_KEYS;
use crate::error::Result;

/// PEFT's `modules_to_save` for `SEQ_CLS` (it adds both names; BERT has `classifier`).
pub const SEQ_CLS_MODULES: [&str; 2] = ["classifier", "score"];

fn tensor<'a>(saved: &'a [SavedModuleTensor], key: &str) -> Option<&'a SavedModuleTensor> {
    saved.iter().find(|t| t.key == key)
}

/// The classes of the `modules_to_save` classifier in the PEFT directory `dir` (the first
/// dimension of `classifier.weight`), read from the weights file's header; `None` when it saved
/// no classifier.
///
/// # Errors
/// The weights file cannot be read or its header parsed.
pub fn peft_classifier_labels(dir: impl AsRef<Path>) -> Result<Option<usize>> {
    let path = dir.as_ref().join(peft_core::peft::WEIGHTS_FILE);
    let bytes = std::fs::read(&path).map_err(|e| PeftError::Weights {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let (_, meta) =
        safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| PeftError::Weights {
            path: path.clone(),
            message: e.to_string(),
        })?;
    let key = format!("{}classifier.weight", peft_core::peft::PEFT_PREFIX);
    Ok(meta
        .tensors()
        .get(&key)
        .and_then(|t| t.shape.first().copied()))
}

/// Load a PEFT `SEQ_CLS` directory saved from `BertForSequenceClassification`: its adapter as
/// `name` and, when it saved the classifier, a [`HeadPooling::Pooler`] head `name` (made the
/// active head). Returns what was loaded. A failed load leaves the model as it was.
///
/// Errors: those of [`peft_core::peft::load_peft`], a head name already in use, a classifier
/// whose shape does not fit the model, a saved module we have no place for.
pub fn load_peft_classifier(
    model: &mut BertClassifier,
    dir: impl AsRef<Path>,
    name: &str,
    device: &Device,
) -> Result<PeftLoad> {
    let dir = dir.as_ref();
    let before = model.clone();
    let result = (|| {
        let (load, saved) = load_peft_with_modules(
            model,
            dir,
            name,
            &BERT_SEQ_CLS_PEFT_KEYS,
            device,
            &SEQ_CLS_MODULES,
        )?;
        if saved.is_empty() {
            return Ok(load);
        }
        let weights = dir.join(peft_core::peft::WEIGHTS_FILE);
        let unplaced: Vec<String> = saved
            .iter()
            .filter(|t| t.key != "classifier.weight" && t.key != "classifier.bias")
            .map(|t| format!("base_model.model.{}", t.key))
            .collect();
        if !unplaced.is_empty() {
            return Err(PeftError::HubUnplaced {
                path: weights,
                keys: unplaced,
            }
            .into());
        }
        let (Some(w), Some(b)) = (
            tensor(&saved, "classifier.weight"),
            tensor(&saved, "classifier.bias"),
        ) else {
            return Err(PeftError::HubMissingTensors {
                path: weights,
                paths: vec![
                    "base_model.model.classifier.weight".into(),
                    "base_model.model.classifier.bias".into(),
                ],
            }
            .into());
        };
        let hidden = model.bert.hidden_size;
        let labels = w.shape.first().copied().unwrap_or(0);
        if w.shape != [labels, hidden] || b.shape != [labels] || labels == 0 {
            return Err(PeftError::Weights {
                path: weights,
                message: format!(
                    "classifier weight {:?} / bias {:?} do not fit hidden size {hidden}",
                    w.shape, b.shape
                ),
            }
            .into());
        }
        let mut head = ClassificationHeadConfig::new(hidden, labels)
            .with_pooling(HeadPooling::Pooler)
            .init(device)?;
        // [labels, hidden] -> our [hidden, labels], transposed on the host.
        let mut wt = vec![0.0f32; w.data.len()];
        for i in 0..labels {
            for j in 0..hidden {
                wt[j * labels + i] = w.data[i * hidden + j];
            }
        }
        head.classifier.weight = Param::from_tensor(Tensor::<2>::from_data(
            TensorData::new(wt, [hidden, labels]),
            device,
        ));
        head.classifier.bias = Some(Param::from_tensor(Tensor::<1>::from_data(
            TensorData::new(b.data.clone(), [labels]),
            device,
        )));
        model.insert_head(name, HeadMeta::default(), head)?;
        model.set_active_head(name)?;
        Ok(load)
    })();
    if result.is_err() {
        *model = before;
    }
    result
}

/// Save adapter `name` and head `name` of `model` as a PEFT `SEQ_CLS` directory that
/// `PeftModel.from_pretrained(BertForSequenceClassification...)` loads (keys under `bert.`,
/// `modules_to_save: ["classifier"]`). Only [`HeadPooling::Pooler`] heads have a place there.
pub fn save_peft_classifier(
    model: &BertClassifier,
    name: &str,
    dir: impl AsRef<Path>,
    base_model_name_or_path: Option<&str>,
) -> Result<PathBuf> {
    let head = model.heads.require("head", name)?;
    if head.pooling != HeadPooling::Pooler {
        return Err(PeftError::Unsupported {
            field: "head".into(),
            message: format!(
                "head `{name}` has its own dense layer; BertForSequenceClassification's classifier sits on the pooler (HeadPooling::Pooler)"
            ),
        }
        .into());
    }
    let w = head.classifier.weight.val();
    let [hidden, labels] = w.dims();
    let values = |t: TensorData| {
        t.convert::<f32>()
            .try_to_vec::<f32>()
            .map_err(|e| PeftError::InvalidConfig(format!("head tensor: {e:?}")))
    };
    let data = values(w.transpose().into_data())?;
    let mut extra = vec![SavedModuleTensor {
        key: "classifier.weight".into(),
        shape: vec![labels, hidden],
        data,
    }];
    if let Some(b) = &head.classifier.bias {
        extra.push(SavedModuleTensor {
            key: "classifier.bias".into(),
            shape: vec![labels],
            data: values(b.val().into_data())?,
        });
    }
    Ok(save_peft_with_modules(
        model,
        name,
        dir,
        &BERT_SEQ_CLS_PEFT_KEYS,
        Some("SEQ_CLS"),
        base_model_name_or_path,
        &["classifier".to_string()],
        &extra,
    )?)
}
