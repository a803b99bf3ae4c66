//! Helpers of the data tests.

use std::fs;
use std::path::{Path, PathBuf};

/// Write `text` to `dir/name` and return the path.
pub(crate) fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, text).expect("write");
    path
}
