//! Finding a model: a local directory or a Hugging Face Hub repository.
//!
//! [`resolve_model_dir`] accepts either an existing directory (returned as is) or a Hub repo id
//! such as `sentence-transformers/all-MiniLM-L6-v2` (optionally `repo@revision`), whose files
//! are downloaded into the Hugging Face cache with the `hf-hub` crate. The usual environment
//! variables apply: `HF_ENDPOINT` (mirror URL), `HF_HOME` (cache at `$HF_HOME/hub`),
//! `HF_HUB_CACHE` (the cache folder itself), `HF_HUB_OFFLINE=1` (use only cached files) and the
//! token in `HF_TOKEN` or saved by `huggingface-cli login`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use hf_hub::api::sync::{ApiBuilder, ApiError, ApiRepo};
use hf_hub::{Cache, Repo, RepoType};

use crate::error::{ModelError, Result};

/// The weights file tried first; [`PYTORCH_WEIGHTS`] replaces it when the repo lacks it.
pub const SAFETENSORS_WEIGHTS: &str = "model.safetensors";
/// The fallback weights file.
pub const PYTORCH_WEIGHTS: &str = "pytorch_model.bin";

/// Where and how to reach the Hub. [`HubOptions::from_env`] reads the standard variables.
#[derive(Clone, PartialEq, Eq)]
pub struct HubOptions {
    /// Base URL, e.g. `https://huggingface.co` (no trailing slash).
    pub endpoint: String,
    /// The hub cache folder (`~/.cache/huggingface/hub` by default).
    pub cache_dir: PathBuf,
    /// Use only files already in the cache, never the network.
    pub offline: bool,
    /// Show download progress bars.
    pub progress: bool,
    /// Access token (`HF_TOKEN`); when `None`, the token file saved by `huggingface-cli login`
    /// next to the cache (`<cache_dir>/../token`) is used if present.
    pub token: Option<String>,
}

impl std::fmt::Debug for HubOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubOptions")
            .field("endpoint", &self.endpoint)
            .field("cache_dir", &self.cache_dir)
            .field("offline", &self.offline)
            .field("progress", &self.progress)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl HubOptions {
    /// Options from `HF_ENDPOINT`, `HF_HUB_CACHE`, `HF_HOME`, `XDG_CACHE_HOME`, `HOME`,
    /// `HF_HUB_OFFLINE` and `HF_TOKEN`, with the defaults of `huggingface_hub`. Progress bars are shown when
    /// stderr is a terminal.
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        let endpoint = std::env::var("HF_ENDPOINT")
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "https://huggingface.co".to_string());
        let cache_dir = if let Some(dir) = var("HF_HUB_CACHE") {
            PathBuf::from(dir)
        } else if let Some(home) = var("HF_HOME") {
            PathBuf::from(home).join("hub")
        } else if let Some(xdg) = var("XDG_CACHE_HOME") {
            PathBuf::from(xdg).join("huggingface").join("hub")
        } else if let Some(home) = std::env::home_dir() {
            home.join(".cache").join("huggingface").join("hub")
        } else {
            PathBuf::from(".cache").join("huggingface").join("hub")
        };
        let offline = std::env::var("HF_HUB_OFFLINE")
            .map(|v| matches!(v.trim(), "1" | "true" | "TRUE" | "True" | "yes" | "on"))
            .unwrap_or(false);
        Self {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            cache_dir,
            offline,
            progress: std::io::stderr().is_terminal(),
            token: std::env::var("HF_TOKEN")
                .ok()
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty()),
        }
    }
}

