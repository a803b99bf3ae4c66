//! The Hugging Face cache layout, as `huggingface_hub` (Python) writes it:
//!
//! ```text
//! <cache>/models--<owner>--<name>/blobs/<etag>                 the files' contents
//! <cache>/models--<owner>--<name>/blobs/<etag>.incomplete      a download in progress
//! <cache>/models--<owner>--<name>/snapshots/<commit>/<file>    -> ../../blobs/<etag>
//! <cache>/models--<owner>--<name>/refs/<revision>              the commit of a branch or tag
//! <cache>/.locks/models--<owner>--<name>/<etag>.lock           held while downloading
//! ```

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{ModelError, Result};

/// The cache folders of one model repository.
pub(super) struct RepoCache {
    /// `<cache>/models--owner--name`.
    dir: PathBuf,
    /// `<cache>/.locks/models--owner--name`.
    locks: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ModelError + '_ {
    move |source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl RepoCache {
    pub(super) fn new(cache_dir: &Path, repo_id: &str) -> Self {
        let folder = format!("models--{}", repo_id.replace('/', "--"));
        Self {
            dir: cache_dir.join(&folder),
            locks: cache_dir.join(".locks").join(folder),
        }
    }

    pub(super) fn snapshot(&self, commit: &str) -> PathBuf {
        self.dir.join("snapshots").join(commit)
    }

    pub(super) fn blob(&self, etag: &str) -> PathBuf {
        self.dir.join("blobs").join(etag)
    }

    /// The commit `revision` points to in the cache: `refs/<revision>`, or the revision itself
    /// when it is a commit hash with a snapshot folder.
    pub(super) fn commit_for(&self, revision: &str) -> Option<String> {
        if let Ok(text) = fs::read_to_string(self.dir.join("refs").join(revision)) {
            let commit = text.trim();
            if is_safe_name(commit) {
                return Some(commit.to_string());
            }
        }
        (revision.len() == 40
            && revision.chars().all(|c| c.is_ascii_hexdigit())
            && self.snapshot(revision).is_dir())
        .then(|| revision.to_string())
    }

    /// Records that `revision` is at `commit` (nothing to record when it is the commit).
    pub(super) fn write_ref(&self, revision: &str, commit: &str) -> Result<()> {
        if revision == commit {
            return Ok(());
        }
        let path = self.dir.join("refs").join(revision);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io(parent))?;
        }
        peft_core::file::write_atomic(&path, commit.as_bytes())?;
        Ok(())
    }

    /// Takes the download lock of a blob (the same file `huggingface_hub` locks), waiting for
    /// another process that holds it.
    pub(super) fn lock(&self, etag: &str, progress: bool) -> Result<fs::File> {
        fs::create_dir_all(&self.locks).map_err(io(&self.locks))?;
        let path = self.locks.join(format!("{etag}.lock"));
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io(&path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                if progress {
                    eprintln!(
                        "waiting for another process downloading into {} (lock {})",
                        self.dir.display(),
                        path.display()
                    );
                }
                file.lock().map_err(io(&path))?;
            }
            Err(fs::TryLockError::Error(e)) => return Err(io(&path)(e)),
        }
        Ok(file)
    }
}

/// A commit hash or etag usable as a file name: ASCII letters, digits, `-`, `_`, `.` (not
/// starting with `.`).
pub(super) fn is_safe_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('.')
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Makes `link` (a snapshot entry for `file`) point to `blob`: a relative symlink
/// `../../blobs/<etag>` as `huggingface_hub` makes, or a copy where symlinks are unavailable.
pub(super) fn link_snapshot(blob: &Path, link: &Path, file: &str) -> Result<()> {
    if let Some(parent) = link.parent() {
        fs::create_dir_all(parent).map_err(io(parent))?;
    }
    if fs::symlink_metadata(link).is_ok() {
        // A dangling link (its blob was deleted) or a stale copy.
        fs::remove_file(link).map_err(io(link))?;
    }
    let depth = Path::new(file).components().count();
    let mut target = PathBuf::new();
    for _ in 0..depth + 1 {
        target.push("..");
    }
    target.push("blobs");
    if let Some(name) = blob.file_name() {
        target.push(name);
    }
    #[cfg(unix)]
    let linked = std::os::unix::fs::symlink(&target, link);
    #[cfg(windows)]
    let linked = std::os::windows::fs::symlink_file(&target, link);
    #[cfg(not(any(unix, windows)))]
    let linked: std::io::Result<()> = Err(std::io::ErrorKind::Unsupported.into());
    if linked.is_err() {
        fs::copy(blob, link).map_err(io(link))?;
    }
    Ok(())
}

/// Cheap checks that a cached file is whole: a `.safetensors` header must describe exactly the
/// file's length, a `.json` file must parse. A damaged file is a [`ModelError::CorruptCacheFile`]
/// naming the blob to delete.
pub(super) fn check_cached_file(link: &Path) -> Result<()> {
    let name = link
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let problem = if name.ends_with(".safetensors") {
        safetensors_problem(link)?
    } else if name.ends_with(".json") {
        let bytes = fs::read(link).map_err(io(link))?;
        serde_json::from_slice::<serde::de::IgnoredAny>(&bytes)
            .err()
            .map(|e| format!("not valid JSON: {e}"))
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(reason) => Err(ModelError::CorruptCacheFile {
            path: fs::canonicalize(link).unwrap_or_else(|_| link.to_path_buf()),
            link: link.to_path_buf(),
            reason,
        }),
    }
}

/// What is wrong with a safetensors file's framing, if anything: an 8-byte little-endian header
/// length, a JSON header whose largest `data_offsets` end is exactly the rest of the file.
fn safetensors_problem(path: &Path) -> Result<Option<String>> {
    let mut file = fs::File::open(path).map_err(io(path))?;
    let len = file.metadata().map_err(io(path))?.len();
    let mut prefix = [0_u8; 8];
    if len < 8 {
        return Ok(Some(format!(
            "{len} bytes, shorter than a safetensors header"
        )));
    }
    file.read_exact(&mut prefix).map_err(io(path))?;
    let header_len = u64::from_le_bytes(prefix);
    if header_len > 100_000_000 || 8 + header_len > len {
        return Ok(Some(format!(
            "the header claims {header_len} bytes but the file has {len}: truncated or not \
             safetensors"
        )));
    }
    let mut header = vec![0_u8; header_len as usize];
    file.read_exact(&mut header).map_err(io(path))?;
    let parsed: serde_json::Map<String, serde_json::Value> = match serde_json::from_slice(&header) {
        Ok(map) => map,
        Err(e) => {
            return Ok(Some(format!(
                "the safetensors header is not valid JSON: {e}"
            )));
        }
    };
    let data_end = parsed
        .iter()
        .filter(|(key, _)| key.as_str() != "__metadata__")
        .filter_map(|(_, v)| v.get("data_offsets")?.get(1)?.as_u64())
        .max()
        .unwrap_or(0);
    let expected = 8 + header_len + data_end;
    Ok((expected != len).then(|| {
        format!("the header describes {expected} bytes but the file has {len}: truncated")
    }))
}
