//! Loading Hugging Face checkpoints (`model.safetensors`, `pytorch_model.bin`) with burn-store,
//! shared by all model families. Each family's `weights.rs` supplies only its key remapping.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::store::{
    ApplyResult, FloatCastAdapter, KeyRemapper, ModuleAdapter, ModuleSnapshot, ModuleStore,
    PyTorchToBurnAdapter, PytorchStore, SafetensorsStore,
};
use burn::tensor::DType;
use peft_core::Trainable;

use crate::error::{ModelError, Result};

/// Checkpoint file names looked for in a model directory, in order of preference.
pub const CHECKPOINT_FILES: [&str; 2] = ["model.safetensors", "pytorch_model.bin"];

/// The checkpoint file of a model directory (`model.safetensors` preferred).
pub fn find_checkpoint(dir: impl AsRef<Path>) -> Result<PathBuf> {
    let dir = dir.as_ref();
    CHECKPOINT_FILES
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.is_file())
        .ok_or_else(|| ModelError::NoCheckpoint {
            dir: dir.to_path_buf(),
        })
}

/// What loading a base checkpoint did. Keep it: it names every key that was not used.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// The file read.
    pub path: PathBuf,
    /// Number of model tensors that received a value.
    pub loaded: usize,
    /// Checkpoint keys the model has no place for (e.g. `cls.*` heads, `position_ids` buffers).
    pub unused: Vec<String>,
    /// Model tensors left at their initial value because they are not part of a base checkpoint
    /// (adapters, task heads).
    pub not_in_checkpoint: Vec<String>,
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "loaded {} tensors from {}",
            self.loaded,
            self.path.display()
        )?;
        if !self.unused.is_empty() {
            write!(
                f,
                "; ignored {} checkpoint key(s): {}",
                self.unused.len(),
                self.unused.join(", ")
            )?;
        }
        if !self.not_in_checkpoint.is_empty() {
            write!(
                f,
                "; {} adapter/head tensor(s) not in the checkpoint",
                self.not_in_checkpoint.len()
            )?;
        }
        Ok(())
    }
}

