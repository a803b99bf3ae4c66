//! Loading and saving AdapterHub adapter and fusion directories on any [`AdapterHost`].
//!
//! Loading builds the adapter from the directory's config on a copy of the model, places every
//! tensor of the weights file, and replaces the model only when everything fit: a failed load
//! leaves the model exactly as it was. Heads are model-specific (`peft-models`), built on
//! [`crate::adapterhub::weights::place`] the same way.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::Device;

use crate::adapterhub::config::{HubAdapterFile, HubModelInfo};
use crate::adapterhub::fusion::HubFusionFile;
use crate::adapterhub::keys::{HubKeys, Landing};
use crate::adapterhub::method_file::architecture;
use crate::adapterhub::methods_io::{load_method, save_method};
use crate::adapterhub::weights::{find_weights, hub_bytes, place, read_tensors};
use crate::adapterhub::{
    CONFIG_FILE, FUSION_CONFIG_FILE, FUSION_WEIGHTS_BIN, FUSION_WEIGHTS_SAFETENSORS, WEIGHTS_BIN,
    WEIGHTS_SAFETENSORS,
};
use crate::attach::{AdapterHost, adapters, add_adapter, add_fusion, fusions};
use crate::error::{PeftError, Result};
use crate::file::write_atomic;
use crate::fusion::FusionConfig;
use crate::method::MethodConfig;
use crate::setup::check_name;

/// What loading an AdapterHub adapter directory did.
#[derive(Clone, Debug, PartialEq)]
pub struct HubAdapterLoad {
    /// The name the adapter now has on the model.
    pub name: String,
    /// The name in the file (`adapter_config.json` `name`).
    pub name_in_file: String,
    /// The config it was built from (any method: bottleneck, LoRA, IA³, prefix tuning).
    pub config: MethodConfig,
    /// The weights file read.
    pub weights: PathBuf,
    /// Number of tensors placed.
    pub tensors: usize,
    /// Keys of the config files this crate does not use (kept, not silently dropped).
    pub warnings: Vec<String>,
}

impl std::fmt::Display for HubAdapterLoad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "AdapterHub adapter `{}` ({} tensors from {})",
            self.name,
            self.tensors,
            self.weights.display()
        )?;
        for w in &self.warnings {
            write!(f, "\n  warning: {w}")?;
        }
        Ok(())
    }
}

fn is_adapter_path(keys: &HubKeys, path: &str, name: &str) -> bool {
    let needle = format!(".{}.{name}.", keys.our_adapters);
    path.contains(&needle)
}

/// Load the adapter AdapterHub saved in `dir` (`save_adapter`) onto `model` as `load_as`
/// (default: its name in the file), next to the adapters it has: a bottleneck adapter, or
/// (by `config.architecture`) a LoRA, IA³ or prefix-tuning one ([`super::methods`]).
///
/// # Errors
/// Config errors of [`HubAdapterFile`] (naming the file and field), a width mismatch, a name
/// already in use, [`PeftError::HubMissingFile`] (no weights file),
/// [`PeftError::HubUnplaced`] (a tensor that lands nowhere, e.g. a `par_bn` file's tensor at a
/// site the config does not target), [`PeftError::HubMissingTensors`], shape errors. The model
/// is unchanged on error.
pub fn load_hub_adapter<H: AdapterHost + Module>(
    model: &mut H,
    keys: &HubKeys,
    dir: impl AsRef<Path>,
    load_as: Option<&str>,
    device: &Device,
) -> Result<HubAdapterLoad> {
    let dir = dir.as_ref();
    let config_path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&config_path).map_err(|source| PeftError::Io {
        path: config_path.clone(),
        source,
    })?;
    if architecture(&text, &config_path)?.is_some() {
        let mut staged = model.clone();
        let load = load_method(&mut staged, keys, dir, &text, load_as, device)?;
        *model = staged;
        return Ok(load);
    }
    let file = HubAdapterFile::from_json(&text, &config_path)?;
    file.check_hidden_size(model.d_model(), &config_path)?;
    let config = file
        .config
        .adapter_config(model.num_layers(), &config_path)?;
    let name = load_as.unwrap_or(&file.name).to_string();
    check_name(&name)?;
    // Read everything before touching the model.
    let weights_path = find_weights(dir, &[WEIGHTS_SAFETENSORS, WEIGHTS_BIN])?;
    let tensors = read_tensors(&weights_path)?;
    let mut staged = model.clone();
    add_adapter(&mut staged, &name, &config, device)?;
    let ln_before = config.bottleneck.ln_before;
    let placed = place(
        &mut staged,
        &weights_path,
        tensors,
        &|k| keys.adapter_landing(k, &file.name, &name, ln_before),
        &|p| is_adapter_path(keys, p, &name),
    )?;
    *model = staged;
    Ok(HubAdapterLoad {
        name,
        name_in_file: file.name.clone(),
        config: config.into(),
        weights: weights_path,
        tensors: placed.applied.len(),
        warnings: file.warnings(),
    })
}

