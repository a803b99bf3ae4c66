//! Finding a model: a local directory or a Hugging Face Hub repository.
//!
//! [`resolve_model_dir`] accepts either an existing directory (returned as is) or a Hub repo id
//! such as `sentence-transformers/all-MiniLM-L6-v2` (optionally `repo@revision`), whose files
//! are downloaded into the Hugging Face cache, laid out as Python's `huggingface_hub` lays it
//! out (so both share one cache). The usual environment variables apply: `HF_ENDPOINT` (mirror
//! URL), `HF_HOME` (cache at `$HF_HOME/hub`), `HF_HUB_CACHE` (the cache folder itself),
//! `HF_HUB_OFFLINE=1` (use only cached files) and the token in `HF_TOKEN` or saved by
//! `huggingface-cli login` (`$HF_HOME/token`), sent as `Authorization: Bearer` to the endpoint
//! only. Network settings (timeouts, retries) come from [`NetOptions`].
//!
//! A file enters the cache only whole: it is downloaded to `blobs/<etag>.incomplete` (resumed
//! by a later run after a network failure), checked against the size the Hub announced and,
//! for large (LFS) files, the SHA-256 it announced, then renamed. Files found in the cache get
//! cheap checks (a safetensors header must match the file's length, JSON must parse); a damaged
//! one is a [`ModelError::CorruptCacheFile`] naming the file to delete.

mod cache;

use std::path::{Path, PathBuf};

use crate::download::{Download, NetOptions, download_file};
use crate::error::{ModelError, Result};
use cache::{RepoCache, check_cached_file, is_safe_name, link_snapshot};

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
    /// Access token (`HF_TOKEN`); when `None`, the token file saved by `huggingface-cli login`
    /// next to the cache (`<cache_dir>/../token`) is used if present.
    pub token: Option<String>,
    /// Timeouts, retries and progress lines ([`NetOptions::from_env`]).
    pub net: NetOptions,
}

impl std::fmt::Debug for HubOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubOptions")
            .field("endpoint", &self.endpoint)
            .field("cache_dir", &self.cache_dir)
            .field("offline", &self.offline)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("net", &self.net)
            .finish()
    }
}

impl HubOptions {
    /// Options from `HF_ENDPOINT`, `HF_HUB_CACHE`, `HF_HOME`, `XDG_CACHE_HOME`, `HOME`,
    /// `HF_HUB_OFFLINE` and `HF_TOKEN`, with the defaults of `huggingface_hub`, and the network
    /// settings of [`NetOptions::from_env`] (progress lines off when
    /// `HF_HUB_DISABLE_PROGRESS_BARS=1`).
    ///
    /// # Errors
    /// [`ModelError::InvalidEnvVar`] as [`NetOptions::from_env`].
    pub fn from_env() -> Result<Self> {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        let truthy = |name: &str| {
            std::env::var(name)
                .map(|v| matches!(v.trim(), "1" | "true" | "TRUE" | "True" | "yes" | "on"))
                .unwrap_or(false)
        };
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
        let mut net = NetOptions::from_env()?;
        if truthy("HF_HUB_DISABLE_PROGRESS_BARS") {
            net.progress = false;
        }
        Ok(Self {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            cache_dir,
            offline: truthy("HF_HUB_OFFLINE"),
            token: std::env::var("HF_TOKEN")
                .ok()
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty()),
            net,
        })
    }

    /// [`HubOptions::token`], else the token file saved by `huggingface-cli login`.
    fn effective_token(&self) -> Option<String> {
        self.token.clone().or_else(|| {
            let path = self.cache_dir.parent()?.join("token");
            let text = std::fs::read_to_string(path).ok()?;
            Some(text.trim().to_string()).filter(|t| !t.is_empty())
        })
    }
}

