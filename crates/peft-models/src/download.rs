//! HTTP downloads that either deliver a complete, verified file or leave nothing usable behind.
//!
//! Used for Hub model files ([`crate::hub`]) and by `peft-train` for GLUE archives. A download
//! goes to a partial file next to its destination, is checked against the size the server
//! announced (and a SHA-256 when one is known), and only then renamed into place. A dropped or
//! stalled transfer is retried a bounded number of times, each retry resuming with an HTTP
//! `Range` request; connect and read timeouts keep a silent server from hanging the caller.
//! Each file gets one line on stderr when it starts and one when it is done (no terminal
//! progress bar, so headless logs show it too).

use std::fs;
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::error::{ModelError, Result};

/// Default [`NetOptions::connect_timeout`].
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default [`NetOptions::read_timeout`].
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Default [`NetOptions::retries`].
pub const DEFAULT_RETRIES: u32 = 5;
/// Environment variable overriding [`NetOptions::connect_timeout`] (seconds, e.g. `10` or `2.5`).
pub const CONNECT_TIMEOUT_ENV: &str = "BURN_PEFT_CONNECT_TIMEOUT";
/// Environment variable overriding [`NetOptions::read_timeout`] (seconds).
pub const READ_TIMEOUT_ENV: &str = "BURN_PEFT_READ_TIMEOUT";
/// Environment variable overriding [`NetOptions::retries`].
pub const RETRIES_ENV: &str = "BURN_PEFT_DOWNLOAD_RETRIES";

/// A progress line is printed at most this often while a file downloads.
const PROGRESS_EVERY: Duration = Duration::from_secs(15);
/// The longest pause between two attempts.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);

/// How downloads use the network. [`NetOptions::from_env`] reads the overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetOptions {
    /// Time allowed to resolve the host and open a connection (TCP and TLS). Default 30 s
    /// ([`DEFAULT_CONNECT_TIMEOUT`]; `BURN_PEFT_CONNECT_TIMEOUT`).
    pub connect_timeout: Duration,
    /// Longest silence allowed while waiting for an answer or for the next bytes of a body; a
    /// slow but steady transfer never times out. Default 60 s ([`DEFAULT_READ_TIMEOUT`];
    /// `BURN_PEFT_READ_TIMEOUT`).
    pub read_timeout: Duration,
    /// Further attempts after a failed one (refused, dropped or stalled), each resuming where
    /// the last stopped. Default 5 ([`DEFAULT_RETRIES`]; `BURN_PEFT_DOWNLOAD_RETRIES`).
    pub retries: u32,
    /// Pause before the first retry, doubled for each further one (at most 30 s). Default 1 s.
    pub retry_delay: Duration,
    /// Print one line on stderr when a file starts downloading, one when it is done, one per
    /// retry and one every 15 s in between. Default true.
    pub progress: bool,
}

impl Default for NetOptions {
    fn default() -> Self {
        Self {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            read_timeout: DEFAULT_READ_TIMEOUT,
            retries: DEFAULT_RETRIES,
            retry_delay: Duration::from_secs(1),
            progress: true,
        }
    }
}

impl NetOptions {
    /// The defaults, with `BURN_PEFT_CONNECT_TIMEOUT`, `BURN_PEFT_READ_TIMEOUT` (seconds) and
    /// `BURN_PEFT_DOWNLOAD_RETRIES` applied when set and non-empty.
    ///
    /// # Errors
    /// [`ModelError::InvalidEnvVar`] when one of them is not a positive number of seconds (or
    /// a whole number of retries).
    pub fn from_env() -> Result<Self> {
        let mut options = Self::default();
        if let Some(secs) = env_seconds(CONNECT_TIMEOUT_ENV)? {
            options.connect_timeout = secs;
        }
        if let Some(secs) = env_seconds(READ_TIMEOUT_ENV)? {
            options.read_timeout = secs;
        }
        if let Some(value) = env_value(RETRIES_ENV) {
            options.retries = value.parse().map_err(|_| ModelError::InvalidEnvVar {
                name: RETRIES_ENV,
                value,
                expected: "a whole number of retries, e.g. 5",
            })?;
        }
        Ok(options)
    }

