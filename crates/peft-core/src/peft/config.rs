//! PEFT 0.21's `adapter_config.json` for LoRA (`peft/tuners/lora/config.py`, `LoraConfig`).

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};

use crate::error::{PeftError, Result};
use crate::lora::{LoraConfig, LoraInit, MAX_LORA_RANK};

/// Keys PEFT writes that carry no maths we need (provenance, serving hints).
const INFORMATIONAL: &[&str] = &[
    "base_model_name_or_path",
    "revision",
    "inference_mode",
    "peft_version",
    "auto_mapping",
    "megatron_core",
    "qalora_group_size",
    "ensure_weight_tying",
    "task_type",
];

/// Options we do not implement: accepted only when off (`null`, `false`, `{}` or `[]`).
const OFF_ONLY: &[&str] = &[
    "use_dora",
    "layer_replication",
    "rank_pattern",
    "alpha_pattern",
    "layers_to_transform",
    "layers_pattern",
    "lora_bias",
    "exclude_modules",
    "target_parameters",
    "trainable_token_indices",
    "use_qalora",
    "use_bdlora",
    "alora_invocation_tokens",
    "megatron_config",
    "loftq_config",
    "eva_config",
    "corda_config",
    "arrow_config",
    "kasa_config",
    "lora_ga_config",
    "monteclora_config",
    "velora_config",
];

/// A PEFT LoRA `adapter_config.json`, read into what we implement.
#[derive(Clone, Debug, PartialEq)]
pub struct PeftLoraFile {
    /// `r`.
    pub r: usize,
    /// `lora_alpha`.
    pub lora_alpha: f64,
    /// `lora_dropout`.
    pub lora_dropout: f64,
    /// `target_modules`: module-name suffixes (PEFT matches a module whose name equals one or
    /// ends with `.` + one).
    pub target_modules: Vec<String>,
    /// `use_rslora`.
    pub use_rslora: bool,
    /// `fan_in_fan_out` (true for GPT-2's `Conv1D`).
    pub fan_in_fan_out: bool,
    /// `init_lora_weights` (`true`, `"gaussian"`, `false`).
    pub init: LoraInit,
    /// `task_type` (e.g. `CAUSAL_LM`, `SEQ_CLS`), if given.
    pub task_type: Option<String>,
    /// `base_model_name_or_path`, if given.
    pub base_model_name_or_path: Option<String>,
    /// `modules_to_save`: modules trained in full and saved beside the adapter (PEFT's
    /// `SEQ_CLS` adds `classifier` and `score`). Only a caller that places them accepts them
    /// (see [`crate::peft::load_peft_with_modules`]).
    pub modules_to_save: Vec<String>,
    /// Keys this crate does not know, kept as they were (see [`PeftLoraFile::warnings`]).
    pub unknown: BTreeMap<String, Value>,
}

