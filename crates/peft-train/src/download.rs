//! Downloading a GLUE task's archive once into a cache folder.
//!
//! The transfer goes through [`peft_models::download`]: connect and read timeouts, bounded
//! retries that resume with HTTP `Range`, a check against the announced size, one progress line
//! at the start and one at the end. The archive is unpacked into a temporary folder renamed into
//! place, so an interrupted download leaves neither a half-written data set nor temporary files
//! (those of a killed process are removed by the next download).

use std::fs;
use std::path::{Path, PathBuf};

use peft_models::download::{Download, NetOptions, download_file};

use crate::data::{GlueTask, Split};
use crate::error::{Result, TrainError};

/// The default download cache: `$XDG_CACHE_HOME/burn-peft/glue`, else
/// `~/.cache/burn-peft/glue`; `None` when neither variable nor a home directory is known.
pub fn default_glue_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::home_dir().map(|h| h.join(".cache")))?;
    Some(base.join("burn-peft").join("glue"))
}

/// The download URL of `task`: the environment variable [`GlueTask::url_env_var`] when set and
/// non-empty, else [`GlueTask::default_url`].
pub fn glue_url(task: GlueTask) -> Option<String> {
    glue_url_from(task, std::env::var(task.url_env_var()).ok())
}

fn glue_url_from(task: GlueTask, env_value: Option<String>) -> Option<String> {
    env_value
        .filter(|v| !v.trim().is_empty())
        .map(|v| v.trim().to_string())
        .or_else(|| task.default_url().map(str::to_string))
}

/// Returns a directory holding `train.tsv` and the validation file of `task`, downloading and
/// unzipping GLUE's archive into `cache_dir` (default [`default_glue_cache_dir`]) the first
/// time. The URL is [`glue_url`] (environment override `BURN_PEFT_GLUE_<TASK>_URL`, e.g.
/// `BURN_PEFT_GLUE_SST2_URL`); timeouts and retries are [`NetOptions::from_env`]'s
/// (`BURN_PEFT_CONNECT_TIMEOUT`, `BURN_PEFT_READ_TIMEOUT`, `BURN_PEFT_DOWNLOAD_RETRIES`).
/// Files are written atomically: the archive goes to a temporary file and is unpacked into a
/// temporary folder renamed into place at the end, so an interrupted download leaves no
/// half-written data set and no temporary files.
///
/// # Errors
/// [`TrainError::Download`] when there is no URL or the archive lacks the files;
/// [`TrainError::DatasetDownload`] when the network fails after its retries (the message says
/// to pass `--data DIR`), the server answers an error status or the size does not match;
/// [`TrainError::DatasetArchive`] when the archive is corrupt; [`TrainError::Io`] when the
/// cache cannot be written; [`TrainError::Model`] for an invalid network setting.
pub fn download_glue(task: GlueTask, cache_dir: Option<&Path>) -> Result<PathBuf> {
    let url = glue_url(task).ok_or_else(|| TrainError::Download {
        url: format!("<no URL for {task}>"),
        message: format!(
            "GLUE publishes no archive for {task}; set {} to a zip holding {}/train.tsv and {}, \
             or pass `--data DIR` with a directory holding them",
            task.url_env_var(),
            task.dir_name(),
            task.file_name(Split::Validation)
        ),
    })?;
    let cache_dir = match cache_dir {
        Some(dir) => dir.to_path_buf(),
        None => default_glue_cache_dir().ok_or_else(|| TrainError::Download {
            url: url.clone(),
            message: "no cache directory (neither XDG_CACHE_HOME nor HOME is set); pass \
                      `--data DIR` with train.tsv and dev.tsv"
                .to_string(),
        })?,
    };
    download_glue_with(task, &url, &cache_dir, &NetOptions::from_env()?)
}

fn has_split_files(dir: &Path, task: GlueTask) -> bool {
    dir.join(task.file_name(Split::Train)).is_file()
        && dir.join(task.file_name(Split::Validation)).is_file()
}

/// Removes a temporary file or folder when dropped.
struct TempPath(PathBuf);

