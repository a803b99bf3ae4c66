//! Reading golden tensors written by `scripts/make_fixtures.py` (or any tool): a JSON object
//! mapping names to `{"shape": [..], "data": [flat row-major]}`; other keys are ignored.
//!
//! Parity tests compare our models with PyTorch through these files.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Int, Tensor, TensorData};
use serde_json::Value;

use crate::error::{ModelError, Result};

/// A parsed golden file.
#[derive(Clone, Debug)]
pub struct Golden {
    path: PathBuf,
    values: serde_json::Map<String, Value>,
}

impl Golden {
    /// Parse a golden JSON file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let text = std::fs::read_to_string(&path).map_err(|source| ModelError::Io {
            path: path.clone(),
            source,
        })?;
        let values = match serde_json::from_str(&text) {
            Ok(Value::Object(map)) => map,
            Ok(_) => return Err(Self::bad(&path, "top level is not an object")),
            Err(e) => return Err(Self::bad(&path, &e.to_string())),
        };
        Ok(Self { path, values })
    }

    fn bad(path: &Path, message: &str) -> ModelError {
        ModelError::MalformedJson {
            path: path.to_path_buf(),
            message: message.to_string(),
        }
    }

    /// A non-tensor entry (configs, counts).
    pub fn value(&self, name: &str) -> Option<&Value> {
        self.values.get(name)
    }

    /// Shape and flat values of tensor `name`.
    pub fn raw(&self, name: &str) -> Result<(Vec<usize>, Vec<f64>)> {
        let entry = self
            .values
            .get(name)
            .ok_or_else(|| Self::bad(&self.path, &format!("no tensor `{name}`")))?;
        let shape: Vec<usize> = entry
            .get("shape")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_u64)
                    .map(|v| v as usize)
                    .collect()
            })
            .ok_or_else(|| Self::bad(&self.path, &format!("`{name}` has no shape")))?;
        let data: Vec<f64> = entry
            .get("data")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_f64).collect())
            .ok_or_else(|| Self::bad(&self.path, &format!("`{name}` has no data")))?;
        if data.len() != shape.iter().product::<usize>() {
            return Err(Self::bad(
                &self.path,
                &format!("`{name}`: {} values for shape {shape:?}", data.len()),
            ));
        }
        Ok((shape, data))
    }

    /// Tensor `name` as f32 of rank `D`.
    pub fn float<const D: usize>(&self, name: &str, device: &Device) -> Result<Tensor<D>> {
        let (shape, data) = self.raw(name)?;
        self.check_rank::<D>(name, &shape)?;
        let data: Vec<f32> = data.into_iter().map(|v| v as f32).collect();
        Ok(Tensor::from_data(TensorData::new(data, shape), device))
    }

    /// Tensor `name` as integers of rank `D`.
    pub fn int<const D: usize>(&self, name: &str, device: &Device) -> Result<Tensor<D, Int>> {
        let (shape, data) = self.raw(name)?;
        self.check_rank::<D>(name, &shape)?;
        let data: Vec<i64> = data.into_iter().map(|v| v as i64).collect();
        Ok(Tensor::from_data(TensorData::new(data, shape), device))
    }

    fn check_rank<const D: usize>(&self, name: &str, shape: &[usize]) -> Result<()> {
        if shape.len() == D {
            Ok(())
        } else {
            Err(Self::bad(
                &self.path,
                &format!("`{name}` has rank {}, expected {D}", shape.len()),
            ))
        }
    }
}
