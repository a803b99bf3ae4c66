//! Hugging Face PEFT 0.21 LoRA directories, both directions.
//!
//! A PEFT directory (`PeftModel.save_pretrained`) holds [`CONFIG_FILE`] (`adapter_config.json`,
//! read by [`PeftLoraFile`]) and [`WEIGHTS_FILE`] (`adapter_model.safetensors`) with keys
//! `base_model.model.<module>.lora_A.weight` (`[r, in]`) and `….lora_B.weight` (`[out, r]`),
//! where `<module>` is the Python module name (`encoder.layer.0.attention.self.query`,
//! `transformer.h.0.attn.c_attn`). The model-agnostic part lives here; each model gives its
//! module names as a [`PeftKeys`] in its `weights.rs`.
//!
//! PEFT's `target_modules` rule is applied to our modules' names: a module is targeted when
//! its name equals an entry or ends with `.` + an entry. A tensor of the file that lands on no
//! module of ours is an error, as is a targeted module without its tensors; a failed load
//! leaves the model unchanged.

mod config;
mod ia3;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use burn::module::Param;
use burn::nn::DropoutConfig;
use burn::tensor::{Device, Tensor, TensorData};

pub use config::{PeftIa3File, PeftLoraFile};
pub use ia3::save_peft_ia3;

use crate::attach::{AdapterHost, adapters, linear_sites};
use crate::error::{PeftError, Result};
use crate::linear_site::BaseLayout;
use crate::lora::{LinearTarget, LoraModule};
use crate::method::MethodConfig;

/// PEFT's config file name.
pub const CONFIG_FILE: &str = "adapter_config.json";
/// PEFT's weights file name.
pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";
/// The prefix `PeftModel` puts before every module name in its weights file.
pub const PEFT_PREFIX: &str = "base_model.model.";

/// A model family's Python module names for PEFT files.
#[derive(Clone, Copy, Debug)]
pub struct PeftKeys {
    /// Prefixes a file may put before our module names (`bert.` for `BertFor*` models); the
    /// first is the one we write.
    pub model_prefixes: &'static [&'static str],
    /// The module name of each target, `{i}` standing for the block index.
    pub targets: &'static [(LinearTarget, &'static str)],
}

impl PeftKeys {
    /// The module name of `target` in block `layer` (without a model prefix).
    pub fn module_name(&self, target: LinearTarget, layer: usize) -> Option<String> {
        self.targets
            .iter()
            .find(|(t, _)| *t == target)
            .map(|(_, n)| n.replace("{i}", &layer.to_string()))
    }

    /// Which of our modules a file key names: `(layer, target, index of the suffix)`.
    fn landing<H: AdapterHost + ?Sized>(
        &self,
        host: &H,
        key: &str,
        suffixes: &[&str],
    ) -> Option<(usize, LinearTarget, usize)> {
        let rest = key.strip_prefix(PEFT_PREFIX)?;
        let (module, is_b) = suffixes
            .iter()
            .enumerate()
            .find_map(|(i, sfx)| rest.strip_suffix(sfx).map(|m| (m, i)))?;
        for prefix in self.model_prefixes {
            let Some(module) = module.strip_prefix(prefix) else {
                continue;
            };
            for (layer, target, _) in linear_sites(host) {
                if self.module_name(target, layer).as_deref() == Some(module) {
                    return Some((layer, target, is_b));
                }
            }
        }
        None
    }
}

/// PEFT's rule: the module is targeted if its name equals an entry or ends with `.entry`.
pub fn peft_targets(target_modules: &[String], module: &str) -> bool {
    target_modules
        .iter()
        .any(|t| module == t || module.ends_with(&format!(".{t}")))
}

/// `[rows, cols]` row-major -> `[cols, rows]` row-major.
pub(crate) fn transpose(data: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; data.len()];
    for i in 0..rows {
        for j in 0..cols {
            out[j * rows + i] = data[i * cols + j];
        }
    }
    out
}

