//! Prefix-tuning (`architecture: "prefix_tuning"`) tensors of AdapterHub directories, both
//! ways; see [`super::methods_io`] for the key names.

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor, TensorData};

use super::methods_io::{FileTensor, Tensor32, shape_err, tensor2, values};
use crate::adapterhub::keys::{HubKeys, fill, match_site};
use crate::adapterhub::methods::HubPrefixConfig;
use crate::attach::{AdapterHost, check_layers};
use crate::error::{PeftError, Result};
use crate::method::MethodConfig;
use crate::peft::transpose;
use crate::prefix::PrefixTuningConfig;

/// AdapterHub's prefix-tuning pool inside the model (`model_mixin.py`).
const PREFIX_POOL: &str = "prefix_tuning.prefix_tunings";

/// The pool's copy inside each self-attention (`PrefixTuningLayer.pool`).
const PREFIX_POOL_COPY: &str = "prefix_tuning.pool.prefix_tunings";

/// AdapterHub's location key of a self-attention prefix.
const SELF_PREFIX: &str = "self_prefix";

/// The leaf names and shapes of a prefix-tuning module of `config` on `n_layers` blocks of
/// width `d`, in AdapterHub's layout.
fn prefix_leaves(
    config: &PrefixTuningConfig,
    n_layers: usize,
    d: usize,
) -> Vec<(&'static str, Vec<usize>)> {
    let (p, bn) = (config.prefix_length, config.bottleneck_size);
    let width = n_layers * 2 * d;
    if config.flat {
        vec![("control_trans", vec![p * width])]
    } else {
        vec![
            ("wte.weight", vec![p, d]),
            ("control_trans.0.weight", vec![bn, d]),
            ("control_trans.0.bias", vec![bn]),
            ("control_trans.2.weight", vec![width, bn]),
            ("control_trans.2.bias", vec![width]),
        ]
    }
}

/// The block of a per-layer copy key `<self-attention(i)>.prefix_tuning.pool.prefix_tunings.
/// NAME.self_prefix.LEAF`, and the leaf.
fn prefix_copy<'k>(keys: &HubKeys, key: &'k str, name: &str) -> Option<(usize, &'k str)> {
    let (layer, rest) = match_site(key, keys.self_attention)?;
    let leaf = rest
        .strip_prefix(PREFIX_POOL_COPY)?
        .strip_prefix('.')?
        .strip_prefix(name)?
        .strip_prefix('.')?
        .strip_prefix(SELF_PREFIX)?
        .strip_prefix('.')?;
    Some((layer, leaf))
}

#[allow(clippy::too_many_arguments)]
pub(super) fn load_prefix<H: AdapterHost + Module>(
    model: &mut H,
    c: &HubPrefixConfig,
    keys: &HubKeys,
    name_in_file: &str,
    name: &str,
    config_path: &Path,
    weights: &Path,
    tensors: BTreeMap<String, (String, FileTensor)>,
    device: &Device,
) -> Result<(MethodConfig, usize)> {
    let config = c.prefix_config(config_path)?;
    let num_layers = model.num_layers();
    check_layers("config.leave_out", &config.leave_out, num_layers)?;
    let heads = model.num_attention_heads();
    let d = model.d_model();
    if model.prefix_pool().is_none() || heads == 0 || !d.is_multiple_of(heads) {
        return Err(PeftError::NothingMatched(
            "this model takes no prefix-tuning prefixes".into(),
        ));
    }
    let layers = config.layers(num_layers);
    let leaves = prefix_leaves(&config, layers.len(), d);
    let main = format!("{PREFIX_POOL}.{name_in_file}.{SELF_PREFIX}.");
    let mut firsts: BTreeMap<&str, (String, FileTensor)> = BTreeMap::new();
    let mut copies = Vec::new();
    let mut unplaced = Vec::new();
    for (short, (key, t)) in tensors {
        let leaf_of = |leaf: &str| leaves.iter().find(|(l, _)| *l == leaf).map(|(l, _)| *l);
        if let Some(leaf) = short.strip_prefix(&main).and_then(leaf_of) {
            firsts.insert(leaf, (key, t));
        } else if let Some(leaf) = prefix_copy(keys, &short, name_in_file)
            .filter(|(layer, _)| *layer < num_layers)
            .and_then(|(_, leaf)| leaf_of(leaf))
        {
            copies.push((leaf, key, t));
        } else {
            unplaced.push(key);
        }
    }
    if !unplaced.is_empty() {
        return Err(PeftError::HubUnplaced {
            path: weights.to_path_buf(),
            keys: unplaced,
        });
    }
    let prefix = keys.prefixes.first().copied().unwrap_or("");
    let missing: Vec<String> = leaves
        .iter()
        .filter(|(l, _)| !firsts.contains_key(l))
        .map(|(l, _)| format!("{prefix}{main}{l}"))
        .collect();
    if !missing.is_empty() {
        return Err(PeftError::HubMissingTensors {
            path: weights.to_path_buf(),
            paths: missing,
        });
    }
    for (leaf, want) in &leaves {
        if let Some((key, t)) = firsts.get(leaf)
            && &t.shape != want
        {
            return Err(shape_err(weights, key, &t.shape, want));
        }
    }
    for (leaf, key, t) in &copies {
        if firsts.get(leaf).map(|(_, f)| f) != Some(t) {
            return Err(PeftError::Incompatible {
                path: weights.to_path_buf(),
                message: format!("`{key}` should be a copy of `{prefix}{main}{leaf}` but differs"),
            });
        }
    }
    let get = |leaf: &str| {
        firsts
            .get(leaf)
            .map(|(_, t)| t.data.clone())
            .unwrap_or_default()
    };
    let mut module = config.init(layers.clone(), heads, d / heads, device)?;
    let (p, bn, width) = (
        config.prefix_length,
        config.bottleneck_size,
        layers.len() * 2 * d,
    );
    if config.flat {
        module.prefix_flat = Some(Param::from_tensor(tensor2(
            get("control_trans"),
            [p, width],
            device,
        )));
    } else {
        module.prefix_wte = Some(Param::from_tensor(tensor2(
            get("wte.weight"),
            [p, d],
            device,
        )));
        if let Some(down) = module.prefix_down.as_mut() {
            down.weight = Param::from_tensor(tensor2(
                transpose(&get("control_trans.0.weight"), bn, d),
                [d, bn],
                device,
            ));
            down.bias = Some(Param::from_tensor(Tensor::<1>::from_data(
                TensorData::new(get("control_trans.0.bias"), [bn]),
                device,
            )));
        }
        if let Some(up) = module.prefix_up.as_mut() {
            up.weight = Param::from_tensor(tensor2(
                transpose(&get("control_trans.2.weight"), width, bn),
                [bn, width],
                device,
            ));
            up.bias = Some(Param::from_tensor(Tensor::<1>::from_data(
                TensorData::new(get("control_trans.2.bias"), [width]),
                device,
            )));
        }
    }
    let placed = firsts.len();
    if let Some(pool) = model.prefix_pool_mut() {
        pool.insert(name, config.clone(), module);
    }
    Ok((MethodConfig::PrefixTuning(config), placed))
}

