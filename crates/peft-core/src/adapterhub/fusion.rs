//! `adapter_fusion_config.json` of AdapterHub (`save_adapter_fusion`): `{"adapter_names": [..],
//! "config": {<AdapterFusionConfig>}, "name": "a,b", "hidden_size", "model_class", ...}`.
//! [`FusionConfig`]'s fields are AdapterHub's, so the `config` object maps one to one.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value};

use crate::adapterhub::config::{HUB_VERSION, HubModelInfo};
use crate::error::{PeftError, Result};
use crate::fusion::FusionConfig;

/// The fields of AdapterHub's `AdapterFusionConfig` (`configuration/adapter_fusion_config.py`).
pub const FUSION_FIELDS: [&str; 10] = [
    "key",
    "query",
    "value",
    "query_before_ln",
    "regularization",
    "residual_before",
    "temperature",
    "value_before_softmax",
    "value_initialized",
    "dropout_prob",
];

/// The whole `adapter_fusion_config.json`.
#[derive(Clone, Debug, PartialEq)]
pub struct HubFusionFile {
    /// The fusion's name: the fused adapters joined by `,`.
    pub name: String,
    /// The fused adapters, in order.
    pub adapter_names: Vec<String>,
    /// The fusion layer's config.
    pub config: FusionConfig,
    /// `hidden_size` of the saving model.
    pub hidden_size: Option<usize>,
    /// `model_type`, `model_class`, `model_name`, `version` and keys this crate does not know,
    /// verbatim.
    pub rest: BTreeMap<String, Value>,
    /// Keys inside `config` this crate does not know.
    pub unknown_config: BTreeMap<String, Value>,
}

fn malformed(path: &Path, message: impl Into<String>) -> PeftError {
    PeftError::MalformedJson {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

impl HubFusionFile {
    /// Parse the text of an `adapter_fusion_config.json`; `path` names the file in errors.
    ///
    /// # Errors
    /// [`PeftError::MalformedJson`]; [`PeftError::HubUnsupported`] for options
    /// [`FusionConfig::validate`] rejects (`temperature: true`).
    pub fn from_json(text: &str, path: &Path) -> Result<Self> {
        let raw: Value = serde_json::from_str(text).map_err(|e| malformed(path, e.to_string()))?;
        let Value::Object(mut top) = raw else {
            return Err(malformed(path, "expected a JSON object"));
        };
        let Some(Value::Object(mut config)) = top.remove("config") else {
            return Err(malformed(path, "missing object field `config`"));
        };
        let unknown_config: BTreeMap<String, Value> = config
            .iter()
            .filter(|(k, _)| !FUSION_FIELDS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        config.retain(|k, _| FUSION_FIELDS.contains(&k.as_str()));
        // AdapterHub types `value_initialized` as a string but writes booleans.
        if let Some(v) = config.get_mut("value_initialized")
            && let Value::String(s) = v
        {
            *v = Value::from(!s.is_empty() && s != "false" && s != "False");
        }
        let config: FusionConfig = serde_json::from_value(Value::Object(config))
            .map_err(|e| malformed(path, format!("`config`: {e}")))?;
        config.validate().map_err(|e| match e {
            PeftError::Unsupported { field, message } => PeftError::HubUnsupported {
                path: path.to_path_buf(),
                field: format!("config.{field}"),
                message,
            },
            other => other,
        })?;
        let adapter_names: Vec<String> = match top.remove("adapter_names") {
            Some(Value::Array(a)) => a
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    other => Err(malformed(
                        path,
                        format!("`adapter_names` holds {other}, not a name"),
                    )),
                })
                .collect::<Result<_>>()?,
            _ => return Err(malformed(path, "missing array field `adapter_names`")),
        };
        let name = match top.remove("name") {
            Some(Value::String(s)) => s,
            _ => adapter_names.join(","),
        };
        let hidden_size = top
            .remove("hidden_size")
            .and_then(|v| v.as_u64())
            .and_then(|n| usize::try_from(n).ok());
        Ok(Self {
            name,
            adapter_names,
            config,
            hidden_size,
            rest: top.into_iter().collect(),
            unknown_config,
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

    /// Keys this crate does not use, one line each.
    pub fn warnings(&self) -> Vec<String> {
        const META: [&str; 4] = ["model_type", "model_class", "model_name", "version"];
        self.rest
            .keys()
            .filter(|k| !META.contains(&k.as_str()))
            .map(|k| format!("unknown key `{k}` kept but not used"))
            .chain(
                self.unknown_config
                    .keys()
                    .map(|k| format!("unknown key `config.{k}` kept but not used")),
            )
            .collect()
    }

    /// The description of a fusion of `adapter_names`, as `save_adapter_fusion` writes it.
    pub fn new(adapter_names: &[String], config: &FusionConfig, model: &HubModelInfo) -> Self {
        let rest = [
            ("model_type", model.model_type.clone()),
            ("model_class", model.model_class.clone()),
            ("model_name", model.model_name.clone()),
            ("version", HUB_VERSION.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), Value::from(v)))
        .collect();
        Self {
            name: adapter_names.join(","),
            adapter_names: adapter_names.to_vec(),
            config: config.clone(),
            hidden_size: Some(model.hidden_size),
            rest,
            unknown_config: BTreeMap::new(),
        }
    }

    /// The file text (sorted keys, two-space indent).
    pub fn to_json(&self) -> Result<String> {
        let path = Path::new("adapter_fusion_config.json");
        let mut config = match serde_json::to_value(&self.config) {
            Ok(Value::Object(m)) => m,
            Ok(_) | Err(_) => {
                return Err(malformed(
                    path,
                    "fusion config does not serialise to an object",
                ));
            }
        };
        for (k, v) in &self.unknown_config {
            config.insert(k.clone(), v.clone());
        }
        let config: BTreeMap<String, Value> = config.into_iter().collect();
        let mut top: BTreeMap<String, Value> = self.rest.clone();
        top.insert("config".into(), Value::Object(Map::from_iter(config)));
        top.insert(
            "adapter_names".into(),
            Value::from(self.adapter_names.clone()),
        );
        top.insert("name".into(), Value::from(self.name.clone()));
        top.insert(
            "hidden_size".into(),
            self.hidden_size.map_or(Value::Null, Value::from),
        );
        serde_json::to_string_pretty(&top).map_err(|e| malformed(path, e.to_string()))
    }
}