    /// A `ureq` agent with these timeouts that returns every HTTP status as a response.
    /// `max_redirects` 0 returns redirects too.
    pub(crate) fn agent(&self, max_redirects: u32) -> ureq::Agent {
        ureq::Agent::config_builder()
            .timeout_resolve(Some(self.connect_timeout))
            .timeout_connect(Some(self.connect_timeout))
            .timeout_per_read(Some(self.read_timeout))
            .timeout_per_write(Some(self.read_timeout))
            .http_status_as_error(false)
            .max_redirects(max_redirects)
            .user_agent(concat!("burn-peft/", env!("CARGO_PKG_VERSION")))
            .build()
            .into()
    }
}

fn env_value(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

fn env_seconds(name: &'static str) -> Result<Option<Duration>> {
    let Some(value) = env_value(name) else {
        return Ok(None);
    };
    match value.parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs > 0.0 && secs < 1e9 => {
            Ok(Some(Duration::from_secs_f64(secs)))
        }
        _ => Err(ModelError::InvalidEnvVar {
            name,
            value,
            expected: "a positive number of seconds, e.g. 30 or 2.5",
        }),
    }
}

/// One file to download.
#[derive(Debug, Clone)]
pub struct Download<'a> {
    /// The URL to GET (redirects are followed).
    pub url: &'a str,
    /// The file name shown in progress lines, e.g. `model.safetensors`.
    pub label: &'a str,
    /// Where it comes from, shown after "from" (a repo id, a host).
    pub origin: &'a str,
    /// The size the server announced beforehand, if any; the response's own
    /// `Content-Length`/`Content-Range` is checked against it.
    pub expected_size: Option<u64>,
    /// The SHA-256 (lower-case hex) the file must have, if known.
    pub sha256: Option<&'a str>,
    /// `Authorization: Bearer` token sent with the request (not across redirects).
    pub token: Option<&'a str>,
    /// Keep the partial file after a network failure, so that a later call resumes it (the Hub
    /// cache's `.incomplete` files); otherwise it is deleted. It is always deleted when the
    /// download fails its size or SHA-256 check.
    pub keep_partial: bool,
}

/// Downloads `request` into `dest`: first into `partial` (resumed if it exists), verified,
/// then renamed to `dest`. Returns the size in bytes.
///
/// # Errors
/// [`ModelError::Network`] when the network fails after [`NetOptions::retries`] retries;
/// [`ModelError::HttpStatus`] for an unexpected status; [`ModelError::SizeMismatch`] /
/// [`ModelError::ChecksumMismatch`] when the data does not match what was announced;
/// [`ModelError::Io`] when the file cannot be written.
pub fn download_file(
    request: &Download<'_>,
    partial: &Path,
    dest: &Path,
    net: &NetOptions,
) -> Result<u64> {
    let result = fetch_verified(request, partial, net);
    let size = match result {
        Ok(size) => size,
        Err(err) => {
            let keep = request.keep_partial && matches!(err, ModelError::Network { .. });
            if !keep {
                let _ = fs::remove_file(partial);
            }
            return Err(err);
        }
    };
    fs::rename(partial, dest).map_err(|source| {
        let _ = fs::remove_file(partial);
        ModelError::Io {
            path: dest.to_path_buf(),
            source,
        }
    })?;
    Ok(size)
}