/// Load the fusion layer AdapterHub saved in `dir` (`save_adapter_fusion`) onto `model`,
/// whose adapters it fuses must already be loaded. Returns the fused names.
///
/// # Errors
/// As [`load_hub_adapter`]; [`PeftError::NotFound`] for a fused adapter the model lacks.
pub fn load_hub_fusion<H: AdapterHost + Module>(
    model: &mut H,
    keys: &HubKeys,
    dir: impl AsRef<Path>,
    device: &Device,
) -> Result<(Vec<String>, Vec<String>)> {
    let dir = dir.as_ref();
    let config_path = dir.join(FUSION_CONFIG_FILE);
    let file = HubFusionFile::read(&config_path)?;
    if let Some(h) = file.hidden_size
        && h != model.d_model()
    {
        return Err(PeftError::Incompatible {
            path: config_path,
            message: format!(
                "fusion `{}` was trained on width {h}; this model's is {}",
                file.name,
                model.d_model()
            ),
        });
    }
    let weights_path = find_weights(dir, &[FUSION_WEIGHTS_SAFETENSORS, FUSION_WEIGHTS_BIN])?;
    let tensors = read_tensors(&weights_path)?;
    let mut staged = model.clone();
    add_fusion(&mut staged, &file.adapter_names, &file.config, device)?;
    let fusion = file.adapter_names.join(",");
    let needle = format!(".{}.{fusion}.", keys.our_fusions);
    place(
        &mut staged,
        &weights_path,
        tensors,
        &|k| {
            keys.fusion_landing(k, &file.name, &fusion)
                .map(Landing::Path)
        },
        &|p| p.contains(&needle),
    )?;
    *model = staged;
    Ok((file.adapter_names.clone(), file.warnings()))
}

/// Save adapter `name` of `model` into `dir` in AdapterHub's format: `adapter_config.json` and
/// `adapter.safetensors` (load it in Python with `load_adapter(dir, use_safetensors=True)`).
/// Bottleneck, LoRA, IA³ and prefix-tuning adapters (a prefix-tuning adapter is written as it
/// is: with its MLP, or flat once ejected).
///
/// # Errors
/// [`PeftError::NotFound`]; [`PeftError::HubUnsupported`] for a config AdapterHub cannot
/// express; I/O errors.
pub fn save_hub_adapter<H: AdapterHost + Module>(
    model: &H,
    keys: &HubKeys,
    name: &str,
    dir: impl AsRef<Path>,
    info: &HubModelInfo,
) -> Result<()> {
    let dir = dir.as_ref();
    let all = adapters(model);
    let Some(adapter) = all.iter().find(|a| a.name == name) else {
        return Err(PeftError::NotFound {
            kind: "adapter",
            name: name.to_string(),
            available: all
                .iter()
                .map(|a| a.name.clone())
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    let Some(config) = adapter.config.bottleneck() else {
        return save_method(model, keys, name, &adapter.config, dir, info);
    };
    let file = HubAdapterFile::new(name, config, info)?;
    let json = file.to_json()?;
    let ln_before = config.bottleneck.ln_before;
    let bytes = hub_bytes(model, &|p| keys.adapter_keys(p, name, name, ln_before))?;
    create_dir(dir)?;
    write_atomic(&dir.join(WEIGHTS_SAFETENSORS), &bytes)?;
    write_atomic(&dir.join(CONFIG_FILE), json.as_bytes())
}

/// Save the fusion of `names` into `dir` as `save_adapter_fusion` does:
/// `adapter_fusion_config.json` and `model_adapter_fusion.safetensors`.
pub fn save_hub_fusion<H: AdapterHost + Module, S: AsRef<str>>(
    model: &H,
    keys: &HubKeys,
    names: &[S],
    config: &FusionConfig,
    dir: impl AsRef<Path>,
    info: &HubModelInfo,
) -> Result<()> {
    let dir = dir.as_ref();
    let names: Vec<String> = names.iter().map(|n| n.as_ref().to_string()).collect();
    if !fusions(model).contains(&names) {
        return Err(PeftError::NotFound {
            kind: "fusion",
            name: names.join(","),
            available: fusions(model)
                .iter()
                .map(|f| f.join(","))
                .collect::<Vec<_>>()
                .join("; "),
        });
    }
    let fusion = names.join(",");
    let json = HubFusionFile::new(&names, config, info).to_json()?;
    let bytes = hub_bytes(model, &|p| {
        keys.fusion_key(p, &fusion).into_iter().collect()
    })?;
    create_dir(dir)?;
    write_atomic(&dir.join(FUSION_WEIGHTS_SAFETENSORS), &bytes)?;
    write_atomic(&dir.join(FUSION_CONFIG_FILE), json.as_bytes())
}

/// Create `dir` (and parents).
pub fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|source| PeftError::Io {
        path: dir.to_path_buf(),
        source,
    })
}
