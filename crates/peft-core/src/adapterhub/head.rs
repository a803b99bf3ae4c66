//! `head_config.json` of AdapterHub (`adapters` 1.3.0): prediction heads saved beside an
//! adapter (`save_adapter(..., with_head=True)`, `save_head`).
//!
//! Flex-head models (`BertAdapterModel`, …) write `{"config": {"head_type", "num_labels",
//! "layers", "activation_function", "label2id", "use_pooler", "bias", "dropout_prob"}, "name",
//! …}`; models with their own fixed head (`GPT2LMHeadModel`) write a *static* head:
//! `{"config": null, "num_labels", "label2id", …}` whose weights are that model's head
//! (`lm_head.weight`, tied to the embeddings in GPT-2).
//!
//! A classification head is `nn.Sequential` with, per layer `l < layers`: `Dropout`, then for
//! `l < layers - 1` a `Linear(hidden, hidden)` and the activation (if any), and for the last
//! layer a `Linear(hidden, num_labels)`; its tensors are `heads.<name>.<index>.{weight,bias}`
//! ([`classification_linear_indices`]).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::adapterhub::config::HUB_VERSION;
use crate::error::{PeftError, Result};

/// A classification head's `config`. Defaults are `ClassificationHead.__init__`'s
/// (`heads/base.py`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HubClassificationHead {
    /// `classification` (the only head type read here).
    pub head_type: String,
    /// Number of classes. Default: 2.
    #[serde(default = "two")]
    pub num_labels: usize,
    /// Number of linear layers (the last one maps to `num_labels`). Default: 2.
    #[serde(default = "two")]
    pub layers: usize,
    /// Activation after every linear layer but the last; `null` for none. Default: `tanh`.
    #[serde(default = "tanh")]
    pub activation_function: Option<String>,
    /// Class name -> index. Default: null.
    #[serde(default)]
    pub label2id: Option<BTreeMap<String, usize>>,
    /// Read the base model's pooler output instead of the first token. Default: false.
    #[serde(default)]
    pub use_pooler: bool,
    /// A bias in the last linear layer. Default: true.
    #[serde(default = "yes")]
    pub bias: bool,
    /// Dropout before each linear layer; `null` takes the model's `hidden_dropout_prob`.
    /// Default: null.
    #[serde(default)]
    pub dropout_prob: Option<f64>,
    /// Keys this crate does not know, verbatim.
    #[serde(flatten)]
    pub rest: BTreeMap<String, Value>,
}

fn two() -> usize {
    2
}
fn tanh() -> Option<String> {
    Some("tanh".into())
}
fn yes() -> bool {
    true
}

/// What kind of head a `head_config.json` describes.
#[derive(Clone, Debug, PartialEq)]
pub enum HubHead {
    /// A flex classification head (`add_classification_head`).
    Classification(HubClassificationHead),
    /// The fixed head of a model class with its own head (`config: null`), e.g.
    /// `GPT2LMHeadModel`'s `lm_head`.
    Static {
        /// `num_labels` recorded by the saver (the HF config's, meaningless for an LM head).
        num_labels: Option<usize>,
    },
}

/// The whole `head_config.json`.
#[derive(Clone, Debug, PartialEq)]
pub struct HubHeadFile {
    /// The head's name (`null` for a static head).
    pub name: Option<String>,
    /// The head.
    pub head: HubHead,
    /// `model_type` of the saving model.
    pub model_type: Option<String>,
    /// `hidden_size` of the saving model.
    pub hidden_size: Option<usize>,
    /// `model_class` of the saving model, e.g. `BertAdapterModel`.
    pub model_class: Option<String>,
    /// `model_name`, informational.
    pub model_name: Option<String>,
    /// `version`.
    pub version: Option<String>,
    /// Top-level keys this crate does not use, verbatim (a static head's `label2id` lands here).
    pub unknown: BTreeMap<String, Value>,
}

fn malformed(path: &Path, message: impl Into<String>) -> PeftError {
    PeftError::MalformedJson {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn take_string(top: &mut Map<String, Value>, key: &str, path: &Path) -> Result<Option<String>> {
    match top.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(malformed(
            path,
            format!("`{key}` must be a string, got {other}"),
        )),
    }
}

fn take_usize(top: &mut Map<String, Value>, key: &str, path: &Path) -> Result<Option<usize>> {
    match top.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| {
                malformed(
                    path,
                    format!("`{key}` must be a non-negative integer, got {v}"),
                )
            }),
    }
}