/// Returns a directory holding a model's files.
///
/// When `spec` is an existing directory it is returned unchanged (its files are not checked
/// here). Otherwise `spec` is a Hub repo id (`owner/name`, optionally `owner/name@revision`)
/// and each of `files` is fetched into the Hugging Face cache (files already cached are not
/// downloaded again); the snapshot directory holding them is returned. When `files` contains
/// [`SAFETENSORS_WEIGHTS`] and the repo has no such file, [`PYTORCH_WEIGHTS`] is fetched
/// instead. Options come from the environment ([`HubOptions::from_env`]).
///
/// # Errors
/// [`ModelError::Download`] when `spec` is neither a directory nor a valid repo id, when the
/// Hub cannot be reached (e.g. offline; the message explains how to pass a local directory with
/// `--model DIR`) or a file does not exist in the repo; [`ModelError::Io`] when the cache
/// cannot be written.
pub fn resolve_model_dir(spec: &str, files: &[&str]) -> Result<PathBuf> {
    resolve_model_dir_with(spec, files, &HubOptions::from_env())
}

/// [`resolve_model_dir`] with explicit options instead of the environment.
///
/// # Errors
/// As [`resolve_model_dir`].
pub fn resolve_model_dir_with(spec: &str, files: &[&str], options: &HubOptions) -> Result<PathBuf> {
    let as_path = Path::new(spec);
    if as_path.is_dir() {
        return Ok(as_path.to_path_buf());
    }
    let (repo_id, revision) = parse_repo_spec(spec)?;
    let repo = match revision {
        Some(rev) => Repo::with_revision(repo_id.to_string(), RepoType::Model, rev.to_string()),
        None => Repo::model(repo_id.to_string()),
    };
    if files.is_empty() {
        return Err(download_error(
            repo_id,
            "no file requested: name at least config.json".to_string(),
        ));
    }
    if options.offline {
        return resolve_from_cache(repo_id, repo, files, options);
    }
    std::fs::create_dir_all(&options.cache_dir).map_err(|source| ModelError::Io {
        path: options.cache_dir.clone(),
        source,
    })?;
    let mut builder = ApiBuilder::from_cache(Cache::new(options.cache_dir.clone()))
        .with_endpoint(options.endpoint.clone())
        .with_progress(options.progress);
    if let Some(token) = &options.token {
        builder = builder.with_token(Some(token.clone()));
    }
    let api = builder
        .build()
        .map_err(|e| download_error(repo_id, format!("cannot set up the Hub client: {e}")))?;
    let api_repo = api.repo(repo);

    let mut paths = Vec::with_capacity(files.len());
    for &file in files {
        let fetched = match fetch(&api_repo, file) {
            Ok(path) => (file, path),
            Err(err) if file == SAFETENSORS_WEIGHTS && is_not_found(&err) => {
                let path = fetch(&api_repo, PYTORCH_WEIGHTS).map_err(|e2| {
                    fetch_error(repo_id, PYTORCH_WEIGHTS, &e2, options).with_prefix(format!(
                        "the repo has neither {SAFETENSORS_WEIGHTS} ({err}) nor {PYTORCH_WEIGHTS}: "
                    ))
                })?;
                (PYTORCH_WEIGHTS, path)
            }
            Err(err) => return Err(fetch_error(repo_id, file, &err, options).into()),
        };
        paths.push(fetched);
    }
    same_snapshot(repo_id, &api_repo, &paths, options)
}

/// The snapshot folder of a cached `file` (which may have sub-folders, e.g. `1_Pooling/x`).
fn snapshot_dir(path: &Path, file: &str) -> Option<PathBuf> {
    let depth = Path::new(file).components().count();
    let mut dir = path;
    for _ in 0..depth {
        dir = dir.parent()?;
    }
    Some(dir.to_path_buf())
}

