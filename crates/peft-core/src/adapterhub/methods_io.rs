//! Loading and saving AdapterHub LoRA, IA³ and prefix-tuning directories on any
//! [`AdapterHost`] (the configs are [`super::methods`]).
//!
//! Key names (after the model prefix, e.g. `bert.`): `<projection>.loras.<NAME>.lora_A` (`[r,
//! in]`) and `.lora_B` (`[out, r]`; IA³: only `lora_B`, `[out, 1]`), `<projection>` from
//! [`HubKeys::linear`]; prefix tuning `prefix_tuning.prefix_tunings.<NAME>.self_prefix.X` with
//! `X` = `wte.weight`, `control_trans.{0,2}.{weight,bias}` (or the flat `control_trans`,
//! 1-D), stored once more per block under `<self-attention>.prefix_tuning.pool.…` (the
//! loader checks those copies equal the first; the saver writes them too).
//!
//! GPT-2's fused `c_attn` (`LoRAMergedLinear`): with `n` of `q, k, v` enabled, `lora_A` is
//! `[n·r, in]` and `lora_B` `[n·d, r]`, a grouped (block-diagonal) product: the `j`-th enabled
//! matrix's output is `B_j A_j x`. That is exactly our fused-QKV LoRA of rank `n·r` whose
//! `B` is zero off the blocks (and `alpha·n`, so the scale stays `alpha / r`); IA³'s vector is
//! ones on the matrices not enabled. Loading needs every LoRA of the adapter to have one rank:
//! a fused `c_attn` with `n > 1` beside other LoRA targets is refused.
//!
//! Every check runs before the model is touched: a failed load leaves it as it was.

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};

use super::lora_io::{load_lora, save_ia3, save_lora};
use super::prefix_io::{load_prefix, save_prefix};
use crate::adapterhub::config::HubModelInfo;
use crate::adapterhub::io::{HubAdapterLoad, create_dir};
use crate::adapterhub::keys::HubKeys;
use crate::adapterhub::method_file::HubMethodFile;
use crate::adapterhub::methods::HubMethodConfig;
use crate::adapterhub::weights::{f32_safetensors, find_weights, read_tensors};
use crate::adapterhub::{CONFIG_FILE, WEIGHTS_BIN, WEIGHTS_SAFETENSORS};
use crate::attach::{AdapterHost, adapters};
use crate::error::{PeftError, Result};
use crate::method::MethodConfig;
use crate::setup::check_name;

/// A tensor to write: file key, shape, f32 values.
pub(super) type Tensor32 = (String, Vec<usize>, Vec<f32>);

/// A tensor of a weights file: shape and f32 values.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct FileTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