/// Returns a directory holding a model's files.
///
/// When `spec` is an existing directory it is returned unchanged (its files are not checked
/// here). Otherwise `spec` is a Hub repo id (`owner/name`, optionally `owner/name@revision`)
/// and each of `files` is fetched into the Hugging Face cache (when all of them are cached
/// already, the network is not used); the snapshot directory holding them is returned. When
/// `files` contains [`SAFETENSORS_WEIGHTS`] and the repo has no such file, [`PYTORCH_WEIGHTS`]
/// is fetched instead. Options come from the environment ([`HubOptions::from_env`]).
///
/// # Errors
/// [`ModelError::Download`] when `spec` is neither a directory nor a valid repo id, or a file
/// does not exist in the repo; [`ModelError::HubAccess`] when the Hub refuses the repo (it
/// may not exist, or be gated or private and need `HF_TOKEN`); [`ModelError::HubUnreachable`]
/// when the network fails (after retries); [`ModelError::SizeMismatch`] /
/// [`ModelError::ChecksumMismatch`] when a download does not match what the Hub announced;
/// [`ModelError::CorruptCacheFile`] when a cached file is damaged; [`ModelError::Io`] when the
/// cache cannot be written; [`ModelError::InvalidEnvVar`] for a bad network setting.
pub fn resolve_model_dir(spec: &str, files: &[&str]) -> Result<PathBuf> {
    if Path::new(spec).is_dir() {
        return Ok(PathBuf::from(spec));
    }
    resolve_model_dir_with(spec, files, &HubOptions::from_env()?)
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
    let revision = revision.unwrap_or("main");
    if files.is_empty() {
        return Err(download_error(
            repo_id,
            "no file requested: name at least config.json".to_string(),
        ));
    }
    if let Some(bad) = files.iter().find(|f| !is_relative_file(f)) {
        return Err(download_error(
            repo_id,
            format!("{bad:?} is not a file path inside a repo"),
        ));
    }
    let cache = RepoCache::new(&options.cache_dir, repo_id);
    if let Some(dir) = cached_snapshot(&cache, revision, files)? {
        return Ok(dir);
    }
    if options.offline {
        return Err(download_error(
            repo_id,
            format!(
                "HF_HUB_OFFLINE is set and the cache {} lacks files of it ({}); unset it to \
                 download, or pass a local directory with `--model DIR`",
                options.cache_dir.display(),
                files.join(", ")
            ),
        ));
    }
    let hub = Hub {
        repo_id,
        revision,
        options,
        token: options.effective_token(),
        cache,
    };
    hub.fetch_all(files)
}

/// The snapshot folder holding all of `files` (with the [`PYTORCH_WEIGHTS`] fallback) when the
/// cache has them for `revision`, after checking each is whole.
fn cached_snapshot(cache: &RepoCache, revision: &str, files: &[&str]) -> Result<Option<PathBuf>> {
    let Some(commit) = cache.commit_for(revision) else {
        return Ok(None);
    };
    let dir = cache.snapshot(&commit);
    let mut found = Vec::with_capacity(files.len());
    for &file in files {
        let path = dir.join(file);
        if path.is_file() {
            found.push(path);
        } else if file == SAFETENSORS_WEIGHTS && dir.join(PYTORCH_WEIGHTS).is_file() {
            found.push(dir.join(PYTORCH_WEIGHTS));
        } else {
            return Ok(None);
        }
    }
    for path in &found {
        check_cached_file(path)?;
    }
    Ok(Some(dir))
}

/// What a `HEAD` of `/{repo}/resolve/{revision}/{file}` tells.
struct FileMeta {
    /// The repo commit (`X-Repo-Commit`): the snapshot folder.
    commit: String,
    /// The blob name (`X-Linked-Etag` or `ETag`, unquoted).
    etag: String,
    /// `X-Linked-Size` or `Content-Length`.
    size: Option<u64>,
    /// The SHA-256 of an LFS file (`X-Linked-Etag`).
    sha256: Option<String>,
    /// Where to GET the file (the redirect target of an LFS file).
    url: String,
}

/// One resolution against the Hub.
struct Hub<'a> {
    repo_id: &'a str,
    revision: &'a str,
    options: &'a HubOptions,
    token: Option<String>,
    cache: RepoCache,
}