fn checkpoint_error(path: &Path, e: impl std::fmt::Display) -> ModelError {
    ModelError::Checkpoint {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Load a Hugging Face checkpoint into `module`.
///
/// - `remap`: `(regex, replacement)` pairs turning checkpoint keys into module paths;
/// - `optional`: module paths that may be absent from the checkpoint (adapters, heads); any
///   other absent path is a [`ModelError::MissingWeights`];
/// - tensors with the wrong shape are a [`ModelError::IncompatibleWeights`];
/// - checkpoint keys the model has no place for are only reported ([`LoadReport::unused`]:
///   heads such as `cls.*`, buffers such as `position_ids`);
/// - f16/bf16 checkpoints (`model.safetensors` and `pytorch_model.bin` alike) are cast to f32.
///
/// On error `module` is left as it was: the load is applied to a copy, kept only on success.
///
/// Linear weights are transposed from PyTorch's `[out, in]` by burn-store's PyTorch adapter,
/// which applies to modules of type `Linear` only.
pub fn load_hf_checkpoint<M: Module>(
    module: &mut M,
    path: impl AsRef<Path>,
    remap: &[(&str, &str)],
    optional: &Trainable,
) -> Result<LoadReport> {
    load_with_scope(
        module,
        path,
        remap,
        &|p| optional.matches(p).map_err(Into::into),
        Unused::Report,
    )
}

/// Load only the tensors selected by `only` (e.g. adapters from an AdapterHub file): every
/// selected module path must be in the file, and every tensor of the file must land in the
/// model (else [`ModelError::UnmatchedWeights`] naming the keys, e.g. adapters of a site or
/// layer the model has none at); the rest of the model is left as it is. On error `module` is
/// left as it was.
pub fn load_hf_subset<M: Module>(
    module: &mut M,
    path: impl AsRef<Path>,
    remap: &[(&str, &str)],
    only: &Trainable,
) -> Result<LoadReport> {
    load_with_scope(
        module,
        path,
        remap,
        &|p| only.matches(p).map(|m| !m).map_err(Into::into),
        Unused::Error,
    )
}

/// What to do with checkpoint keys that land nowhere in the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unused {
    /// List them in [`LoadReport::unused`] (base checkpoints carry heads and buffers).
    Report,
    /// Fail with [`ModelError::UnmatchedWeights`].
    Error,
}

/// Every float tensor read from the file becomes f32 (after burn-store's PyTorch layout
/// adaptation); f32 tensors pass unchanged.
fn hf_adapter() -> Box<dyn ModuleAdapter> {
    Box::new(PyTorchToBurnAdapter.chain(FloatCastAdapter::to(DType::F32)))
}

fn load_with_scope<M: Module>(
    module: &mut M,
    path: impl AsRef<Path>,
    remap: &[(&str, &str)],
    optional: &dyn Fn(&str) -> Result<bool>,
    unused: Unused,
) -> Result<LoadReport> {
    let path = path.as_ref();
    if !path.is_file() {
        return Err(ModelError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such checkpoint file"),
        });
    }
    let remapper = KeyRemapper::from_patterns(remap.to_vec())
        .map_err(|e| ModelError::InvalidConfig(format!("bad key remapping: {e}")))?;
    let is_bin = path
        .extension()
        .is_some_and(|e| e == "bin" || e == "pt" || e == "pth");
    // Staged on a copy (tensors are shared, not duplicated) so that an error leaves `module`
    // untouched.
    let mut staged = module.clone();
    let result: ApplyResult = if is_bin {
        // burn-store's PytorchStore has no adapter hook (it applies PyTorchToBurnAdapter
        // only): read the remapped tensors and apply them with the f32 cast ourselves.
        let mut store = PytorchStore::from_file(path)
            .remap(remapper)
            .map_indices_contiguous(false);
        let tensors = store
            .get_all_tensors()
            .map_err(|e| checkpoint_error(path, e))?
            .values()
            .cloned()
            .collect();
        staged.apply(tensors, None, Some(hf_adapter()), true)
    } else {
        let mut store = SafetensorsStore::from_file(path)
            .with_from_adapter(PyTorchToBurnAdapter.chain(FloatCastAdapter::to(DType::F32)))
            .remap(remapper)
            .allow_partial(true)
            .validate(false)
            .map_indices_contiguous(false);
        staged
            .load_from(&mut store)
            .map_err(|e| checkpoint_error(path, e))?
    };
    let report = check_apply_result(path, result, optional)?;
    if unused == Unused::Error && !report.unused.is_empty() {
        return Err(ModelError::UnmatchedWeights {
            path: path.to_path_buf(),
            keys: report.unused,
        });
    }
    *module = staged;
    Ok(report)
}

/// Turn burn-store's apply result into a [`LoadReport`] or the error it implies: model paths
/// absent from the file are fine only where `optional` says so.
pub fn check_apply_result(
    path: &Path,
    result: ApplyResult,
    optional: &dyn Fn(&str) -> Result<bool>,
) -> Result<LoadReport> {
    if !result.errors.is_empty() {
        return Err(ModelError::IncompatibleWeights {
            path: path.to_path_buf(),
            problems: result.errors.iter().map(|e| e.to_string()).collect(),
        });
    }
    let mut missing = Vec::new();
    let mut not_in_checkpoint = Vec::new();
    for (p, _) in result.missing {
        if optional(&p)? {
            not_in_checkpoint.push(p);
        } else {
            missing.push(p);
        }
    }
    if !missing.is_empty() {
        return Err(ModelError::MissingWeights {
            path: path.to_path_buf(),
            keys: missing,
        });
    }
    Ok(LoadReport {
        path: path.to_path_buf(),
        loaded: result.applied.len(),
        unused: result.unused,
        not_in_checkpoint,
    })
}