fn is_off(v: &Value) -> bool {
    match v {
        Value::Null | Value::Bool(false) => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

impl PeftLoraFile {
    /// Parse the text of an `adapter_config.json` (at `path`, for messages).
    ///
    /// Errors: not JSON, `peft_type` other than `LORA`, a missing or mistyped `r` /
    /// `lora_alpha` / `target_modules`, and every option we do not implement when it is on
    /// (`use_dora: true`, `layer_replication`, `bias` other than `"none"`, `rank_pattern`,
    /// `alpha_pattern`, `layers_to_transform`, a regex `target_modules`, …),
    /// each a [`PeftError::HubUnsupported`] naming the field.
    pub fn from_json(text: &str, path: &Path) -> Result<Self> {
        let malformed = |message: String| PeftError::MalformedJson {
            path: path.to_path_buf(),
            message,
        };
        let unsupported = |field: &str, message: String| PeftError::HubUnsupported {
            path: path.to_path_buf(),
            field: field.to_string(),
            message,
        };
        let value: Value = serde_json::from_str(text).map_err(|e| malformed(e.to_string()))?;
        let Value::Object(map) = value else {
            return Err(malformed("not a JSON object".into()));
        };
        match map.get("peft_type").and_then(Value::as_str) {
            Some("LORA") => {}
            Some(other) => {
                return Err(unsupported(
                    "peft_type",
                    format!("`{other}`; this loader reads LORA"),
                ));
            }
            None => return Err(malformed("`peft_type` missing (not a PEFT config?)".into())),
        }
        let r = map
            .get("r")
            .and_then(Value::as_u64)
            .ok_or_else(|| malformed("`r` missing or not a positive integer".into()))?;
        let r = usize::try_from(r).unwrap_or(usize::MAX);
        if r == 0 || r > MAX_LORA_RANK {
            return Err(malformed(format!(
                "`r` must be in 1..={MAX_LORA_RANK}, got {r}"
            )));
        }
        let lora_alpha = map
            .get("lora_alpha")
            .and_then(Value::as_f64)
            .ok_or_else(|| malformed("`lora_alpha` missing or not a number".into()))?;
        let lora_dropout = match map.get("lora_dropout") {
            None | Some(Value::Null) => 0.0,
            Some(v) => v
                .as_f64()
                .ok_or_else(|| malformed("`lora_dropout` is not a number".into()))?,
        };
        let target_modules = match map.get("target_modules") {
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| malformed("`target_modules` holds a non-string".into()))
                })
                .collect::<Result<Vec<_>>>()?,
            Some(Value::String(s)) => {
                return Err(unsupported(
                    "target_modules",
                    format!(
                        "`{s}` is a regular expression (or `all-linear`); give the module names as a list"
                    ),
                ));
            }
            _ => return Err(malformed("`target_modules` missing or not a list".into())),
        };
        let flag = |key: &str| -> Result<bool> {
            match map.get(key) {
                None | Some(Value::Null) => Ok(false),
                Some(Value::Bool(b)) => Ok(*b),
                Some(_) => Err(malformed(format!("`{key}` is not a boolean"))),
            }
        };
        let use_rslora = flag("use_rslora")?;
        let fan_in_fan_out = flag("fan_in_fan_out")?;
        match map.get("bias") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if s == "none" => {}
            Some(v) => {
                return Err(unsupported(
                    "bias",
                    format!("{v}; only \"none\" (no trained biases) is supported"),
                ));
            }
        }
        let init = match map.get("init_lora_weights") {
            None | Some(Value::Bool(true)) => LoraInit::Default,
            Some(Value::Bool(false)) => LoraInit::Random,
            Some(Value::String(s)) if s == "gaussian" => LoraInit::Gaussian,
            Some(v) => {
                return Err(unsupported(
                    "init_lora_weights",
                    format!("{v}; supported: true, false, \"gaussian\""),
                ));
            }
        };
        for key in OFF_ONLY {
            if let Some(v) = map.get(*key)
                && !is_off(v)
            {
                return Err(unsupported(key, format!("{v} is not supported (only off)")));
            }
        }
        let known = [
            "peft_type",
            "r",
            "lora_alpha",
            "lora_dropout",
            "target_modules",
            "use_rslora",
            "fan_in_fan_out",
            "bias",
            "init_lora_weights",
            "modules_to_save",
        ];
        let unknown = map
            .iter()
            .filter(|(k, _)| {
                !known.contains(&k.as_str())
                    && !INFORMATIONAL.contains(&k.as_str())
                    && !OFF_ONLY.contains(&k.as_str())
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let text_of = |key: &str| map.get(key).and_then(Value::as_str).map(str::to_string);
        let modules_to_save = names(&map, "modules_to_save", path)?;
        Ok(Self {
            modules_to_save,
            r,
            lora_alpha,
            lora_dropout,
            target_modules,
            use_rslora,
            fan_in_fan_out,
            init,
            task_type: text_of("task_type"),
            base_model_name_or_path: text_of("base_model_name_or_path"),
            unknown,
        })
    }

    /// One line per unknown key (kept, not applied).
    pub fn warnings(&self) -> Vec<String> {
        self.unknown
            .keys()
            .map(|k| format!("unknown adapter_config.json key `{k}` kept but not applied"))
            .collect()
    }

    /// Our config with the given typed targets (resolved by the model's key names).
    pub fn lora_config(&self, targets: Vec<crate::lora::LinearTarget>) -> LoraConfig {
        LoraConfig {
            rank: self.r,
            alpha: self.lora_alpha,
            dropout: self.lora_dropout,
            targets,
            leave_out: Vec::new(),
            use_rslora: self.use_rslora,
            init: self.init,
        }
    }

    /// The JSON PEFT 0.21.2 writes for `config` (options we do not implement written off).
    pub fn to_json(
        config: &LoraConfig,
        modules_to_save: &[String],
        target_modules: &[String],
        fan_in_fan_out: bool,
        task_type: Option<&str>,
        base_model_name_or_path: Option<&str>,
    ) -> Result<String> {
        let init = match config.init {
            LoraInit::Default => json!(true),
            LoraInit::Random => json!(false),
            LoraInit::Gaussian => json!("gaussian"),
        };
        let value = json!({
            "peft_type": "LORA",
            "task_type": task_type,
            "base_model_name_or_path": base_model_name_or_path,
            "revision": null,
            "inference_mode": true,
            "r": config.rank,
            "lora_alpha": config.alpha,
            "lora_dropout": config.dropout,
            "target_modules": target_modules,
            "exclude_modules": null,
            "fan_in_fan_out": fan_in_fan_out,
            "bias": "none",
            "use_rslora": config.use_rslora,
            "modules_to_save": if modules_to_save.is_empty() { Value::Null } else { json!(modules_to_save) },
            "init_lora_weights": init,
            "layers_to_transform": null,
            "layers_pattern": null,
            "rank_pattern": {},
            "alpha_pattern": {},
            "use_dora": false,
            "layer_replication": null,
            "lora_bias": false,
        });
        serde_json::to_string_pretty(&value)
            .map_err(|e| PeftError::InvalidConfig(format!("cannot write adapter_config.json: {e}")))
    }
}