/// All files must sit in one snapshot folder; when the cache held an older snapshot for some,
/// download those again into the newest one.
fn same_snapshot(
    repo_id: &str,
    api_repo: &ApiRepo,
    paths: &[(&str, PathBuf)],
    options: &HubOptions,
) -> Result<PathBuf> {
    let Some(target) = paths.last().and_then(|(f, p)| snapshot_dir(p, f)) else {
        return Err(download_error(repo_id, "no file was fetched".to_string()));
    };
    for (file, path) in paths {
        if snapshot_dir(path, file).as_deref() != Some(target.as_path()) {
            let fresh = api_repo
                .download(file)
                .map_err(|e| fetch_error(repo_id, file, &e, options))?;
            if snapshot_dir(&fresh, file).as_deref() != Some(target.as_path()) {
                return Err(download_error(
                    repo_id,
                    format!(
                        "the repo changed while downloading ({file} is in {}, not in {}); \
                         try again",
                        fresh.display(),
                        target.display()
                    ),
                ));
            }
        }
    }
    Ok(target)
}

/// `HF_HUB_OFFLINE`: only the cache.
fn resolve_from_cache(
    repo_id: &str,
    repo: Repo,
    files: &[&str],
    options: &HubOptions,
) -> Result<PathBuf> {
    let cache = Cache::new(options.cache_dir.clone()).repo(repo);
    let mut target: Option<PathBuf> = None;
    for &file in files {
        let found = match cache.get(file) {
            Some(path) => Some((file, path)),
            None if file == SAFETENSORS_WEIGHTS => {
                cache.get(PYTORCH_WEIGHTS).map(|p| (PYTORCH_WEIGHTS, p))
            }
            None => None,
        };
        let Some((file, path)) = found else {
            return Err(download_error(
                repo_id,
                format!(
                    "HF_HUB_OFFLINE is set and {file} is not in the cache {}; unset it to \
                     download, or pass a local directory with `--model DIR`",
                    options.cache_dir.display()
                ),
            ));
        };
        match (&target, snapshot_dir(&path, file)) {
            (None, Some(p)) => target = Some(p),
            (Some(t), Some(p)) if *t == p => {}
            _ => {
                return Err(download_error(
                    repo_id,
                    format!(
                        "cached files of {repo_id} are from different snapshots; unset \
                         HF_HUB_OFFLINE to refresh them, or pass `--model DIR`"
                    ),
                ));
            }
        }
    }
    target.ok_or_else(|| download_error(repo_id, "no file requested".to_string()))
}

fn fetch(api_repo: &ApiRepo, file: &str) -> std::result::Result<PathBuf, ApiError> {
    api_repo.get(file)
}

/// Whether the Hub answered that the file does not exist (HTTP 404).
fn is_not_found(err: &ApiError) -> bool {
    match err {
        ApiError::RequestError(e) => matches!(**e, ureq::Error::StatusCode(404)),
        ApiError::TooManyRetries(inner) => is_not_found(inner),
        _ => false,
    }
}

/// A [`ModelError::Download`] under construction (so a prefix can be added).
struct FetchError {
    repo: String,
    message: String,
}

impl FetchError {
    fn with_prefix(self, prefix: String) -> ModelError {
        download_error(&self.repo, format!("{prefix}{}", self.message))
    }
}

impl From<FetchError> for ModelError {
    fn from(e: FetchError) -> Self {
        download_error(&e.repo, e.message)
    }
}

fn fetch_error(repo_id: &str, file: &str, err: &ApiError, options: &HubOptions) -> FetchError {
    let message = if is_not_found(err) {
        format!(
            "{file} does not exist in {repo_id} on {} (check the repo id and revision), or \
             pass a local directory with `--model DIR`",
            options.endpoint
        )
    } else if let ApiError::RequestError(_) = err {
        format!(
            "cannot fetch {file} from {}: {err}. If this machine is offline, download the \
             model files (config.json, {SAFETENSORS_WEIGHTS} or {PYTORCH_WEIGHTS}, \
             tokenizer.json) elsewhere and pass their directory with `--model DIR` (or set \
             HF_ENDPOINT to a reachable mirror)",
            options.endpoint
        )
    } else {
        format!(
            "cannot fetch {file} into the cache {}: {err}. Pass a local directory with \
             `--model DIR` instead",
            options.cache_dir.display()
        )
    };
    FetchError {
        repo: repo_id.to_string(),
        message,
    }
}