pub(super) fn weights_err(path: &Path, message: impl Into<String>) -> PeftError {
    PeftError::Weights {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Every tensor of `path` under its key without the model prefix (float tensors as f32).
pub(super) fn file_tensors(
    path: &Path,
    keys: &HubKeys,
) -> Result<BTreeMap<String, (String, FileTensor)>> {
    let mut out = BTreeMap::new();
    for t in read_tensors(path)? {
        if !t.dtype.is_float() {
            return Err(weights_err(
                path,
                format!("`{}` has dtype {:?}, not a float", t.name, t.dtype),
            ));
        }
        let data = burn::store::bridge::to_data(&t)
            .map_err(|e| weights_err(path, format!("`{}`: {e}", t.name)))?
            .convert::<f32>()
            .try_to_vec::<f32>()
            .map_err(|e| weights_err(path, format!("`{}`: {e:?}", t.name)))?;
        let short = keys.strip_prefix(&t.name).to_string();
        let tensor = FileTensor {
            shape: t.shape.iter().copied().collect(),
            data,
        };
        out.insert(short, (t.name.clone(), tensor));
    }
    Ok(out)
}

pub(super) fn shape_err(path: &Path, key: &str, got: &[usize], want: &[usize]) -> PeftError {
    weights_err(
        path,
        format!("`{key}` has shape {got:?}, the model needs {want:?}"),
    )
}

pub(super) fn tensor2(data: Vec<f32>, shape: [usize; 2], device: &Device) -> Tensor<2> {
    Tensor::<2>::from_data(TensorData::new(data, shape), device)
}

pub(super) fn values<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .map_err(|e| weights_err(Path::new(WEIGHTS_SAFETENSORS), format!("{e:?}")))
}

/// Load the LoRA, IA³ or prefix-tuning adapter AdapterHub saved in `dir` (config text
/// `text`) onto `model` as `load_as`.
pub(crate) fn load_method<H: AdapterHost + Module>(
    model: &mut H,
    keys: &HubKeys,
    dir: &Path,
    text: &str,
    load_as: Option<&str>,
    device: &Device,
) -> Result<HubAdapterLoad> {
    let config_path = dir.join(CONFIG_FILE);
    let file = HubMethodFile::from_json(text, &config_path)?;
    file.check_hidden_size(model.d_model(), &config_path)?;
    let name = load_as.unwrap_or(&file.name).to_string();
    check_name(&name)?;
    if adapters(model).iter().any(|a| a.name == name) {
        return Err(PeftError::AlreadyExists {
            kind: "adapter",
            name,
        });
    }
    let weights = find_weights(dir, &[WEIGHTS_SAFETENSORS, WEIGHTS_BIN])?;
    let tensors = file_tensors(&weights, keys)?;
    let (config, placed) = match &file.config {
        HubMethodConfig::Lora(c) => load_lora(
            model,
            keys,
            c,
            &file.name,
            &name,
            &config_path,
            &weights,
            tensors,
            device,
        )?,
        HubMethodConfig::PrefixTuning(c) => load_prefix(
            model,
            c,
            keys,
            &file.name,
            &name,
            &config_path,
            &weights,
            tensors,
            device,
        )?,
    };
    Ok(HubAdapterLoad {
        name,
        name_in_file: file.name.clone(),
        config,
        weights,
        tensors: placed,
        warnings: file.warnings(),
    })
}

/// Save adapter `name` (LoRA, IA³ or prefix tuning, config `config`) into `dir` as adapters
/// 1.3.0's `save_adapter` does (`adapter_config.json` + `adapter.safetensors`).
pub(crate) fn save_method<H: AdapterHost + Module>(
    model: &H,
    keys: &HubKeys,
    name: &str,
    config: &MethodConfig,
    dir: &Path,
    info: &HubModelInfo,
) -> Result<()> {
    let config_path = dir.join(CONFIG_FILE);
    let prefix = keys.prefixes.first().copied().unwrap_or("");
    let (hub_config, tensors): (HubMethodConfig, Vec<Tensor32>) = match config {
        MethodConfig::Lora(c) => {
            let (hub, t) = save_lora(model, keys, name, c, &config_path, prefix)?;
            (HubMethodConfig::Lora(hub), t)
        }
        MethodConfig::Ia3(c) => {
            let (hub, t) = save_ia3(model, keys, name, c, &config_path, prefix)?;
            (HubMethodConfig::Lora(hub), t)
        }
        MethodConfig::PrefixTuning(c) => {
            let (hub, t) = save_prefix(model, keys, name, c, prefix)?;
            (HubMethodConfig::PrefixTuning(hub), t)
        }
        other => {
            return Err(PeftError::Unsupported {
                field: "method".into(),
                message: format!(
                    "adapter `{name}` is a {} adapter; AdapterHub directories hold bottleneck, LoRA, IA³ and prefix-tuning adapters here",
                    other.kind().name()
                ),
            });
        }
    };
    let json = HubMethodFile::new(name, hub_config, info).to_json()?;
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(k, shape, data)| {
            (
                k,
                shape,
                data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            )
        })
        .collect();
    let bytes = f32_safetensors(&bytes)?;
    create_dir(dir)?;
    crate::file::write_atomic(&dir.join(WEIGHTS_SAFETENSORS), &bytes)?;
    crate::file::write_atomic(&config_path, json.as_bytes())
}