/// A PEFT IA³ `adapter_config.json` (`peft/tuners/ia3/config.py`, `IA3Config`).
#[derive(Clone, Debug, PartialEq)]
pub struct PeftIa3File {
    /// `target_modules` (PEFT's suffix rule).
    pub target_modules: Vec<String>,
    /// `feedforward_modules`: the targets whose vector scales the input.
    pub feedforward_modules: Vec<String>,
    /// `fan_in_fan_out` (true for GPT-2's `Conv1D`).
    pub fan_in_fan_out: bool,
    /// `init_ia3_weights`.
    pub init_ia3_weights: bool,
    /// `task_type`, if given.
    pub task_type: Option<String>,
    /// Keys this crate does not know, kept as they were.
    pub unknown: BTreeMap<String, Value>,
}

fn names(map: &serde_json::Map<String, Value>, key: &str, path: &Path) -> Result<Vec<String>> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| PeftError::MalformedJson {
                        path: path.to_path_buf(),
                        message: format!("`{key}` holds a non-string"),
                    })
            })
            .collect(),
        Some(Value::String(s)) => Err(PeftError::HubUnsupported {
            path: path.to_path_buf(),
            field: key.to_string(),
            message: format!("`{s}` is a regular expression; give the module names as a list"),
        }),
        Some(_) => Err(PeftError::MalformedJson {
            path: path.to_path_buf(),
            message: format!("`{key}` is not a list"),
        }),
    }
}

