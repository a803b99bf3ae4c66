//! LoRA and IA³ (`architecture: "lora"`) tensors of AdapterHub directories, both ways; see
//! [`super::methods_io`] for the key names and GPT-2's fused `c_attn`.

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::{Module, Param};
use burn::nn::DropoutConfig;
use burn::tensor::{Device, Tensor, TensorData};

use super::methods_io::{FileTensor, Tensor32, shape_err, tensor2, values, weights_err};
use crate::adapterhub::config::unsupported;
use crate::adapterhub::keys::{HubKeys, fill, match_site};
use crate::adapterhub::methods::{HubLoraConfig, HubLoraKind, lora_config};
use crate::attach::{AdapterHost, check_layers, linear_sites};
use crate::error::{PeftError, Result};
use crate::ia3::{Ia3Config, Ia3Init, Ia3Module};
use crate::lora::{LinearTarget, LoraConfig, LoraModule};
use crate::method::MethodConfig;
use crate::peft::transpose;

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
pub(super) fn load_lora<H: AdapterHost + Module>(
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
            if built.is_empty() {
                return Err(nothing_placed(config_path));
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
            if built.is_empty() {
                return Err(nothing_placed(config_path));
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

type Saved = (HubLoraConfig, Vec<Tensor32>);

pub(super) fn save_lora<H: AdapterHost + Module>(
    model: &H,
    keys: &HubKeys,
    name: &str,
    c: &LoraConfig,
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

pub(super) fn save_ia3<H: AdapterHost + Module>(
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

/// A config whose targets and `leave_out` leave no projection of the model.
fn nothing_placed(path: &Path) -> PeftError {
    PeftError::NothingMatched(format!(
        "{}: the config's targets and leave_out select no projection of this model",
        path.display()
    ))
}