impl Hub<'_> {
    fn fetch_all(&self, files: &[&str]) -> Result<PathBuf> {
        let mut commit: Option<String> = None;
        let mut fetched = Vec::with_capacity(files.len());
        for &file in files {
            let (file, meta) = match self.head(file)? {
                Some(meta) => (file, meta),
                None if file == SAFETENSORS_WEIGHTS => match self.head(PYTORCH_WEIGHTS)? {
                    Some(meta) => (PYTORCH_WEIGHTS, meta),
                    None => {
                        return Err(self.not_found(&format!(
                            "neither {SAFETENSORS_WEIGHTS} nor {PYTORCH_WEIGHTS}"
                        )));
                    }
                },
                None => return Err(self.not_found(file)),
            };
            match &commit {
                None => commit = Some(meta.commit.clone()),
                Some(c) if *c != meta.commit => {
                    return Err(download_error(
                        self.repo_id,
                        format!(
                            "the repo changed while downloading ({file} is at commit {}, the \
                             files before it at {c}); try again",
                            meta.commit
                        ),
                    ));
                }
                Some(_) => {}
            }
            let link = self.fetch_file(file, &meta)?;
            fetched.push(link);
        }
        let Some(commit) = commit else {
            return Err(download_error(self.repo_id, "no file requested".into()));
        };
        for link in &fetched {
            check_cached_file(link)?;
        }
        self.cache.write_ref(self.revision, &commit)?;
        Ok(self.cache.snapshot(&commit))
    }

    fn not_found(&self, what: &str) -> ModelError {
        download_error(
            self.repo_id,
            format!(
                "{what} does not exist in {} at revision {} on {} (check the repo id and \
                 revision), or pass a local directory with `--model DIR`",
                self.repo_id, self.revision, self.options.endpoint
            ),
        )
    }

    /// Downloads `file` into its blob (unless the cache has it) and links it into the snapshot.
    fn fetch_file(&self, file: &str, meta: &FileMeta) -> Result<PathBuf> {
        let link = self.cache.snapshot(&meta.commit).join(file);
        if link.is_file() {
            return Ok(link);
        }
        let blob = self.cache.blob(&meta.etag);
        let blob_ok = |blob: &Path| {
            std::fs::metadata(blob)
                .is_ok_and(|m| m.is_file() && meta.size.is_none_or(|s| s == m.len()))
        };
        if !blob_ok(&blob) {
            let blobs = blob.parent().unwrap_or(Path::new("."));
            std::fs::create_dir_all(blobs).map_err(|source| ModelError::Io {
                path: blobs.to_path_buf(),
                source,
            })?;
            let _lock = self.cache.lock(&meta.etag, self.options.net.progress)?;
            if !blob_ok(&blob) {
                let partial = blob.with_file_name(format!("{}.incomplete", meta.etag));
                let request = Download {
                    url: &meta.url,
                    label: file,
                    origin: self.repo_id,
                    expected_size: meta.size,
                    sha256: meta.sha256.as_deref(),
                    token: self.token_for(&meta.url),
                    keep_partial: true,
                };
                download_file(&request, &partial, &blob, &self.options.net)
                    .map_err(|e| self.unreachable(file, e))?;
            }
        }
        link_snapshot(&blob, &link, file)?;
        Ok(link)
    }

    /// A network failure gets the way around it; other errors stay as they are.
    fn unreachable(&self, file: &str, err: ModelError) -> ModelError {
        match err {
            ModelError::Network { .. } => ModelError::HubUnreachable {
                repo: self.repo_id.to_string(),
                file: file.to_string(),
                source: Box::new(err),
            },
            other => other,
        }
    }

    /// The token, for URLs on the endpoint only (never for a CDN an LFS file redirects to).
    fn token_for(&self, url: &str) -> Option<&str> {
        let endpoint = self.options.endpoint.as_str();
        let same = url
            .strip_prefix(endpoint)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
        self.token.as_deref().filter(|_| same)
    }

    /// `HEAD` of the file's resolve URL, following relative redirects (renamed repos) and
    /// stopping at an absolute one (an LFS file's storage). `None`: the file does not exist.
    fn head(&self, file: &str) -> Result<Option<FileMeta>> {
        let net = &self.options.net;
        let agent = net.agent(0);
        let first = format!(
            "{}/{}/resolve/{}/{}",
            self.options.endpoint,
            self.repo_id,
            self.revision.replace('/', "%2F"),
            file
        );
        let mut url = first.clone();
        let mut attempts = 0_u32;
        let mut redirects = 0_u32;
        loop {
            attempts += 1;
            let mut request = agent.head(&url).header("Accept-Encoding", "identity");
            if let Some(token) = self.token_for(&url) {
                request = request.header("Authorization", &format!("Bearer {token}"));
            }
            let response = match request.call() {
                Ok(r) if r.status().is_server_error() && attempts <= net.retries => {
                    std::thread::sleep(net.retry_delay);
                    continue;
                }
                Ok(r) => r,
                Err(e) if attempts <= net.retries => {
                    if net.progress {
                        eprintln!(
                            "{file}: {e} asking {url}; retrying (attempt {} of {})",
                            attempts + 1,
                            net.retries + 1
                        );
                    }
                    std::thread::sleep(net.retry_delay);
                    continue;
                }
                Err(source) => {
                    let err = ModelError::Network {
                        url,
                        attempts,
                        received: 0,
                        source,
                    };
                    return Err(self.unreachable(file, err));
                }
            };
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(|v| v.trim().to_string())
                    .filter(|v| !v.is_empty())
            };
            let status = response.status().as_u16();
            let location = header("location");
            match status {
                200..=299 => {}
                300..=399 if location.as_deref().is_some_and(|l| l.starts_with('/')) => {
                    redirects += 1;
                    if redirects > 5 {
                        return Err(ModelError::HttpStatus { url, status });
                    }
                    url = format!("{}{}", origin_of(&url), location.unwrap_or_default());
                    attempts = 0;
                    continue;
                }
                300..=399 if location.is_some() => {}
                401 | 403 => return Err(self.access(url, status, header("x-error-code"))),
                404 => {
                    let code = header("x-error-code");
                    return match code.as_deref() {
                        Some("RepoNotFound" | "RevisionNotFound" | "GatedRepo") => {
                            Err(self.access(url, status, code))
                        }
                        _ => Ok(None),
                    };
                }
                _ => return Err(ModelError::HttpStatus { url, status }),
            }
            let linked_etag = header("x-linked-etag").map(|e| unquote_etag(&e));
            let etag = linked_etag
                .clone()
                .or_else(|| header("etag").map(|e| unquote_etag(&e)));
            let commit = header("x-repo-commit");
            let (Some(etag), Some(commit)) = (etag, commit) else {
                return Err(download_error(
                    self.repo_id,
                    format!(
                        "{url} answered without the ETag and X-Repo-Commit headers of a \
                         Hugging Face Hub; check HF_ENDPOINT ({}) or pass `--model DIR`",
                        self.options.endpoint
                    ),
                ));
            };
            if !is_safe_name(&etag) || !is_safe_name(&commit) {
                return Err(download_error(
                    self.repo_id,
                    format!("{url} answered an unusable ETag {etag:?} or commit {commit:?}"),
                ));
            }
            let size = header("x-linked-size")
                .or_else(|| header("content-length").filter(|_| location.is_none()))
                .and_then(|v| v.parse().ok());
            let sha256 = linked_etag
                .filter(|e| e.len() == 64 && e.chars().all(|c| c.is_ascii_hexdigit()))
                .map(|e| e.to_ascii_lowercase());
            return Ok(Some(FileMeta {
                commit,
                etag,
                size,
                sha256,
                url: location.unwrap_or(url),
            }));
        }
    }

    fn access(&self, url: String, status: u16, error_code: Option<String>) -> ModelError {
        ModelError::HubAccess {
            repo: self.repo_id.to_string(),
            token_sent: self.token_for(&url).is_some(),
            url,
            status,
            error_code,
        }
    }
}

/// `"abc"`, `W/"abc"` → `abc`.
fn unquote_etag(etag: &str) -> String {
    etag.trim()
        .trim_start_matches("W/")
        .trim_matches('"')
        .to_string()
}

/// `http://host:port/a/b` → `http://host:port`.
fn origin_of(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(i) => &url[..after_scheme + i],
        None => url,
    }
}

/// A relative path without `..` (sub-folders allowed: `1_Pooling/config.json`).
fn is_relative_file(file: &str) -> bool {
    !file.is_empty()
        && !file.contains('\\')
        && Path::new(file)
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
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
    let rev_ok = rev.is_none_or(|r| {
        !r.contains(char::is_whitespace)
            && r.split('/')
                .all(|p| !p.is_empty() && p != "." && p != ".." && !p.contains('\\'))
    });
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
mod tests;