/// The AdapterHub config and tensors (pool + per-block copies) of prefix-tuning adapter `name`.
pub(super) fn save_prefix<H: AdapterHost + Module>(
    model: &H,
    keys: &HubKeys,
    name: &str,
    c: &PrefixTuningConfig,
    prefix: &str,
) -> Result<(HubPrefixConfig, Vec<Tensor32>)> {
    let mut tensors: Vec<Tensor32> = Vec::new();
    let module = model
        .prefix_pool()
        .and_then(|p| p.adapters().get(name))
        .ok_or_else(|| PeftError::NotFound {
            kind: "prefix-tuning adapter",
            name: name.to_string(),
            available: String::new(),
        })?;
    let d = model.d_model();
    let width = module.layers.len() * 2 * d;
    let mut leaves: Vec<(&str, Vec<usize>, Vec<f32>)> = Vec::new();
    if let Some(flat) = &module.prefix_flat {
        let v = values(flat.val())?;
        leaves.push(("control_trans", vec![v.len()], v));
    } else if let (Some(wte), Some(down), Some(up)) =
        (&module.prefix_wte, &module.prefix_down, &module.prefix_up)
    {
        let bn = c.bottleneck_size;
        let p = c.prefix_length;
        leaves.push(("wte.weight", vec![p, d], values(wte.val())?));
        leaves.push((
            "control_trans.0.weight",
            vec![bn, d],
            values(down.weight.val().transpose())?,
        ));
        let bias = |b: &Option<Param<Tensor<1>>>, n: usize| match b {
            Some(b) => values(b.val()),
            None => Ok(vec![0.0; n]),
        };
        leaves.push(("control_trans.0.bias", vec![bn], bias(&down.bias, bn)?));
        leaves.push((
            "control_trans.2.weight",
            vec![width, bn],
            values(up.weight.val().transpose())?,
        ));
        leaves.push(("control_trans.2.bias", vec![width], bias(&up.bias, width)?));
    }
    let mut hub = c.clone();
    hub.flat = module.is_flat();
    for (leaf, shape, data) in leaves {
        tensors.push((
            format!("{prefix}{PREFIX_POOL}.{name}.{SELF_PREFIX}.{leaf}"),
            shape.clone(),
            data.clone(),
        ));
        for layer in 0..model.num_layers() {
            tensors.push((
                format!(
                    "{prefix}{}.{PREFIX_POOL_COPY}.{name}.{SELF_PREFIX}.{leaf}",
                    fill(keys.self_attention, layer)
                ),
                shape.clone(),
                data.clone(),
            ));
        }
    }
    Ok((HubPrefixConfig::new(&hub), tensors))
}