/// The attempts loop: resumes `partial` until it holds the whole body, then verifies it.
fn fetch_verified(request: &Download<'_>, partial: &Path, net: &NetOptions) -> Result<u64> {
    let io = |source| ModelError::Io {
        path: partial.to_path_buf(),
        source,
    };
    let mut file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(partial)
        .map_err(io)?;
    let mut have = file.metadata().map_err(io)?.len();
    if request.expected_size.is_some_and(|size| have > size) {
        // A stale partial file from another version of the file: start again.
        file.set_len(0).map_err(io)?;
        have = 0;
    }
    let agent = net.agent(10);
    let started = Instant::now();
    let mut total = request.expected_size;
    let mut announced = false;
    let mut attempts = 0_u32;
    let mut last_report = Instant::now();
    loop {
        if total.is_some_and(|size| have == size) {
            break;
        }
        attempts += 1;
        let outcome = attempt(
            &agent,
            request,
            partial,
            &mut file,
            &mut have,
            &mut total,
            net,
            &mut announced,
            &mut last_report,
        );
        match outcome {
            Ok(Attempt::Complete) => break,
            Ok(Attempt::Short) => {
                // The server closed the body early without an error; resume.
                let err = ureq::Error::from(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the server closed the connection before the end of the file",
                ));
                retry_or_give_up(request, net, attempts, have, total, err)?;
            }
            Err(AttemptError::Network(err)) => {
                retry_or_give_up(request, net, attempts, have, total, err)?
            }
            Err(AttemptError::Fatal(err)) => return Err(err),
        }
    }
    file.flush().map_err(io)?;
    file.sync_all().map_err(io)?;
    drop(file);
    if let Some(expected) = request.sha256 {
        let actual = sha256_file(partial)?;
        if !actual.eq_ignore_ascii_case(expected) {
            return Err(ModelError::ChecksumMismatch {
                url: request.url.to_string(),
                expected: expected.to_string(),
                actual,
            });
        }
    }
    if net.progress {
        eprintln!(
            "downloaded {} ({}) in {:.1} s",
            request.label,
            human_bytes(have),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(have)
}

/// Sleeps before the next attempt, or returns the [`ModelError::Network`] that ends them.
fn retry_or_give_up(
    request: &Download<'_>,
    net: &NetOptions,
    attempts: u32,
    have: u64,
    total: Option<u64>,
    err: ureq::Error,
) -> Result<()> {
    if attempts > net.retries {
        return Err(ModelError::Network {
            url: request.url.to_string(),
            attempts,
            received: have,
            source: err,
        });
    }
    let delay = net
        .retry_delay
        .saturating_mul(1 << (attempts - 1).min(16))
        .min(MAX_RETRY_DELAY);
    if net.progress {
        eprintln!(
            "{}: {err} after {} of {}; retrying in {:.1} s (attempt {} of {})",
            request.label,
            human_bytes(have),
            total.map(human_bytes).unwrap_or_else(|| "?".to_string()),
            delay.as_secs_f64(),
            attempts + 1,
            net.retries + 1
        );
    }
    std::thread::sleep(delay);
    Ok(())
}

enum Attempt {
    /// The whole body is in the file.
    Complete,
    /// The body ended early without a network error.
    Short,
}

enum AttemptError {
    /// Worth retrying.
    Network(ureq::Error),
    /// Not worth retrying.
    Fatal(ModelError),
}

impl From<ModelError> for AttemptError {
    fn from(e: ModelError) -> Self {
        AttemptError::Fatal(e)
    }
}

/// One request: `Range: bytes=<have>-` when part of the file is there.
#[allow(clippy::too_many_arguments)]
fn attempt(
    agent: &ureq::Agent,
    request: &Download<'_>,
    partial: &Path,
    file: &mut fs::File,
    have: &mut u64,
    total: &mut Option<u64>,
    net: &NetOptions,
    announced: &mut bool,
    last_report: &mut Instant,
) -> std::result::Result<Attempt, AttemptError> {
    let url = request.url;
    let mut builder = agent.get(url).header("Accept-Encoding", "identity");
    if *have > 0 {
        builder = builder.header("Range", &format!("bytes={have}-"));
    }
    if let Some(token) = request.token {
        builder = builder.header("Authorization", &format!("Bearer {token}"));
    }
    let response = builder.call().map_err(AttemptError::Network)?;
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let content_length: Option<u64> = header("content-length").and_then(|v| v.parse().ok());
    let size_mismatch = |expected, received| ModelError::SizeMismatch {
        url: url.to_string(),
        expected,
        received,
    };
    match status {
        206 => {
            let range = header("content-range").and_then(parse_content_range);
            let Some((start, complete)) = range else {
                return Err(ModelError::HttpStatus {
                    url: url.to_string(),
                    status,
                }
                .into());
            };
            if start != *have {
                // Not the range asked for: start over on the next attempt.
                truncate(file, have, partial)?;
                return Err(AttemptError::Network(ureq::Error::from(
                    std::io::Error::other("the server answered another range than asked for"),
                )));
            }
            if let Some(complete) = complete {
                match *total {
                    Some(expected) if expected != complete => {
                        return Err(size_mismatch(expected, complete).into());
                    }
                    _ => *total = Some(complete),
                }
            }
        }
        200..=299 => {
            // The whole file (the server ignored the range, or none was asked for).
            if *have > 0 {
                truncate(file, have, partial)?;
            }
            if let Some(length) = content_length.filter(|_| status == 200) {
                match *total {
                    Some(expected) if expected != length => {
                        return Err(size_mismatch(expected, length).into());
                    }
                    _ => *total = Some(length),
                }
            }
        }
        416 => {
            // Nothing left at this offset: the file is shorter than announced.
            let size = header("content-range")
                .and_then(|v| v.rsplit('/').next())
                .and_then(|v| v.parse().ok());
            return Err(size_mismatch(total.unwrap_or(0), size.unwrap_or(*have)).into());
        }
        429 | 500..=599 => {
            return Err(AttemptError::Network(ureq::Error::StatusCode(status)));
        }
        _ => {
            return Err(ModelError::HttpStatus {
                url: url.to_string(),
                status,
            }
            .into());
        }
    }
    if net.progress && !*announced {
        *announced = true;
        let size = total
            .map(human_bytes)
            .unwrap_or_else(|| "size unknown".into());
        let resume = if *have > 0 {
            format!(", resuming at {}", human_bytes(*have))
        } else {
            String::new()
        };
        eprintln!(
            "downloading {} ({size}{resume}) from {}",
            request.label, request.origin
        );
    }
    let mut reader = response.into_body().into_reader();
    let mut buf = vec![0_u8; 256 * 1024];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                file.flush().map_err(|source| io_error(partial, source))?;
                return Err(AttemptError::Network(ureq::Error::from(e)));
            }
        };
        file.write_all(&buf[..n])
            .map_err(|source| io_error(partial, source))?;
        *have += n as u64;
        if let Some(size) = *total
            && *have > size
        {
            return Err(size_mismatch(size, *have).into());
        }
        if net.progress && last_report.elapsed() >= PROGRESS_EVERY {
            *last_report = Instant::now();
            eprintln!(
                "  {}: {} of {}",
                request.label,
                human_bytes(*have),
                total.map(human_bytes).unwrap_or_else(|| "?".into())
            );
        }
    }
    match *total {
        Some(size) if *have < size => Ok(Attempt::Short),
        Some(_) => Ok(Attempt::Complete),
        None => {
            // No size known: a clean end of the body is the end of the file.
            *total = Some(*have);
            Ok(Attempt::Complete)
        }
    }
}