impl HubHeadFile {
    /// Parse the text of a `head_config.json`; `path` names the file in errors.
    ///
    /// # Errors
    /// [`PeftError::MalformedJson`]; [`PeftError::HubUnsupported`] for a head type other than
    /// `classification`, or zero `layers`/`num_labels`.
    pub fn from_json(text: &str, path: &Path) -> Result<Self> {
        let raw: Value = serde_json::from_str(text).map_err(|e| malformed(path, e.to_string()))?;
        let Value::Object(mut top) = raw else {
            return Err(malformed(path, "expected a JSON object"));
        };
        let head = match top.remove("config") {
            None => return Err(malformed(path, "missing field `config`")),
            Some(Value::Null) => HubHead::Static {
                num_labels: take_usize(&mut top, "num_labels", path)?,
            },
            Some(Value::Object(map)) => {
                let kind = map.get("head_type").and_then(Value::as_str).unwrap_or("");
                if kind != "classification" {
                    return Err(PeftError::HubUnsupported {
                        path: path.to_path_buf(),
                        field: "config.head_type".into(),
                        message: format!("`{kind}` heads are not supported; only `classification`"),
                    });
                }
                let head: HubClassificationHead = serde_json::from_value(Value::Object(map))
                    .map_err(|e| malformed(path, format!("`config`: {e}")))?;
                if head.layers == 0 || head.num_labels == 0 {
                    return Err(PeftError::HubUnsupported {
                        path: path.to_path_buf(),
                        field: "config.layers".into(),
                        message: format!(
                            "a classification head needs layers >= 1 and num_labels >= 1 (got {} and {})",
                            head.layers, head.num_labels
                        ),
                    });
                }
                HubHead::Classification(head)
            }
            Some(other) => {
                return Err(malformed(
                    path,
                    format!("`config` must be an object or null, got {other}"),
                ));
            }
        };
        Ok(Self {
            name: take_string(&mut top, "name", path)?,
            head,
            model_type: take_string(&mut top, "model_type", path)?,
            hidden_size: take_usize(&mut top, "hidden_size", path)?,
            model_class: take_string(&mut top, "model_class", path)?,
            model_name: take_string(&mut top, "model_name", path)?,
            version: take_string(&mut top, "version", path)?,
            unknown: top.into_iter().collect(),
        })
    }

    /// Read and parse `path`.
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| PeftError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json(&text, path)
    }

    /// Unknown keys, one line each (a static head's `label2id` is expected and not listed).
    pub fn warnings(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .unknown
            .keys()
            .filter(|k| !(matches!(self.head, HubHead::Static { .. }) && *k == "label2id"))
            .map(|k| format!("unknown key `{k}` kept but not used"))
            .collect();
        if let HubHead::Classification(h) = &self.head {
            out.extend(
                h.rest
                    .keys()
                    .map(|k| format!("unknown key `config.{k}` kept but not used")),
            );
        }
        out
    }

    /// A classification head description, as adapters 1.3.0's `save_head` writes it.
    pub fn classification(
        name: &str,
        head: HubClassificationHead,
        model: &crate::adapterhub::config::HubModelInfo,
    ) -> Self {
        Self {
            name: Some(name.to_string()),
            head: HubHead::Classification(head),
            model_type: Some(model.model_type.clone()),
            hidden_size: Some(model.hidden_size),
            model_class: Some(model.model_class.clone()),
            model_name: Some(model.model_name.clone()),
            version: Some(HUB_VERSION.into()),
            unknown: BTreeMap::new(),
        }
    }

    /// The file text (sorted keys, two-space indent). Only classification heads are written.
    pub fn to_json(&self) -> Result<String> {
        let path = Path::new("head_config.json");
        let HubHead::Classification(head) = &self.head else {
            return Err(PeftError::HubUnsupported {
                path: path.to_path_buf(),
                field: "config".into(),
                message: "writing a static head is not supported".into(),
            });
        };
        let mut top: BTreeMap<String, Value> = self.unknown.clone().into_iter().collect();
        let config = serde_json::to_value(head).map_err(|e| malformed(path, e.to_string()))?;
        top.insert("config".into(), config);
        top.insert(
            "name".into(),
            self.name.clone().map_or(Value::Null, Value::from),
        );
        top.insert(
            "hidden_size".into(),
            self.hidden_size.map_or(Value::Null, Value::from),
        );
        for (key, v) in [
            ("model_class", &self.model_class),
            ("model_name", &self.model_name),
            ("model_type", &self.model_type),
            ("version", &self.version),
        ] {
            top.insert(key.into(), v.clone().map_or(Value::Null, Value::from));
        }
        serde_json::to_string_pretty(&top).map_err(|e| malformed(path, e.to_string()))
    }
}

/// The `nn.Sequential` indices of a classification head's linear layers, in order: for
/// `layers = 2` with an activation `[1, 4]` (`0` dropout, `1` linear, `2` activation,
/// `3` dropout, `4` linear); without an activation `[1, 3]`; for `layers = 1` `[1]`.
pub fn classification_linear_indices(layers: usize, has_activation: bool) -> Vec<usize> {
    let mut out = Vec::with_capacity(layers);
    let mut idx = 0;
    for l in 0..layers {
        idx += 1; // dropout
        out.push(idx);
        idx += 1; // linear
        if l + 1 < layers && has_activation {
            idx += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_indices_follow_nn_sequential() {
        // heads/base.py PredictionHead.build: the fixtures' heads are [1, 4] (layers 2, tanh)
        // and [1] (layers 1).
        assert_eq!(classification_linear_indices(2, true), vec![1, 4]);
        assert_eq!(classification_linear_indices(2, false), vec![1, 3]);
        assert_eq!(classification_linear_indices(1, true), vec![1]);
        assert_eq!(classification_linear_indices(3, true), vec![1, 4, 7]);
    }
}