/// Whether `dir` is a PEFT directory: an `adapter_config.json` with a `peft_type` next to
/// `adapter_model.safetensors` (told apart from AdapterHub's `adapter_config.json`, which has
/// a `config` object and no `peft_type`).
pub fn is_peft_dir(dir: &Path) -> bool {
    dir.join(WEIGHTS_FILE).is_file()
        && std::fs::read_to_string(dir.join(CONFIG_FILE))
            .ok()
            .and_then(|t| peft_type(&t))
            .is_some()
}

/// The `peft_type` of a config text, if it has one.
fn peft_type(text: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    v.get("peft_type")?.as_str().map(str::to_string)
}

/// What [`load_peft`] did.
#[derive(Clone, Debug, PartialEq)]
pub struct PeftLoad {
    /// The adapter's name on the model.
    pub name: String,
    /// Our config, as read.
    pub config: MethodConfig,
    /// The file's `task_type`, if any.
    pub task_type: Option<String>,
    /// Tensors placed.
    pub tensors: usize,
    /// Warnings (unknown keys).
    pub warnings: Vec<String>,
}

fn weights_err(path: &Path, message: impl Into<String>) -> PeftError {
    PeftError::Weights {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Our typed targets and left-out layers from PEFT's `target_modules` over `host`'s modules.
fn resolve<H: AdapterHost + ?Sized>(
    host: &H,
    keys: &PeftKeys,
    target_modules: &[String],
    path: &Path,
) -> Result<(Vec<LinearTarget>, Vec<usize>)> {
    let mut hits = BTreeSet::new();
    for (layer, target, _) in linear_sites(host) {
        let Some(module) = keys.module_name(target, layer) else {
            continue;
        };
        let hit = keys.model_prefixes.iter().any(|p| {
            let full = format!("{p}{module}");
            peft_targets(target_modules, &full)
        });
        if hit {
            hits.insert((layer, target));
        }
    }
    if hits.is_empty() {
        return Err(PeftError::NothingMatched(format!(
            "{}: target_modules {:?} match no projection of this model",
            path.display(),
            target_modules
        )));
    }
    let targets: BTreeSet<LinearTarget> = hits.iter().map(|(_, t)| *t).collect();
    let layers: BTreeSet<usize> = hits.iter().map(|(l, _)| *l).collect();
    for &l in &layers {
        for &t in &targets {
            if !hits.contains(&(l, t)) {
                return Err(PeftError::HubUnsupported {
                    path: path.to_path_buf(),
                    field: "target_modules".into(),
                    message: format!(
                        "they select {} in some blocks but not in block {l}; a config targets the same projections in every block it uses",
                        t.name()
                    ),
                });
            }
        }
    }
    let leave_out = (0..host.num_layers())
        .filter(|l| !layers.contains(l))
        .collect();
    Ok((targets.into_iter().collect(), leave_out))
}

/// Load the PEFT LoRA (or IA³) directory `dir` onto `host` as adapter `name` (not activated:
/// use [`crate::set_active`]).
///
/// Errors (the model unchanged): a name already in use, a config we cannot reproduce (see
/// [`PeftLoraFile::from_json`]), base layouts that contradict `fan_in_fan_out`, a tensor that
/// lands nowhere ([`PeftError::HubUnplaced`]), a targeted module without its tensors
/// ([`PeftError::HubMissingTensors`]), shapes or dtypes that do not fit.
pub fn load_peft<H: AdapterHost + ?Sized>(
    host: &mut H,
    dir: impl AsRef<Path>,
    name: &str,
    keys: &PeftKeys,
    device: &Device,
) -> Result<PeftLoad> {
    load_peft_with_modules(host, dir, name, keys, device, &[]).map(|(load, _)| load)
}

/// A tensor of a `modules_to_save` module: its key after `base_model.model.` and any model
/// prefix (`classifier.weight`), shape and f32 values.
#[derive(Clone, Debug, PartialEq)]
pub struct SavedModuleTensor {
    /// The key, e.g. `classifier.weight`.
    pub key: String,
    /// The shape in the file.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f32>,
}

/// [`load_peft`] for a LoRA directory with `modules_to_save`: entries in `accepted` (e.g.
/// `["classifier", "score"]`) are allowed and their tensors returned for the caller to place
/// (after everything else was checked and loaded); any other entry is a
/// [`PeftError::HubUnsupported`] naming `modules_to_save`.
pub fn load_peft_with_modules<H: AdapterHost + ?Sized>(
    host: &mut H,
    dir: impl AsRef<Path>,
    name: &str,
    keys: &PeftKeys,
    device: &Device,
    accepted: &[&str],
) -> Result<(PeftLoad, Vec<SavedModuleTensor>)> {
    let dir = dir.as_ref();
    crate::setup::check_name(name)?;
    if adapters(host).iter().any(|a| a.name == name) {
        return Err(PeftError::AlreadyExists {
            kind: "adapter",
            name: name.to_string(),
        });
    }
    let config_path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&config_path).map_err(|source| PeftError::Io {
        path: config_path.clone(),
        source,
    })?;
    if peft_type(&text) == Some("IA3".to_string()) {
        return ia3::load_peft_ia3(host, dir, name, keys, device, &text).map(|l| (l, Vec::new()));
    }
    let file = PeftLoraFile::from_json(&text, &config_path)?;
    if let Some(bad) = file
        .modules_to_save
        .iter()
        .find(|m| !accepted.contains(&m.as_str()))
    {
        return Err(PeftError::HubUnsupported {
            path: config_path,
            field: "modules_to_save".into(),
            message: format!(
                "`{bad}` has no place here (accepted: {})",
                if accepted.is_empty() {
                    "none".to_string()
                } else {
                    accepted.join(", ")
                }
            ),
        });
    }
    let (targets, leave_out) = resolve(host, keys, &file.target_modules, &config_path)?;
    let mut config = file.lora_config(targets);
    config.leave_out = leave_out;
    config.validate()?;

    let weights_path = dir.join(WEIGHTS_FILE);
    let bytes = std::fs::read(&weights_path).map_err(|source| PeftError::Io {
        path: weights_path.clone(),
        source,
    })?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| weights_err(&weights_path, e.to_string()))?;
    // (layer, target) -> (A [r, in], B [out, r]) as f32 row-major.
    type Pair = (Option<Vec<f32>>, Option<Vec<f32>>);
    let mut found: Vec<((usize, LinearTarget), Pair)> = Vec::new();
    let mut unplaced = Vec::new();
    let mut saved_modules = Vec::new();
    let r = config.rank;
    for (key, view) in st.tensors() {
        if let Some(rest) = saved_module_key(&key, &file.modules_to_save) {
            saved_modules.push(SavedModuleTensor {
                key: rest,
                shape: view.shape().to_vec(),
                data: f32_tensor(&weights_path, &key, &view)?,
            });
            continue;
        }
        let Some((layer, target, is_b)) =
            keys.landing(host, &key, &[".lora_A.weight", ".lora_B.weight"])
        else {
            unplaced.push(key);
            continue;
        };
        if !config.targets(layer, target) {
            unplaced.push(key);
            continue;
        }
        let Some(site) = host.linear_site(layer, target) else {
            unplaced.push(key);
            continue;
        };
        let is_b = is_b == 1;
        let want = if is_b {
            vec![site.d_out(), r]
        } else {
            vec![r, site.d_in()]
        };
        if view.shape() != want.as_slice() {
            return Err(weights_err(
                &weights_path,
                format!(
                    "{key} has shape {:?}, the model needs {want:?}",
                    view.shape()
                ),
            ));
        }
        let data = f32_tensor(&weights_path, &key, &view)?;
        let slot = match found.iter_mut().find(|(k, _)| *k == (layer, target)) {
            Some((_, pair)) => pair,
            None => {
                found.push(((layer, target), (None, None)));
                let last = found.len() - 1;
                &mut found[last].1
            }
        };
        if is_b {
            slot.1 = Some(data);
        } else {
            slot.0 = Some(data);
        }
    }
    if !unplaced.is_empty() {
        unplaced.sort();
        return Err(PeftError::HubUnplaced {
            path: weights_path,
            keys: unplaced,
        });
    }
    let mut missing = Vec::new();
    let mut modules = Vec::new();
    for (layer, target, site) in linear_sites(host) {
        if !config.targets(layer, target) {
            continue;
        }
        let module = keys.module_name(target, layer).unwrap_or_default();
        let pair = found.iter().find(|(k, _)| *k == (layer, target));
        let (a, b) = match pair {
            Some((_, (Some(a), Some(b)))) => (a.clone(), b.clone()),
            Some((_, (a, _))) => {
                let which = if a.is_some() { "lora_B" } else { "lora_A" };
                missing.push(format!("{PEFT_PREFIX}{module}.{which}.weight"));
                continue;
            }
            None => {
                missing.push(format!("{PEFT_PREFIX}{module}.lora_A.weight"));
                continue;
            }
        };
        if file.fan_in_fan_out != (site.layout() == BaseLayout::Conv1D) {
            return Err(PeftError::HubUnsupported {
                path: config_path,
                field: "fan_in_fan_out".into(),
                message: format!(
                    "{} but {module} stores its weight {}",
                    file.fan_in_fan_out,
                    if site.layout() == BaseLayout::Conv1D {
                        "[in, out] (Conv1D)"
                    } else {
                        "[out, in] (nn.Linear)"
                    }
                ),
            });
        }
        modules.push((layer, target, site.d_in(), site.d_out(), a, b));
    }
    if !missing.is_empty() {
        return Err(PeftError::HubMissingTensors {
            path: weights_path,
            paths: missing,
        });
    }
    // Everything checked: build and insert.
    let tensors = modules.len() * 2;
    let scale = config.scale();
    let mut built = Vec::with_capacity(modules.len());
    for (layer, target, d_in, d_out, a, b) in modules {
        // Transposed on the host: contiguous `[in, out]` tensors, as a fresh module's.
        let a = Tensor::<2>::from_data(TensorData::new(transpose(&a, r, d_in), [d_in, r]), device);
        let b =
            Tensor::<2>::from_data(TensorData::new(transpose(&b, d_out, r), [r, d_out]), device);
        let module = LoraModule {
            lora_a: Param::from_tensor(a),
            lora_b: Param::from_tensor(b),
            dropout: DropoutConfig::new(config.dropout).init(),
            scale,
        };
        built.push((layer, target, module));
    }
    for (layer, target, module) in built {
        if let Some(site) = host.linear_site_mut(layer, target) {
            site.insert_lora(name, config.clone(), module);
        }
    }
    saved_modules.sort_by(|a, b| a.key.cmp(&b.key));
    Ok((
        PeftLoad {
            name: name.to_string(),
            warnings: file.warnings(),
            config: config.into(),
            task_type: file.task_type,
            tensors,
        },
        saved_modules,
    ))
}

