//! AdapterHub weight files: reading `pytorch_adapter.bin` (a PyTorch pickle zip, read by
//! burn-store's reader, never executed) or `adapter.safetensors`, placing their tensors in a
//! model, and writing our tensors under AdapterHub's names.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::store::burn_pack::Tensor as PackTensor;
use burn::store::{
    BurnToPyTorchAdapter, FloatCastAdapter, ModuleAdapter, ModuleSnapshot, ModuleStore,
    PyTorchToBurnAdapter, PytorchStore, SafetensorsStore,
};
use burn::tensor::DType;

use crate::adapterhub::keys::Landing;
use crate::error::{PeftError, Result};

fn weights_err(path: &Path, e: impl std::fmt::Display) -> PeftError {
    PeftError::Weights {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// The weights file of a directory: the first of `names` that exists (AdapterHub reads the
/// `.bin` by default and the `.safetensors` with `use_safetensors=True`; either is accepted).
pub fn find_weights(dir: &Path, names: &[&'static str]) -> Result<PathBuf> {
    names
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
        .ok_or_else(|| PeftError::HubMissingFile {
            dir: dir.to_path_buf(),
            expected: names.join(" or "),
        })
}

/// Every tensor of a `.bin`/`.pt` (PyTorch) or `.safetensors` file, under its file key.
pub fn read_tensors(path: &Path) -> Result<Vec<PackTensor>> {
    if !path.is_file() {
        return Err(PeftError::HubMissingFile {
            dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
            expected: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        });
    }
    let is_bin = path
        .extension()
        .is_some_and(|e| e == "bin" || e == "pt" || e == "pth");
    let tensors = if is_bin {
        let mut store = PytorchStore::from_file(path).map_indices_contiguous(false);
        store
            .get_all_tensors()
            .map_err(|e| weights_err(path, e))?
            .values()
            .cloned()
            .collect()
    } else {
        let mut store = SafetensorsStore::from_file(path).map_indices_contiguous(false);
        store
            .get_all_tensors()
            .map_err(|e| weights_err(path, e))?
            .values()
            .cloned()
            .collect()
    };
    Ok(tensors)
}

/// What [`place`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Placed {
    /// Our module paths that received a value.
    pub applied: Vec<String>,
    /// File keys that were second copies of a placed tensor (checked equal).
    pub copies: Vec<String>,
}

/// Put the tensors of `path` into `module`.
///
/// `land` says where each file key goes (`None`: nowhere, an error naming the key);
/// `required` names our module paths that the file must provide. Shapes are checked by
/// burn-store (PyTorch layout adapted, float tensors cast to f32) before anything is kept: the
/// tensors are applied to a copy of `module`, which replaces it only when every check passed.
///
/// # Errors
/// [`PeftError::HubUnplaced`] (file keys that land nowhere, or on a path the model lacks),
/// [`PeftError::HubMissingTensors`], [`PeftError::Incompatible`] (wrong shapes, unequal copies).
pub fn place<M: Module>(
    module: &mut M,
    path: &Path,
    tensors: Vec<PackTensor>,
    land: &dyn Fn(&str) -> Option<Landing>,
    required: &dyn Fn(&str) -> bool,
) -> Result<Placed> {
    let mut unplaced = Vec::new();
    let mut firsts: BTreeMap<String, PackTensor> = BTreeMap::new();
    let mut copies: Vec<(String, String, PackTensor)> = Vec::new();
    for mut t in tensors {
        match land(&t.name) {
            None => unplaced.push(t.name.clone()),
            Some(Landing::Path(p)) => {
                t.name = p.clone();
                firsts.insert(p, t);
            }
            Some(Landing::Copy(p)) => {
                let key = t.name.clone();
                copies.push((key, p, t));
            }
        }
    }
    if !unplaced.is_empty() {
        return Err(PeftError::HubUnplaced {
            path: path.to_path_buf(),
            keys: unplaced,
        });
    }
    let mut copy_keys = Vec::new();
    for (key, p, t) in copies {
        let same = firsts.get(&p).is_some_and(|f| {
            f.shape == t.shape
                && f.dtype == t.dtype
                && matches!((f.to_bytes(), t.to_bytes()), (Ok(a), Ok(b)) if a[..] == b[..])
        });
        if !same {
            return Err(PeftError::Incompatible {
                path: path.to_path_buf(),
                message: format!(
                    "`{key}` should be a copy of the tensor placed at `{p}` but differs (or the original is missing)"
                ),
            });
        }
        copy_keys.push(key);
    }
    let adapter: Box<dyn ModuleAdapter> =
        Box::new(PyTorchToBurnAdapter.chain(FloatCastAdapter::to(DType::F32)));
    let mut staged = module.clone();
    let result = staged.apply(firsts.into_values().collect(), None, Some(adapter), true);
    if !result.errors.is_empty() {
        return Err(PeftError::Incompatible {
            path: path.to_path_buf(),
            message: result
                .errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; "),
        });
    }
    if !result.unused.is_empty() {
        return Err(PeftError::HubUnplaced {
            path: path.to_path_buf(),
            keys: result.unused,
        });
    }
    let missing: Vec<String> = result
        .missing
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| required(p))
        .collect();
    if !missing.is_empty() {
        return Err(PeftError::HubMissingTensors {
            path: path.to_path_buf(),
            paths: missing,
        });
    }
    *module = staged;
    Ok(Placed {
        applied: result.applied,
        copies: copy_keys,
    })
}

/// Safetensors bytes of the tensors of `module` that `name` gives AdapterHub keys to
/// (PyTorch layout: `[out, in]` Linear weights, LayerNorm `weight`/`bias`), with the
/// `{"format": "pt"}` metadata AdapterHub's `save_file` writes. `name` maps our module path
/// (PyTorch leaf) to zero (not saved), one or two keys.
///
/// # Errors
/// [`PeftError::Weights`] if a tensor cannot be read back or has a dtype safetensors lacks;
/// [`PeftError::InvalidConfig`] if two paths claim one key or nothing is selected.
pub fn hub_bytes<M: Module>(module: &M, name: &dyn Fn(&str) -> Vec<String>) -> Result<Vec<u8>> {
    let here = Path::new("<safetensors>");
    let tensors = module.collect(None, Some(Box::new(BurnToPyTorchAdapter)), true);
    let mut out: BTreeMap<String, (safetensors::Dtype, Vec<usize>, Vec<u8>)> = BTreeMap::new();
    for t in tensors {
        let keys = name(&t.name);
        if keys.is_empty() {
            continue;
        }
        let dtype = match t.dtype {
            DType::F32 => safetensors::Dtype::F32,
            DType::F64 => safetensors::Dtype::F64,
            DType::F16 => safetensors::Dtype::F16,
            DType::BF16 => safetensors::Dtype::BF16,
            other => {
                return Err(weights_err(
                    here,
                    format!("`{}` has dtype {other:?}, not a float", t.name),
                ));
            }
        };
        let shape: Vec<usize> = t.shape.iter().copied().collect();
        let bytes = t.to_bytes().map_err(|e| weights_err(here, e))?.to_vec();
        for k in keys {
            if out
                .insert(k.clone(), (dtype, shape.clone(), bytes.clone()))
                .is_some()
            {
                return Err(PeftError::InvalidConfig(format!(
                    "two tensors would be saved as `{k}`"
                )));
            }
        }
    }
    if out.is_empty() {
        return Err(PeftError::InvalidConfig("nothing to save".into()));
    }
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = out
        .iter()
        .map(|(k, (dtype, shape, bytes))| {
            safetensors::tensor::TensorView::new(*dtype, shape.clone(), bytes)
                .map(|v| (k.clone(), v))
                .map_err(|e| weights_err(here, e))
        })
        .collect::<Result<_>>()?;
    let metadata = std::collections::HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::tensor::serialize(views, Some(metadata)).map_err(|e| weights_err(here, e))
}

/// Safetensors bytes of F32 `tensors` (name, shape, little-endian bytes), with the
/// `{"format": "pt"}` metadata PyTorch writers put there.
///
/// # Errors
/// [`PeftError::Weights`] if a shape does not fit its bytes.
pub fn f32_safetensors(tensors: &[(String, Vec<usize>, Vec<u8>)]) -> Result<Vec<u8>> {
    let here = Path::new("<safetensors>");
    let views = tensors
        .iter()
        .map(|(k, shape, bytes)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                .map(|v| (k.clone(), v))
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| weights_err(here, e))?;
    let metadata = std::collections::HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::tensor::serialize(views, Some(metadata)).map_err(|e| weights_err(here, e))
}