fn io_error(partial: &Path, source: std::io::Error) -> ModelError {
    ModelError::Io {
        path: partial.to_path_buf(),
        source,
    }
}

fn truncate(
    file: &mut fs::File,
    have: &mut u64,
    partial: &Path,
) -> std::result::Result<(), AttemptError> {
    file.set_len(0)
        .map_err(|source| io_error(partial, source))?;
    *have = 0;
    Ok(())
}

/// `bytes START-END/SIZE` → (START, Some(SIZE)); SIZE may be `*`.
fn parse_content_range(value: &str) -> Option<(u64, Option<u64>)> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (range, size) = rest.split_once('/')?;
    let (start, _end) = range.split_once('-')?;
    let size = match size.trim() {
        "*" => None,
        s => Some(s.parse().ok()?),
    };
    Some((start.trim().parse().ok()?, size))
}

/// The SHA-256 of a file, lower-case hex.
///
/// # Errors
/// [`ModelError::Io`] when it cannot be read.
pub fn sha256_file(path: &Path) -> Result<String> {
    let io = |source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = fs::File::open(path).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0_u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// `90868376` → `90.9 MB` (decimal units, as the Hub shows sizes).
pub fn human_bytes(n: u64) -> String {
    let x = n as f64;
    if x >= 1e9 {
        format!("{:.2} GB", x / 1e9)
    } else if x >= 1e6 {
        format!("{:.1} MB", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1} KB", x / 1e3)
    } else {
        format!("{n} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_parses() {
        assert_eq!(
            parse_content_range("bytes 10-99/100"),
            Some((10, Some(100)))
        );
        assert_eq!(parse_content_range("bytes 0-0/*"), Some((0, None)));
        assert_eq!(parse_content_range("items 0-0/1"), None);
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(90_868_376), "90.9 MB");
        assert_eq!(human_bytes(512), "512 B");
    }
}