impl Drop for TempPath {
    fn drop(&mut self) {
        if self.0.is_dir() {
            let _ = fs::remove_dir_all(&self.0);
        } else {
            let _ = fs::remove_file(&self.0);
        }
    }
}

/// The temporary names of one download: `.<dir>.<pid>.zip.part`, `.<dir>.<pid>.zip`,
/// `.<dir>.<pid>.unpack`.
fn temp_name(task: GlueTask, pid: u32, suffix: &str) -> String {
    format!(".{}.{pid}.{suffix}", task.dir_name())
}

/// Removes the temporary files of downloads whose process is gone (killed, e.g. by Ctrl-C,
/// before it could clean up). Only where liveness can be told (`/proc`); elsewhere nothing.
fn remove_stale_temps(task: GlueTask, cache_dir: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = fs::read_dir(cache_dir) else {
        return;
    };
    let prefix = format!(".{}.", task.dir_name());
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(&prefix) else {
            continue;
        };
        let Some((pid, suffix)) = rest.split_once('.') else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        let ours = matches!(suffix, "zip.part" | "zip" | "unpack");
        if ours && pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            drop(TempPath(entry.path()));
        }
    }
}

/// [`download_glue`] from `url` into `cache_dir` with explicit network options.
///
/// # Errors
/// As [`download_glue`].
pub fn download_glue_with(
    task: GlueTask,
    url: &str,
    cache_dir: &Path,
    net: &NetOptions,
) -> Result<PathBuf> {
    let target = cache_dir.join(task.dir_name());
    if has_split_files(&target, task) {
        return Ok(target);
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TrainError::Io { path, source }
    };
    fs::create_dir_all(cache_dir).map_err(io(cache_dir))?;
    remove_stale_temps(task, cache_dir);
    let pid = std::process::id();

    // 1. The archive, into a temporary file (`.part` while it downloads).
    let part = TempPath(cache_dir.join(temp_name(task, pid, "zip.part")));
    let zip_path = TempPath(cache_dir.join(temp_name(task, pid, "zip")));
    let without_query = url.split(['?', '#']).next().unwrap_or(url);
    let label = without_query.rsplit('/').next().unwrap_or(url);
    let origin = without_query
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or(url);
    let request = Download {
        url,
        label,
        origin,
        expected_size: None,
        sha256: None,
        token: None,
        keep_partial: false,
    };
    download_file(&request, &part.0, &zip_path.0, net).map_err(|source| match source {
        peft_models::ModelError::Io { path, source } => TrainError::Io { path, source },
        source => TrainError::DatasetDownload {
            url: url.to_string(),
            env_var: task.url_env_var(),
            source: Box::new(source),
        },
    })?;

    // 2. Unpacked into a temporary folder.
    let unpack = TempPath(cache_dir.join(temp_name(task, pid, "unpack")));
    let archive_error = |source| TrainError::DatasetArchive {
        url: url.to_string(),
        source,
    };
    let archive_file = fs::File::open(&zip_path.0).map_err(io(&zip_path.0))?;
    let mut archive = zip::ZipArchive::new(archive_file).map_err(archive_error)?;
    archive.extract(&unpack.0).map_err(archive_error)?;
    let root = [unpack.0.join(task.dir_name()), unpack.0.clone()]
        .into_iter()
        .find(|d| has_split_files(d, task))
        .ok_or_else(|| TrainError::Download {
            url: url.to_string(),
            message: format!(
                "the archive holds no {}/{} and {}; point {} at GLUE's archive or pass \
                 `--data DIR`",
                task.dir_name(),
                task.file_name(Split::Train),
                task.file_name(Split::Validation),
                task.url_env_var()
            ),
        })?;

    // 3. Into place in one rename (another process may have won the race).
    if let Err(e) = fs::rename(&root, &target) {
        if has_split_files(&target, task) {
            return Ok(target);
        }
        return Err(TrainError::Io {
            path: target,
            source: e,
        });
    }
    Ok(target)
}

#[cfg(test)]
mod tests;