impl PeftIa3File {
    /// Parse an IA³ `adapter_config.json`; options we do not implement (`modules_to_save`,
    /// `exclude_modules`, `layers_to_transform`, …) are [`PeftError::HubUnsupported`] when on.
    pub fn from_json(text: &str, path: &Path) -> Result<Self> {
        let malformed = |message: String| PeftError::MalformedJson {
            path: path.to_path_buf(),
            message,
        };
        let value: Value = serde_json::from_str(text).map_err(|e| malformed(e.to_string()))?;
        let Value::Object(map) = value else {
            return Err(malformed("not a JSON object".into()));
        };
        if map.get("peft_type").and_then(Value::as_str) != Some("IA3") {
            return Err(PeftError::HubUnsupported {
                path: path.to_path_buf(),
                field: "peft_type".into(),
                message: "this loader reads IA3".into(),
            });
        }
        let target_modules = names(&map, "target_modules", path)?;
        if target_modules.is_empty() {
            return Err(malformed("`target_modules` missing or empty".into()));
        }
        let feedforward_modules = names(&map, "feedforward_modules", path)?;
        let flag = |key: &str, default: bool| -> Result<bool> {
            match map.get(key) {
                None | Some(Value::Null) => Ok(default),
                Some(Value::Bool(b)) => Ok(*b),
                Some(_) => Err(malformed(format!("`{key}` is not a boolean"))),
            }
        };
        let fan_in_fan_out = flag("fan_in_fan_out", false)?;
        let init_ia3_weights = flag("init_ia3_weights", true)?;
        const OFF: &[&str] = &[
            "modules_to_save",
            "exclude_modules",
            "layers_to_transform",
            "layers_pattern",
        ];
        for key in OFF {
            if let Some(v) = map.get(*key)
                && !is_off(v)
            {
                return Err(PeftError::HubUnsupported {
                    path: path.to_path_buf(),
                    field: key.to_string(),
                    message: format!("{v} is not supported (only off)"),
                });
            }
        }
        let known = [
            "peft_type",
            "target_modules",
            "feedforward_modules",
            "fan_in_fan_out",
            "init_ia3_weights",
        ];
        let unknown = map
            .iter()
            .filter(|(k, _)| {
                !known.contains(&k.as_str())
                    && !INFORMATIONAL.contains(&k.as_str())
                    && !OFF.contains(&k.as_str())
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Ok(Self {
            target_modules,
            feedforward_modules,
            fan_in_fan_out,
            init_ia3_weights,
            task_type: map
                .get("task_type")
                .and_then(Value::as_str)
                .map(str::to_string),
            unknown,
        })
    }

    /// One line per unknown key (kept, not applied).
    pub fn warnings(&self) -> Vec<String> {
        self.unknown
            .keys()
            .map(|k| format!("unknown adapter_config.json key `{k}` kept but not applied"))
            .collect()
    }

    /// The JSON PEFT 0.21.2 writes for an IA³ adapter.
    pub fn to_json(
        target_modules: &[String],
        feedforward_modules: &[String],
        fan_in_fan_out: bool,
        init_ia3_weights: bool,
        task_type: Option<&str>,
        base_model_name_or_path: Option<&str>,
    ) -> Result<String> {
        let value = json!({
            "peft_type": "IA3",
            "task_type": task_type,
            "base_model_name_or_path": base_model_name_or_path,
            "revision": null,
            "inference_mode": true,
            "target_modules": target_modules,
            "exclude_modules": null,
            "feedforward_modules": feedforward_modules,
            "fan_in_fan_out": fan_in_fan_out,
            "modules_to_save": null,
            "init_ia3_weights": init_ia3_weights,
        });
        serde_json::to_string_pretty(&value)
            .map_err(|e| PeftError::InvalidConfig(format!("cannot write adapter_config.json: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<PeftLoraFile> {
        PeftLoraFile::from_json(text, Path::new("adapter_config.json"))
    }

    const BASE: &str =
        r#"{"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["query"]"#;

    #[test]
    fn unsupported_options_name_the_field() {
        for (extra, field) in [
            (r#""use_dora": true"#, "use_dora"),
            (r#""layer_replication": [[0, 1]]"#, "layer_replication"),
            (r#""bias": "all""#, "bias"),
            (r#""rank_pattern": {"query": 2}"#, "rank_pattern"),
            (r#""init_lora_weights": "pissa""#, "init_lora_weights"),
        ] {
            let text = format!("{BASE}, {extra}}}");
            match parse(&text) {
                Err(PeftError::HubUnsupported { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{extra}: {other:?}"),
            }
        }
        let regex =
            r#"{"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ".*query"}"#;
        assert!(matches!(
            parse(regex),
            Err(PeftError::HubUnsupported { field, .. }) if field == "target_modules"
        ));
        assert!(matches!(
            parse(r#"{"peft_type": "IA3", "target_modules": []}"#),
            Err(PeftError::HubUnsupported { field, .. }) if field == "peft_type"
        ));
    }

    #[test]
    fn reads_values_and_keeps_unknown_keys() -> Result<()> {
        let text = format!(
            "{BASE}, \"use_rslora\": true, \"init_lora_weights\": \"gaussian\", \"use_dora\": false, \"shiny_new\": 3}}"
        );
        let f = parse(&text)?;
        assert_eq!((f.r, f.lora_alpha, f.use_rslora), (4, 8.0, true));
        assert_eq!(f.init, LoraInit::Gaussian);
        assert_eq!(f.unknown.keys().collect::<Vec<_>>(), vec!["shiny_new"]);
        assert_eq!(f.warnings().len(), 1);
        Ok(())
    }
}