/// The values of tensor `key` of the weights file at `path`, which must be F32.
pub(super) fn f32_tensor(
    path: &Path,
    key: &str,
    view: &safetensors::tensor::TensorView<'_>,
) -> Result<Vec<f32>> {
    if view.dtype() != safetensors::Dtype::F32 {
        return Err(weights_err(
            path,
            format!("{key} is {:?}; only F32 is read", view.dtype()),
        ));
    }
    Ok(view
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// `classifier.weight` for `base_model.model.classifier.weight` when `classifier` is one of
/// `modules` (the head sits beside the base model, outside its prefix).
fn saved_module_key(key: &str, modules: &[String]) -> Option<String> {
    let rest = key.strip_prefix(PEFT_PREFIX)?;
    modules
        .iter()
        .any(|m| {
            rest.strip_prefix(m.as_str())
                .is_some_and(|t| t.starts_with('.'))
        })
        .then(|| rest.to_string())
}

/// Save LoRA (or IA³) adapter `name` of `host` as a PEFT 0.21 directory `dir` (created if needed):
/// `adapter_config.json` with `task_type` and `base_model_name_or_path` as given, and
/// `adapter_model.safetensors`. Files are written atomically, weights first. Returns the
/// weights file.
///
/// Errors: no such adapter, an adapter of another method, I/O.
pub fn save_peft<H: AdapterHost + ?Sized>(
    host: &H,
    name: &str,
    dir: impl AsRef<Path>,
    keys: &PeftKeys,
    task_type: Option<&str>,
    base_model_name_or_path: Option<&str>,
) -> Result<PathBuf> {
    save_peft_with_modules(
        host,
        name,
        dir,
        keys,
        task_type,
        base_model_name_or_path,
        &[],
        &[],
    )
}

/// [`save_peft`] of a LoRA adapter with `modules_to_save` (their tensors given by the caller,
/// keyed after `base_model.model.`, e.g. `classifier.weight`).
#[allow(clippy::too_many_arguments)]
pub fn save_peft_with_modules<H: AdapterHost + ?Sized>(
    host: &H,
    name: &str,
    dir: impl AsRef<Path>,
    keys: &PeftKeys,
    task_type: Option<&str>,
    base_model_name_or_path: Option<&str>,
    modules_to_save: &[String],
    extra: &[SavedModuleTensor],
) -> Result<PathBuf> {
    let dir = dir.as_ref();
    let info = adapters(host)
        .into_iter()
        .find(|a| a.name == name)
        .ok_or_else(|| PeftError::NotFound {
            kind: "adapter",
            name: name.to_string(),
            available: adapters(host)
                .into_iter()
                .map(|a| a.name)
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    if let MethodConfig::Ia3(_) = &info.config {
        if !modules_to_save.is_empty() {
            return Err(PeftError::Unsupported {
                field: "modules_to_save".into(),
                message: "IA³ directories are written without modules_to_save here".into(),
            });
        }
        return save_peft_ia3(host, name, dir, keys, task_type, base_model_name_or_path);
    }
    let MethodConfig::Lora(config) = &info.config else {
        return Err(PeftError::Unsupported {
            field: "method".into(),
            message: format!(
                "adapter `{name}` is a {} adapter; PEFT directories hold LoRA here",
                info.config.kind().name()
            ),
        });
    };
    let prefix = keys.model_prefixes.first().copied().unwrap_or("");
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut target_modules = Vec::new();
    let mut conv1d = false;
    for (layer, target, site) in linear_sites(host) {
        let Some(module) = site.lora_module(name) else {
            continue;
        };
        let Some(module_name) = keys.module_name(target, layer) else {
            return Err(PeftError::Unsupported {
                field: "target".into(),
                message: format!("this model has no PEFT name for {}", target.name()),
            });
        };
        conv1d |= site.layout() == BaseLayout::Conv1D;
        target_modules.push(module_name.clone());
        for (which, t) in [
            ("lora_A", module.lora_a.val().transpose()),
            ("lora_B", module.lora_b.val().transpose()),
        ] {
            let shape = t.dims().to_vec();
            let data = t
                .into_data()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .map_err(|e| weights_err(Path::new(WEIGHTS_FILE), format!("{e:?}")))?;
            let bytes = data.iter().flat_map(|v| v.to_le_bytes()).collect();
            tensors.push((
                format!("{PEFT_PREFIX}{prefix}{module_name}.{which}.weight"),
                shape,
                bytes,
            ));
        }
    }
    for t in extra {
        tensors.push((
            format!("{PEFT_PREFIX}{}", t.key),
            t.shape.clone(),
            t.data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ));
    }
    let json = PeftLoraFile::to_json(
        config,
        modules_to_save,
        &target_modules,
        conv1d,
        task_type,
        base_model_name_or_path,
    )?;
    write_dir(dir, &tensors, &json)
}

/// Write `tensors` (F32, little-endian bytes) and the config `json` into `dir` (created if
/// needed), atomically, weights first; returns the weights file.
fn write_dir(dir: &Path, tensors: &[(String, Vec<usize>, Vec<u8>)], json: &str) -> Result<PathBuf> {
    let bytes = crate::adapterhub::weights::f32_safetensors(tensors)?;
    std::fs::create_dir_all(dir).map_err(|source| PeftError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let weights = dir.join(WEIGHTS_FILE);
    crate::file::write_atomic(&weights, &bytes)?;
    crate::file::write_atomic(&dir.join(CONFIG_FILE), json.as_bytes())?;
    Ok(weights)
}
