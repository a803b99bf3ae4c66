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

use burn::module::{Module, Param};
use burn::nn::DropoutConfig;
use burn::tensor::{Device, Tensor, TensorData};

use crate::adapterhub::config::{HubModelInfo, unsupported};
use crate::adapterhub::io::{HubAdapterLoad, create_dir};
use crate::adapterhub::keys::{HubKeys, fill, match_site};
use crate::adapterhub::methods::{
    HubLoraConfig, HubLoraKind, HubMethodConfig, HubMethodFile, HubPrefixConfig, lora_config,
};
use crate::adapterhub::weights::{f32_safetensors, find_weights, read_tensors};
use crate::adapterhub::{CONFIG_FILE, WEIGHTS_BIN, WEIGHTS_SAFETENSORS};
use crate::attach::{AdapterHost, adapters, check_layers, linear_sites};
use crate::error::{PeftError, Result};
use crate::ia3::{Ia3Config, Ia3Init, Ia3Module};
use crate::lora::{LinearTarget, LoraModule};
use crate::method::MethodConfig;
use crate::prefix::PrefixTuningConfig;
use crate::setup::check_name;

/// AdapterHub's prefix-tuning pool inside the model (`model_mixin.py`).
const PREFIX_POOL: &str = "prefix_tuning.prefix_tunings";
/// The pool's copy inside each self-attention (`PrefixTuningLayer.pool`).
const PREFIX_POOL_COPY: &str = "prefix_tuning.pool.prefix_tunings";
/// AdapterHub's location key of a self-attention prefix.
const SELF_PREFIX: &str = "self_prefix";

/// A tensor of a weights file: shape and f32 values.
#[derive(Clone, Debug, PartialEq)]
struct FileTensor {
    shape: Vec<usize>,
    data: Vec<f32>,
}

