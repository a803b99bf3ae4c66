//! Reading the JSON files of a model directory (`config.json` and friends) into serde types,
//! with errors that name the file.

use std::path::Path;

use serde::de::DeserializeOwned;

use crate::error::{ModelError, Result};

/// Parse `text`; a malformed document is [`ModelError::MalformedJson`] naming `path`.
pub(crate) fn parse_json<T: DeserializeOwned>(text: &str, path: &Path) -> Result<T> {
    serde_json::from_str(text).map_err(|e| ModelError::MalformedJson {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Read and parse the JSON file at `path`.
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_json(&text, path)
}
