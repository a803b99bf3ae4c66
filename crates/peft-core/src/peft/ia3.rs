//! PEFT 0.21 IA³ directories: `base_model.model.<module>.ia3_l`, `[out, 1]` on an output
//! target, `[1, in]` on a feed-forward one (`peft/tuners/ia3/layer.py`).

use std::path::{Path, PathBuf};

use burn::module::Param;
use burn::tensor::{Device, Tensor, TensorData};

use super::{
    CONFIG_FILE, PEFT_PREFIX, PeftIa3File, PeftKeys, PeftLoad, WEIGHTS_FILE, f32_tensor,
    peft_targets, resolve, weights_err,
};
use crate::attach::{AdapterHost, adapters, linear_sites};
use crate::error::{PeftError, Result};
use crate::ia3::{Ia3Config, Ia3Init, Ia3Module};
use crate::linear_site::BaseLayout;
use crate::lora::LinearTarget;
use crate::method::MethodConfig;

pub(super) fn load_peft_ia3<H: AdapterHost + ?Sized>(
    host: &mut H,
    dir: &Path,
    name: &str,
    keys: &PeftKeys,
    device: &Device,
    text: &str,
) -> Result<PeftLoad> {
    let config_path = dir.join(CONFIG_FILE);
    let file = PeftIa3File::from_json(text, &config_path)?;
    let (targets, leave_out) = resolve(host, keys, &file.target_modules, &config_path)?;
    // PEFT decides per module; ours per target: every used block must agree.
    let mut feedforward: Vec<LinearTarget> = Vec::new();
    for &target in &targets {
        let mut verdicts = linear_sites(host)
            .into_iter()
            .filter(|(l, t, _)| *t == target && !leave_out.contains(l))
            .filter_map(|(l, t, _)| keys.module_name(t, l))
            .map(|m| {
                keys.model_prefixes
                    .iter()
                    .any(|p| peft_targets(&file.feedforward_modules, &format!("{p}{m}")))
            });
        let first = verdicts.next().unwrap_or(false);
        if verdicts.any(|v| v != first) {
            return Err(PeftError::HubUnsupported {
                path: config_path,
                field: "feedforward_modules".into(),
                message: format!("{} is feed-forward in some blocks only", target.name()),
            });
        }
        if first {
            feedforward.push(target);
        }
    }
    let config = Ia3Config {
        targets,
        feedforward,
        leave_out,
        init: if file.init_ia3_weights {
            Ia3Init::Ones
        } else {
            Ia3Init::Random
        },
    };
    config.validate()?;

    let weights_path = dir.join(WEIGHTS_FILE);
    let bytes = std::fs::read(&weights_path).map_err(|source| PeftError::Io {
        path: weights_path.clone(),
        source,
    })?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| weights_err(&weights_path, e.to_string()))?;
    let mut found: Vec<((usize, LinearTarget), Vec<f32>)> = Vec::new();
    let mut unplaced = Vec::new();
    for (key, view) in st.tensors() {
        let landing = keys
            .landing(host, &key, &[".ia3_l"])
            .filter(|(l, t, _)| config.targets(*l, *t));
        let Some((layer, target, _)) = landing else {
            unplaced.push(key);
            continue;
        };
        let Some(site) = host.linear_site(layer, target) else {
            unplaced.push(key);
            continue;
        };
        let want = if config.feedforward.contains(&target) {
            vec![1, site.d_in()]
        } else {
            vec![site.d_out(), 1]
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
        found.push(((layer, target), data));
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
        if file.fan_in_fan_out != (site.layout() == BaseLayout::Conv1D) {
            return Err(PeftError::HubUnsupported {
                path: config_path,
                field: "fan_in_fan_out".into(),
                message: format!(
                    "{} does not fit {module}'s weight layout",
                    file.fan_in_fan_out
                ),
            });
        }
        match found.iter().find(|(k, _)| *k == (layer, target)) {
            Some((_, data)) => modules.push((layer, target, data.clone())),
            None => missing.push(format!("{PEFT_PREFIX}{module}.ia3_l")),
        }
    }
    if !missing.is_empty() {
        return Err(PeftError::HubMissingTensors {
            path: weights_path,
            paths: missing,
        });
    }
    let tensors = modules.len();
    let built: Vec<_> = modules
        .into_iter()
        .map(|(layer, target, data)| {
            let n = data.len();
            let module = Ia3Module {
                ia3_l: Param::from_tensor(Tensor::<1>::from_data(
                    TensorData::new(data, [n]),
                    device,
                )),
                feedforward: config.feedforward.contains(&target),
            };
            (layer, target, module)
        })
        .collect();
    for (layer, target, module) in built {
        if let Some(site) = host.linear_site_mut(layer, target) {
            site.insert_ia3(name, config.clone(), module);
        }
    }
    Ok(PeftLoad {
        name: name.to_string(),
        warnings: file.warnings(),
        config: MethodConfig::Ia3(config),
        task_type: file.task_type,
        tensors,
    })
}

/// Save IA³ adapter `name` of `host` as a PEFT 0.21 directory `dir` (see
/// [`super::save_peft`], which hands IA³ adapters here).
pub fn save_peft_ia3<H: AdapterHost + ?Sized>(
    host: &H,
    name: &str,
    dir: impl AsRef<Path>,
    keys: &PeftKeys,
    task_type: Option<&str>,
    base_model_name_or_path: Option<&str>,
) -> Result<PathBuf> {
    let dir = dir.as_ref();
    let info = adapters(host).into_iter().find(|a| a.name == name);
    let Some(MethodConfig::Ia3(config)) = info.map(|i| i.config) else {
        return Err(PeftError::NotFound {
            kind: "IA³ adapter",
            name: name.to_string(),
            available: adapters(host)
                .into_iter()
                .map(|a| a.name)
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    let prefix = keys.model_prefixes.first().copied().unwrap_or("");
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut target_modules = Vec::new();
    let mut feedforward_modules = Vec::new();
    let mut conv1d = false;
    for (layer, target, site) in linear_sites(host) {
        let Some(module) = site.ia3_module(name) else {
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
        let l = module.ia3_l.val();
        let n = l.dims()[0];
        let shape = if module.feedforward {
            feedforward_modules.push(module_name.clone());
            vec![1, n]
        } else {
            vec![n, 1]
        };
        let data = l
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .map_err(|e| weights_err(Path::new(WEIGHTS_FILE), format!("{e:?}")))?;
        tensors.push((
            format!("{PEFT_PREFIX}{prefix}{module_name}.ia3_l"),
            shape,
            data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ));
    }
    let json = PeftIa3File::to_json(
        &target_modules,
        &feedforward_modules,
        conv1d,
        config.init == Ia3Init::Ones,
        task_type,
        base_model_name_or_path,
    )?;
    super::write_dir(dir, &tensors, &json)
}