fn weights_err(path: &Path, message: impl Into<String>) -> PeftError {
    PeftError::Weights {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Every tensor of `path` under its key without the model prefix (float tensors as f32).
fn file_tensors(path: &Path, keys: &HubKeys) -> Result<BTreeMap<String, (String, FileTensor)>> {
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

fn shape_err(path: &Path, key: &str, got: &[usize], want: &[usize]) -> PeftError {
    weights_err(
        path,
        format!("`{key}` has shape {got:?}, the model needs {want:?}"),
    )
}

/// `[rows, cols]` row-major -> `[cols, rows]` row-major.
fn transpose(data: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; data.len()];
    for i in 0..rows {
        for j in 0..cols {
            out[j * rows + i] = data[i * cols + j];
        }
    }
    out
}

fn tensor2(data: Vec<f32>, shape: [usize; 2], device: &Device) -> Tensor<2> {
    Tensor::<2>::from_data(TensorData::new(data, shape), device)
}

fn values<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
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

/// The module a LoRA / IA³ file key names: `(layer, target, leaf)`.
fn lora_landing(keys: &HubKeys, key: &str, name: &str) -> Option<(usize, LinearTarget, String)> {
    keys.linear.iter().find_map(|(target, tpl)| {
        let (layer, rest) = match_site(key, tpl)?;
        let leaf = rest
            .strip_prefix("loras.")?
            .strip_prefix(name)?
            .strip_prefix('.')?;
        Some((layer, *target, leaf.to_string()))
    })
}

#[allow(clippy::too_many_arguments)]
fn load_lora<H: AdapterHost + Module>(
    model: &mut H,
    keys: &HubKeys,
    c: &HubLoraConfig,
    name_in_file: &str,
    name: &str,
    config_path: &Path,
    weights: &Path,
    mut tensors: BTreeMap<String, (String, FileTensor)>,
    device: &Device,
) -> Result<(MethodConfig, usize)> {
    let kind = c.kind(config_path)?;
    let targets = c.targets(keys.linear);
    if targets.is_empty() {
        return Err(unsupported(
            config_path,
            "config.selfattn_lora",
            "selfattn_lora, intermediate_lora and output_lora select no projection of this model",
        ));
    }
    check_layers("config.leave_out", &c.leave_out, model.num_layers())?;
    let slots = c.attn_slots();
    let fused = targets.contains(&LinearTarget::QueryKeyValue);
    let n = slots.len().max(1);
    let lora_ranks_differ = fused && n > 1 && targets.len() > 1;
    if lora_ranks_differ && matches!(kind, HubLoraKind::Lora { .. }) {
        return Err(unsupported(
            config_path,
            "config.attn_matrices",
            format!(
                "{} matrices of the fused c_attn make a rank-{}·r LoRA there, beside rank-r LoRA on the other projections; one adapter here has one rank (save the attention and feed-forward LoRA as two adapters)",
                slots.len(),
                slots.len()
            ),
        ));
    }
    let targeted = |layer: usize, target: LinearTarget| {
        targets.contains(&target) && !c.leave_out.contains(&layer)
    };
    // Take the file's tensors site by site; whatever is left lands nowhere.
    let mut found: BTreeMap<(usize, LinearTarget, String), (String, FileTensor)> = BTreeMap::new();
    let mut unplaced = Vec::new();
    for (short, (key, t)) in std::mem::take(&mut tensors) {
        match lora_landing(keys, &short, name_in_file) {
            Some((layer, target, leaf))
                if targeted(layer, target)
                    && model.linear_site(layer, target).is_some()
                    && (leaf == "lora_B"
                        || (leaf == "lora_A" && matches!(kind, HubLoraKind::Lora { .. }))) =>
            {
                found.insert((layer, target, leaf), (key, t));
            }
            _ => unplaced.push(key),
        }
    }
    if !unplaced.is_empty() {
        return Err(PeftError::HubUnplaced {
            path: weights.to_path_buf(),
            keys: unplaced,
        });
    }
    let prefix = keys.prefixes.first().copied().unwrap_or("");
    let mut missing = Vec::new();
    let mut take = |layer: usize, target: LinearTarget, tpl: &str, leaf: &str| {
        let got = found.remove(&(layer, target, leaf.to_string()));
        if got.is_none() {
            missing.push(format!(
                "{prefix}{}.loras.{name_in_file}.{leaf}",
                fill(tpl, layer)
            ));
        }
        got
    };
    match kind {
        HubLoraKind::Lora {
            rank,
            alpha,
            dropout,
        } => {
            let (our_rank, our_alpha) = if fused && targets.len() == 1 {
                (rank * n, alpha * n as f64)
            } else {
                (rank, alpha)
            };
            let config = lora_config(
                our_rank,
                our_alpha,
                dropout,
                targets.clone(),
                c.leave_out.clone(),
            );
            config.validate()?;
            let mut built = Vec::new();
            for (layer, target, site) in linear_sites(model) {
                if !targeted(layer, target) {
                    continue;
                }
                let tpl = hub_path(keys, target);
                let (a, b) = (
                    take(layer, target, tpl, "lora_A"),
                    take(layer, target, tpl, "lora_B"),
                );
                let (Some((ka, a)), Some((kb, b))) = (a, b) else {
                    continue;
                };
                let (d_in, d_out) = (site.d_in(), site.d_out());
                let (lora_a, lora_b) = if target == LinearTarget::QueryKeyValue {
                    let d = d_out / 3;
                    if d * 3 != d_out {
                        return Err(weights_err(
                            weights,
                            format!("`{kb}`: c_attn's width {d_out} is not 3 blocks"),
                        ));
                    }
                    let want_a = [n * rank, d_in];
                    let want_b = [n * d, rank];
                    if a.shape != want_a {
                        return Err(shape_err(weights, &ka, &a.shape, &want_a));
                    }
                    if b.shape != want_b {
                        return Err(shape_err(weights, &kb, &b.shape, &want_b));
                    }
                    // Block j of B (rows j·d.., the j-th enabled matrix) -> rows j·r.. of ours,
                    // columns slot·d.. of the fused output.
                    let mut ours = vec![0.0; n * rank * d_out];
                    for (j, &slot) in slots.iter().enumerate() {
                        for k in 0..rank {
                            for col in 0..d {
                                ours[(j * rank + k) * d_out + slot * d + col] =
                                    b.data[(j * d + col) * rank + k];
                            }
                        }
                    }
                    (
                        tensor2(transpose(&a.data, n * rank, d_in), [d_in, n * rank], device),
                        tensor2(ours, [n * rank, d_out], device),
                    )
                } else {
                    let want_a = [rank, d_in];
                    let want_b = [d_out, rank];
                    if a.shape != want_a {
                        return Err(shape_err(weights, &ka, &a.shape, &want_a));
                    }
                    if b.shape != want_b {
                        return Err(shape_err(weights, &kb, &b.shape, &want_b));
                    }
                    (
                        tensor2(transpose(&a.data, rank, d_in), [d_in, rank], device),
                        tensor2(transpose(&b.data, d_out, rank), [rank, d_out], device),
                    )
                };
                built.push((
                    layer,
                    target,
                    LoraModule {
                        lora_a: Param::from_tensor(lora_a),
                        lora_b: Param::from_tensor(lora_b),
                        dropout: DropoutConfig::new(config.dropout).init(),
                        scale: config.scale(),
                    },
                ));
            }
            if !missing.is_empty() {
                return Err(PeftError::HubMissingTensors {
                    path: weights.to_path_buf(),
                    paths: missing,
                });
            }
            let placed = built.len() * 2;
            for (layer, target, module) in built {
                if let Some(site) = model.linear_site_mut(layer, target) {
                    site.insert_lora(name, config.clone(), module);
                }
            }
            Ok((MethodConfig::Lora(config), placed))
        }
        HubLoraKind::Ia3 { alpha } => {
            let config = Ia3Config {
                targets: targets.clone(),
                feedforward: Vec::new(),
                leave_out: c.leave_out.clone(),
                init: Ia3Init::Ones,
            };
            config.validate()?;
            let alpha = alpha as f32;
            let mut built = Vec::new();
            for (layer, target, site) in linear_sites(model) {
                if !targeted(layer, target) {
                    continue;
                }
                let Some((kb, b)) = take(layer, target, hub_path(keys, target), "lora_B") else {
                    continue;
                };
                let d_out = site.d_out();
                let l = if target == LinearTarget::QueryKeyValue {
                    let d = d_out / 3;
                    let want = [slots.len() * d, 1];
                    if d * 3 != d_out || b.shape != want {
                        return Err(shape_err(weights, &kb, &b.shape, &want));
                    }
                    // Ones where no matrix is enabled (AdapterHub pads the scale with 1).
                    let mut l = vec![1.0; d_out];
                    for (j, &slot) in slots.iter().enumerate() {
                        for col in 0..d {
                            l[slot * d + col] = b.data[j * d + col] * alpha;
                        }
                    }
                    l
                } else {
                    let want = [d_out, 1];
                    if b.shape != want {
                        return Err(shape_err(weights, &kb, &b.shape, &want));
                    }
                    b.data.iter().map(|v| v * alpha).collect()
                };
                let width = l.len();
                built.push((
                    layer,
                    target,
                    Ia3Module {
                        ia3_l: Param::from_tensor(Tensor::<1>::from_data(
                            TensorData::new(l, [width]),
                            device,
                        )),
                        feedforward: false,
                    },
                ));
            }
            if !missing.is_empty() {
                return Err(PeftError::HubMissingTensors {
                    path: weights.to_path_buf(),
                    paths: missing,
                });
            }
            let placed = built.len();
            for (layer, target, module) in built {
                if let Some(site) = model.linear_site_mut(layer, target) {
                    site.insert_ia3(name, config.clone(), module);
                }
            }
            Ok((MethodConfig::Ia3(config), placed))
        }
    }
}

/// AdapterHub's module path template of `target` (empty if the model has none).
fn hub_path(keys: &HubKeys, target: LinearTarget) -> &'static str {
    keys.linear
        .iter()
        .find(|(t, _)| *t == target)
        .map(|(_, p)| *p)
        .unwrap_or("")
}

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
fn load_prefix<H: AdapterHost + Module>(
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
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
    let hub_config = match config {
        MethodConfig::Lora(c) => {
            let (hub, t) = save_lora(model, keys, name, c, &config_path, prefix)?;
            tensors = t;
            HubMethodConfig::Lora(hub)
        }
        MethodConfig::Ia3(c) => {
            let (hub, t) = save_ia3(model, keys, name, c, &config_path, prefix)?;
            tensors = t;
            HubMethodConfig::Lora(hub)
        }
        MethodConfig::PrefixTuning(c) => {
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
            HubMethodConfig::PrefixTuning(HubPrefixConfig::new(&hub))
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

/// Our targets -> AdapterHub's projections: the `q`/`k`/`v` slots of unfused attention
/// targets; error for a target AdapterHub has no LoRA on.
fn check_targets(keys: &HubKeys, targets: &[LinearTarget], path: &Path) -> Result<Vec<usize>> {
    if let Some(t) = targets
        .iter()
        .find(|t| !keys.linear.iter().any(|(l, _)| l == *t))
    {
        return Err(unsupported(
            path,
            "targets",
            format!(
                "AdapterHub has no LoRA / IA³ on {} of this model (it wraps q, k, v, the feed-forward input and output)",
                t.name()
            ),
        ));
    }
    Ok(
        [LinearTarget::Query, LinearTarget::Key, LinearTarget::Value]
            .iter()
            .enumerate()
            .filter(|(_, t)| targets.contains(t))
            .map(|(s, _)| s)
            .collect(),
    )
}

/// The `q`/`k`/`v` slots whose columns of the fused output `is_used` says are used in any
/// block (`cols`: the fused outputs, row-major `[rows, 3d]`).
fn used_slots(mats: &[(Vec<f32>, usize)], d: usize, is_used: &dyn Fn(f32) -> bool) -> Vec<usize> {
    (0..3)
        .filter(|&s| {
            mats.iter().any(|(m, cols)| {
                m.chunks(*cols)
                    .any(|row| row[s * d..(s + 1) * d].iter().any(|&v| is_used(v)))
            })
        })
        .collect()
}

type Saved = (HubLoraConfig, Vec<(String, Vec<usize>, Vec<f32>)>);

fn save_lora<H: AdapterHost + Module>(
    model: &H,
    keys: &HubKeys,
    name: &str,
    c: &crate::lora::LoraConfig,
    path: &Path,
    prefix: &str,
) -> Result<Saved> {
    let mut attn = check_targets(keys, &c.targets, path)?;
    let rank = c.rank;
    let fused = c.targets.contains(&LinearTarget::QueryKeyValue);
    let mut mods = Vec::new();
    for (layer, target, site) in linear_sites(model) {
        if let Some(m) = site.lora_module(name) {
            mods.push((
                layer,
                target,
                site.d_in(),
                site.d_out(),
                values(m.lora_a.val())?,
                values(m.lora_b.val())?,
            ));
        }
    }
    // The fused c_attn: which q/k/v blocks are used, and the rank per block.
    let mut r_file = rank;
    if fused {
        let d = mods
            .iter()
            .find(|m| m.1 == LinearTarget::QueryKeyValue)
            .map(|m| m.3 / 3)
            .unwrap_or(0);
        let bs: Vec<(Vec<f32>, usize)> = mods
            .iter()
            .filter(|m| m.1 == LinearTarget::QueryKeyValue)
            .map(|m| (m.5.clone(), m.3))
            .collect();
        let used = used_slots(&bs, d, &|v| v != 0.0);
        attn = if c.targets.len() > 1 {
            match used.as_slice() {
                [] => vec![0],
                [one] => vec![*one],
                _ => {
                    return Err(unsupported(
                        path,
                        "targets",
                        "a fused c_attn LoRA that updates several of q, k, v beside other LoRA targets: AdapterHub's c_attn LoRA then has a different rank from the others",
                    ));
                }
            }
        } else if used.is_empty() {
            if rank.is_multiple_of(2) {
                vec![0, 2]
            } else {
                vec![0]
            }
        } else {
            used
        };
        let n = attn.len();
        if !rank.is_multiple_of(n) {
            return Err(unsupported(
                path,
                "rank",
                format!(
                    "rank {rank} is not {n} equal blocks for the {n} matrices of c_attn it updates"
                ),
            ));
        }
        r_file = rank / n;
        // Block-diagonal: block j of ours (rows j·r..) only feeds the j-th used matrix.
        for (b, cols) in &bs {
            for (row, vals) in b.chunks(*cols).enumerate() {
                for s in 0..3 {
                    let owner = attn.iter().position(|&x| x == s);
                    let nonzero = vals[s * d..(s + 1) * d].iter().any(|&v| v != 0.0);
                    if nonzero && owner != Some(row / r_file) {
                        return Err(unsupported(
                            path,
                            "lora_b",
                            "this fused c_attn LoRA is not one rank-r LoRA per q/k/v block (AdapterHub's form); it cannot be written as AdapterHub's",
                        ));
                    }
                }
            }
        }
    }
    let alpha_file = if c.use_rslora {
        c.scale() * r_file as f64
    } else {
        c.alpha * r_file as f64 / rank as f64
    };
    let mut tensors = Vec::new();
    for (layer, target, d_in, d_out, a, b) in mods {
        let base = format!(
            "{prefix}{}.loras.{name}",
            fill(hub_path(keys, target), layer)
        );
        tensors.push((
            format!("{base}.lora_A"),
            vec![rank, d_in],
            transpose(&a, d_in, rank),
        ));
        let (shape, data) = if target == LinearTarget::QueryKeyValue {
            let d = d_out / 3;
            let mut out = vec![0.0; attn.len() * d * r_file];
            for (j, &slot) in attn.iter().enumerate() {
                for k in 0..r_file {
                    for col in 0..d {
                        out[(j * d + col) * r_file + k] =
                            b[(j * r_file + k) * d_out + slot * d + col];
                    }
                }
            }
            (vec![attn.len() * d, r_file], out)
        } else {
            (vec![d_out, rank], transpose(&b, rank, d_out))
        };
        tensors.push((format!("{base}.lora_B"), shape, data));
    }
    let hub = HubLoraConfig::new(
        false,
        &attn,
        &c.targets,
        &c.leave_out,
        r_file,
        alpha_file,
        c.dropout,
    );
    Ok((hub, tensors))
}

fn save_ia3<H: AdapterHost + Module>(
    model: &H,
    keys: &HubKeys,
    name: &str,
    c: &Ia3Config,
    path: &Path,
    prefix: &str,
) -> Result<Saved> {
    if let Some(t) = c.feedforward.first() {
        return Err(unsupported(
            path,
            "feedforward",
            format!(
                "IA³ on {} scales its input here (PEFT's feedforward_modules); AdapterHub's IA³ scales every projection's output",
                t.name()
            ),
        ));
    }
    let mut attn = check_targets(keys, &c.targets, path)?;
    let mut mods = Vec::new();
    for (layer, target, site) in linear_sites(model) {
        if let Some(m) = site.ia3_module(name) {
            mods.push((layer, target, site.d_out(), values(m.ia3_l.val())?));
        }
    }
    if c.targets.contains(&LinearTarget::QueryKeyValue) {
        let ls: Vec<(Vec<f32>, usize)> = mods
            .iter()
            .filter(|m| m.1 == LinearTarget::QueryKeyValue)
            .map(|m| (m.3.clone(), m.2))
            .collect();
        let d = ls.first().map(|(_, w)| w / 3).unwrap_or(0);
        attn = used_slots(&ls, d, &|v| v != 1.0);
        if attn.is_empty() {
            attn = vec![0, 1, 2];
        }
    }
    let mut tensors = Vec::new();
    for (layer, target, d_out, l) in mods {
        let key = format!(
            "{prefix}{}.loras.{name}.lora_B",
            fill(hub_path(keys, target), layer)
        );
        if target == LinearTarget::QueryKeyValue {
            let d = d_out / 3;
            let data: Vec<f32> = attn
                .iter()
                .flat_map(|&s| l[s * d..(s + 1) * d].to_vec())
                .collect();
            tensors.push((key, vec![data.len(), 1], data));
        } else {
            tensors.push((key, vec![d_out, 1], l));
        }
    }
    let hub = HubLoraConfig::new(true, &attn, &c.targets, &c.leave_out, 1, 1.0, 0.0);
    Ok((hub, tensors))
}