fn download_error(repo: &str, message: String) -> ModelError {
    ModelError::Download {
        repo: repo.to_string(),
        message,
    }
}

/// Splits `owner/name@rev` and checks the id looks like a Hub repo id.
fn parse_repo_spec(spec: &str) -> Result<(&str, Option<&str>)> {
    let (id, rev) = match spec.split_once('@') {
        Some((id, rev)) => (id, Some(rev)),
        None => (spec, None),
    };
    let valid_part = |p: &str| {
        !p.is_empty()
            && !p.starts_with(['.', '-'])
            && !p.ends_with('.')
            && !p.contains("..")
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    };
    let parts: Vec<&str> = id.split('/').collect();
    let id_ok = (1..=2).contains(&parts.len()) && parts.iter().all(|p| valid_part(p));
    let rev_ok = rev.is_none_or(|r| !r.is_empty() && !r.contains(char::is_whitespace));
    if id_ok && rev_ok {
        Ok((id, rev))
    } else {
        Err(download_error(
            spec,
            format!(
                "{spec:?} is not an existing directory and not a Hugging Face repo id \
                 (owner/name); pass a local model directory with `--model DIR`"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn options(endpoint: &str, cache: &Path) -> HubOptions {
        HubOptions {
            endpoint: endpoint.to_string(),
            cache_dir: cache.to_path_buf(),
            offline: false,
            progress: false,
            token: None,
        }
    }

    #[test]
    fn existing_directory_is_returned() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spec = dir.path().to_str().expect("utf-8 path");
        let got = resolve_model_dir(spec, &["config.json"]).expect("local dir");
        assert_eq!(got, dir.path());
    }

    #[test]
    fn unreachable_endpoint_is_a_download_error() {
        let cache = tempfile::tempdir().expect("tempdir");
        // Port 9 (discard): nothing listens on it here, the connection is refused at once.
        let opts = options("http://127.0.0.1:9", cache.path());
        let start = Instant::now();
        let err = resolve_model_dir_with(
            "no-such-owner/no-such-model",
            &["config.json", SAFETENSORS_WEIGHTS],
            &opts,
        )
        .expect_err("must fail offline");
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "took {:?}",
            start.elapsed()
        );
        match err {
            ModelError::Download { repo, message } => {
                assert_eq!(repo, "no-such-owner/no-such-model");
                assert!(message.contains("--model DIR"), "{message}");
                assert!(message.contains("config.json"), "{message}");
            }
            other => panic!("expected a Download error, got {other:?}"),
        }
    }

    #[test]
    fn offline_mode_uses_only_the_cache() {
        let cache = tempfile::tempdir().expect("tempdir");
        let mut opts = options("http://127.0.0.1:9", cache.path());
        opts.offline = true;
        let err = resolve_model_dir_with("owner/model", &["config.json"], &opts)
            .expect_err("empty cache");
        assert!(matches!(err, ModelError::Download { .. }), "{err:?}");

        // A cache laid out as huggingface_hub does: refs/main + snapshots/<commit>/<file>.
        let repo_dir = cache.path().join("models--owner--model");
        let snap = repo_dir.join("snapshots").join("abc123");
        std::fs::create_dir_all(&snap).expect("mkdir");
        std::fs::create_dir_all(repo_dir.join("refs")).expect("mkdir");
        std::fs::write(repo_dir.join("refs").join("main"), "abc123").expect("write");
        std::fs::write(snap.join("config.json"), "{}").expect("write");
        std::fs::write(snap.join(PYTORCH_WEIGHTS), "x").expect("write");
        let got =
            resolve_model_dir_with("owner/model", &["config.json", SAFETENSORS_WEIGHTS], &opts)
                .expect("cached");
        assert_eq!(got, snap);
    }

    /// A minimal Hub: `GET /{repo}/resolve/main/{file}` answers the files in `files` (with the
    /// headers `hf-hub` reads: etag, x-repo-commit, content-range) and 404 for any other.
    fn fake_hub(files: Vec<(&'static str, &'static [u8])>) -> String {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        // Detached: lives until the test process ends.
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut head = Vec::new();
                let mut byte = [0_u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match stream.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => break,
                    }
                }
                let head = String::from_utf8_lossy(&head).to_string();
                let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
                let probe = head.to_ascii_lowercase().contains("range: bytes=0-0");
                let found = files
                    .iter()
                    .find(|(name, _)| path.ends_with(&format!("/resolve/main/{name}")));
                let reply = match found {
                    None => {
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            .to_vec()
                    }
                    Some((name, body)) => {
                        let part: &[u8] = if probe { &body[..1] } else { body };
                        let mut r = format!(
                            "HTTP/1.1 206 Partial Content\r\netag: \"etag-{name}\"\r\n\
                             x-repo-commit: c0ffee\r\ncontent-range: bytes 0-{}/{}\r\n\
                             Content-Length: {}\r\nConnection: close\r\n\r\n",
                            part.len() - 1,
                            body.len(),
                            part.len()
                        )
                        .into_bytes();
                        r.extend_from_slice(part);
                        r
                    }
                };
                let _ = stream.write_all(&reply);
            }
        });
        format!("http://{addr}")
    }

    #[test]
    fn fake_hub_download_with_pytorch_fallback() {
        let endpoint = fake_hub(vec![
            ("config.json", b"{\"a\": 1}"),
            (PYTORCH_WEIGHTS, b"weights"),
            ("1_Pooling/config.json", b"{}"),
        ]);
        let cache = tempfile::tempdir().expect("tempdir");
        let opts = options(&endpoint, cache.path());
        let dir = resolve_model_dir_with(
            "owner/model",
            &["config.json", SAFETENSORS_WEIGHTS, "1_Pooling/config.json"],
            &opts,
        )
        .expect("download");
        assert!(
            dir.ends_with("models--owner--model/snapshots/c0ffee"),
            "{dir:?}"
        );
        assert_eq!(
            std::fs::read(dir.join("config.json")).expect("config"),
            b"{\"a\": 1}"
        );
        assert_eq!(
            std::fs::read(dir.join(PYTORCH_WEIGHTS)).expect("bin"),
            b"weights"
        );
        assert!(dir.join("1_Pooling/config.json").is_file());

        // A file the repo lacks (no fallback for it): a Download error naming it.
        let err = resolve_model_dir_with("owner/model", &["tokenizer.json"], &opts)
            .expect_err("missing file");
        match err {
            ModelError::Download { message, .. } => {
                assert!(
                    message.contains("tokenizer.json does not exist"),
                    "{message}"
                )
            }
            other => panic!("{other:?}"),
        }

        // Offline afterwards: served from the cache.
        let mut offline = opts.clone();
        offline.offline = true;
        offline.endpoint = "http://127.0.0.1:9".to_string();
        let again = resolve_model_dir_with(
            "owner/model",
            &["config.json", SAFETENSORS_WEIGHTS],
            &offline,
        )
        .expect("cached");
        assert_eq!(again, dir);
    }

    #[test]
    fn invalid_spec_is_rejected_with_hint() {
        for spec in ["./no/such/dir", "/abs/path/model", "a/b/c", "", "bad name"] {
            let err = parse_repo_spec(spec).expect_err(spec);
            match err {
                ModelError::Download { message, .. } => {
                    assert!(message.contains("--model DIR"), "{message}")
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(parse_repo_spec("gpt2").expect("id"), ("gpt2", None));
        assert_eq!(
            parse_repo_spec("sentence-transformers/all-MiniLM-L6-v2@main").expect("id"),
            ("sentence-transformers/all-MiniLM-L6-v2", Some("main"))
        );
    }
}
