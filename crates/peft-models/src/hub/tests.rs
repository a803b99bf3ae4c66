use super::*;
use crate::test_server::{Route, TestServer};
use std::time::{Duration, Instant};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

fn options(endpoint: &str, cache: &Path) -> HubOptions {
    HubOptions {
        endpoint: endpoint.to_string(),
        cache_dir: cache.to_path_buf(),
        offline: false,
        token: None,
        net: NetOptions {
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_millis(500),
            retries: 2,
            retry_delay: Duration::ZERO,
            progress: false,
        },
    }
}

/// A minimal, valid safetensors file: one F32 tensor of `n` values.
fn safetensors(n: usize) -> Vec<u8> {
    let mut header = format!(
        "{{\"w\":{{\"dtype\":\"F32\",\"shape\":[{n}],\"data_offsets\":[0,{}]}}}}",
        4 * n
    );
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    for i in 0..n {
        bytes.extend_from_slice(&(i as f32).to_le_bytes());
    }
    bytes
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A Hub file route as the Hub answers for a small (non-LFS) file.
fn hub_file(repo: &str, file: &str, body: &[u8]) -> Route {
    Route::file(&format!("/{repo}/resolve/main/{file}"), body)
        .header("ETag", &format!("\"{}\"", sha256_hex(body)))
        .header("X-Repo-Commit", COMMIT)
}

/// An LFS file: the resolve URL answers 302 with `X-Linked-*`, the body lives at `/_lfs/...`.
fn hub_lfs(
    server_base: &str,
    repo: &str,
    file: &str,
    size: u64,
    sha: &str,
    body: &[u8],
) -> [Route; 2] {
    let lfs_path = format!("/_lfs/{repo}/{file}");
    [
        Route::status(&format!("/{repo}/resolve/main/{file}"), 302)
            .header("Location", &format!("{server_base}{lfs_path}"))
            .header("X-Linked-Etag", &format!("\"{sha}\""))
            .header("X-Linked-Size", &size.to_string())
            .header("X-Repo-Commit", COMMIT),
        Route::file(&lfs_path, body),
    ]
}

/// A hub with `config.json` and an LFS `file` announced `size_delta` bytes off its real size
/// and with `sha` (default: the right one).
fn lfs_server(
    repo: &str,
    file: &str,
    size_delta: i64,
    sha: Option<&str>,
    body: &[u8],
) -> TestServer {
    TestServer::start_with(|base| {
        let size = (body.len() as i64 + size_delta) as u64;
        let sha = sha.map(str::to_string).unwrap_or_else(|| sha256_hex(body));
        let mut routes = vec![hub_file(repo, "config.json", br#"{"a": 1}"#)];
        routes.extend(hub_lfs(base, repo, file, size, &sha, body));
        routes
    })
}

#[test]
fn existing_directory_is_returned() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = dir.path().to_str().expect("utf-8 path");
    let got = resolve_model_dir(spec, &["config.json"]).expect("local dir");
    assert_eq!(got, dir.path());
}

#[test]
fn unreachable_endpoint_is_a_network_error_with_hint() {
    let cache = tempfile::tempdir().expect("tempdir");
    // Port 9 (discard): nothing listens on it here, the connection is refused at once.
    let opts = options("http://127.0.0.1:9", cache.path());
    let err = resolve_model_dir_with(
        "no-such-owner/no-such-model",
        &["config.json", SAFETENSORS_WEIGHTS],
        &opts,
    )
    .expect_err("must fail offline");
    let message = err.to_string();
    match &err {
        ModelError::HubUnreachable { repo, file, source } => {
            assert_eq!(repo, "no-such-owner/no-such-model");
            assert_eq!(file, "config.json");
            assert!(
                matches!(**source, ModelError::Network { attempts: 3, .. }),
                "{source:?}"
            );
        }
        other => panic!("expected HubUnreachable, got {other:?}"),
    }
    assert!(message.contains("--model DIR"), "{message}");
    assert!(message.contains("the network failed"), "{message}");
}

#[test]
fn offline_mode_uses_only_the_cache() {
    let cache = tempfile::tempdir().expect("tempdir");
    let mut opts = options("http://127.0.0.1:9", cache.path());
    opts.offline = true;
    let err =
        resolve_model_dir_with("owner/model", &["config.json"], &opts).expect_err("empty cache");
    assert!(matches!(err, ModelError::Download { .. }), "{err:?}");

    // A cache laid out as huggingface_hub does: refs/main + snapshots/<commit>/<file>.
    let repo_dir = cache.path().join("models--owner--model");
    let snap = repo_dir.join("snapshots").join("abc123");
    std::fs::create_dir_all(&snap).expect("mkdir");
    std::fs::create_dir_all(repo_dir.join("refs")).expect("mkdir");
    std::fs::write(repo_dir.join("refs").join("main"), "abc123").expect("write");
    std::fs::write(snap.join("config.json"), "{}").expect("write");
    std::fs::write(snap.join(PYTORCH_WEIGHTS), "x").expect("write");
    let got = resolve_model_dir_with("owner/model", &["config.json", SAFETENSORS_WEIGHTS], &opts)
        .expect("cached");
    assert_eq!(got, snap);
}

#[test]
fn download_with_pytorch_fallback_and_python_cache_layout() {
    let config = br#"{"a": 1}"#;
    let server = TestServer::start(vec![
        hub_file("owner/model", "config.json", config),
        hub_file("owner/model", PYTORCH_WEIGHTS, b"weights"),
        hub_file("owner/model", "1_Pooling/config.json", b"{}"),
        Route::status("/owner/model/resolve/main/model.safetensors", 404)
            .header("X-Error-Code", "EntryNotFound"),
    ]);
    let cache = tempfile::tempdir().expect("tempdir");
    let opts = options(server.base(), cache.path());
    let dir = resolve_model_dir_with(
        "owner/model",
        &["config.json", SAFETENSORS_WEIGHTS, "1_Pooling/config.json"],
        &opts,
    )
    .expect("download");
    let repo_dir = cache.path().join("models--owner--model");
    assert_eq!(dir, repo_dir.join("snapshots").join(COMMIT));
    assert_eq!(
        std::fs::read(dir.join("config.json")).expect("config"),
        config
    );
    assert_eq!(
        std::fs::read(dir.join(PYTORCH_WEIGHTS)).expect("bin"),
        b"weights"
    );
    assert!(dir.join("1_Pooling/config.json").is_file());
    // huggingface_hub's layout: blobs named by etag, relative links, refs/main.
    let blob = repo_dir.join("blobs").join(sha256_hex(config));
    assert_eq!(std::fs::read(&blob).expect("blob"), config);
    #[cfg(unix)]
    assert_eq!(
        std::fs::read_link(dir.join("config.json")).expect("link"),
        Path::new("../../blobs").join(sha256_hex(config))
    );
    #[cfg(unix)]
    assert_eq!(
        std::fs::read_link(dir.join("1_Pooling/config.json")).expect("link"),
        Path::new("../../../blobs").join(sha256_hex(b"{}"))
    );
    assert_eq!(
        std::fs::read_to_string(repo_dir.join("refs").join("main")).expect("ref"),
        COMMIT
    );

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
fn dropped_connection_is_resumed_with_range() {
    let weights = safetensors(5000);
    let server = TestServer::start(vec![
        hub_file("owner/model", "config.json", b"{}"),
        // The first two GETs stop after 7000 bytes each.
        hub_file("owner/model", SAFETENSORS_WEIGHTS, &weights).cut(7000, 2),
    ]);
    let cache = tempfile::tempdir().expect("tempdir");
    let opts = options(server.base(), cache.path());
    let dir = resolve_model_dir_with("owner/model", &["config.json", SAFETENSORS_WEIGHTS], &opts)
        .expect("resumed download");
    assert_eq!(
        std::fs::read(dir.join(SAFETENSORS_WEIGHTS)).expect("read"),
        weights
    );
    let gets: Vec<String> = server
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("GET") && r.contains(SAFETENSORS_WEIGHTS))
        .collect();
    assert_eq!(gets.len(), 3, "{gets:?}");
    assert!(gets[1].ends_with("Range: bytes=7000-"), "{gets:?}");
    assert!(gets[2].ends_with("Range: bytes=14000-"), "{gets:?}");
}

#[test]
fn truncated_download_never_enters_the_cache() {
    let weights = safetensors(10_000);
    let server = TestServer::start(vec![
        hub_file("owner/model", "config.json", b"{}"),
        hub_file("owner/model", SAFETENSORS_WEIGHTS, &weights).cut(7000, usize::MAX),
    ]);
    let cache = tempfile::tempdir().expect("tempdir");
    let opts = options(server.base(), cache.path());
    let files = ["config.json", SAFETENSORS_WEIGHTS];
    let err = resolve_model_dir_with("owner/model", &files, &opts).expect_err("always cut");
    match &err {
        ModelError::HubUnreachable { file, source, .. } => {
            assert_eq!(file, SAFETENSORS_WEIGHTS);
            match &**source {
                ModelError::Network {
                    attempts, received, ..
                } => {
                    assert_eq!(*attempts, 3);
                    assert_eq!(*received, 21_000);
                }
                other => panic!("{other:?}"),
            }
        }
        other => panic!("expected HubUnreachable, got {other:?}"),
    }
    assert!(err.to_string().contains("the network failed"), "{err}");
    let repo_dir = cache.path().join("models--owner--model");
    let blob = repo_dir.join("blobs").join(sha256_hex(&weights));
    assert!(!blob.exists(), "a truncated blob was accepted");
    assert!(
        !repo_dir
            .join("snapshots")
            .join(COMMIT)
            .join(SAFETENSORS_WEIGHTS)
            .exists()
    );
    // The partial file stays for the next run, which resumes it.
    let partial = blob.with_file_name(format!("{}.incomplete", sha256_hex(&weights)));
    assert_eq!(std::fs::metadata(&partial).expect("partial").len(), 21_000);

    let good = TestServer::start(vec![
        hub_file("owner/model", "config.json", b"{}"),
        hub_file("owner/model", SAFETENSORS_WEIGHTS, &weights),
    ]);
    let opts = options(good.base(), cache.path());
    let dir = resolve_model_dir_with("owner/model", &files, &opts).expect("resumed");
    assert_eq!(
        std::fs::read(dir.join(SAFETENSORS_WEIGHTS)).expect("read"),
        weights
    );
    assert!(!partial.exists());
    assert!(
        good.requests()
            .iter()
            .any(|r| r.ends_with("Range: bytes=21000-")),
        "{:?}",
        good.requests()
    );
}

#[test]
fn lfs_file_is_verified_by_size_and_sha256() {
    let weights = safetensors(3000);
    let cache = tempfile::tempdir().expect("tempdir");
    let files = ["config.json", SAFETENSORS_WEIGHTS];
    let repo_dir = cache.path().join("models--owner--model");
    let blob_names = || -> Vec<String> {
        std::fs::read_dir(repo_dir.join("blobs"))
            .map(|d| {
                d.map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };

    // A wrong SHA-256: rejected, nothing kept.
    let wrong = "ab".repeat(32);
    let server = lfs_server(
        "owner/model",
        SAFETENSORS_WEIGHTS,
        0,
        Some(&wrong),
        &weights,
    );
    let err = resolve_model_dir_with("owner/model", &files, &options(server.base(), cache.path()))
        .expect_err("wrong sha");
    assert!(
        matches!(&err, ModelError::ChecksumMismatch { expected, .. } if *expected == wrong),
        "{err:?}"
    );
    assert!(
        !blob_names().iter().any(|b| b.starts_with(&wrong)),
        "{:?}",
        blob_names()
    );

    // Announced larger than served.
    let server = lfs_server("owner/model", SAFETENSORS_WEIGHTS, 10, None, &weights);
    let err = resolve_model_dir_with("owner/model", &files, &options(server.base(), cache.path()))
        .expect_err("too short");
    assert!(
        matches!(err, ModelError::SizeMismatch { expected, .. } if expected == weights.len() as u64 + 10),
        "{err:?}"
    );
    // Announced smaller than served.
    let server = lfs_server("owner/model", SAFETENSORS_WEIGHTS, -10, None, &weights);
    let err = resolve_model_dir_with("owner/model", &files, &options(server.base(), cache.path()))
        .expect_err("too long");
    assert!(matches!(err, ModelError::SizeMismatch { .. }), "{err:?}");
    let sha = sha256_hex(&weights);
    assert!(
        !blob_names().iter().any(|b| b.starts_with(&sha)),
        "{:?}",
        blob_names()
    );

    // The right size and SHA-256: accepted, fetched from the redirect target.
    let server = lfs_server("owner/model", SAFETENSORS_WEIGHTS, 0, None, &weights);
    let dir = resolve_model_dir_with("owner/model", &files, &options(server.base(), cache.path()))
        .expect("good");
    assert_eq!(
        std::fs::read(dir.join(SAFETENSORS_WEIGHTS)).expect("read"),
        weights
    );
    assert!(blob_names().contains(&sha), "{:?}", blob_names());
    assert!(
        server
            .requests()
            .iter()
            .any(|r| r.starts_with("GET /_lfs/owner/model/model.safetensors")),
        "{:?}",
        server.requests()
    );
}

#[test]
fn unknown_repo_401_says_it_may_not_exist_and_sends_hf_token() {
    let server = TestServer::start(vec![
        Route::status("/owner/secret/resolve/main/config.json", 401)
            .header("X-Error-Code", "RepoNotFound"),
    ]);
    let cache = tempfile::tempdir().expect("tempdir");
    let mut opts = options(server.base(), cache.path());
    let err = resolve_model_dir_with("owner/secret", &["config.json"], &opts).expect_err("401");
    let message = err.to_string();
    assert!(
        matches!(
            &err,
            ModelError::HubAccess { status: 401, token_sent: false, error_code: Some(c), .. }
                if c == "RepoNotFound"
        ),
        "{err:?}"
    );
    assert!(message.contains("may not exist"), "{message}");
    assert!(message.contains("HF_TOKEN"), "{message}");
    assert!(!message.contains("offline"), "{message}");

    opts.token = Some("hf_test".into());
    let err = resolve_model_dir_with("owner/secret", &["config.json"], &opts).expect_err("401");
    assert!(
        matches!(
            err,
            ModelError::HubAccess {
                token_sent: true,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        server
            .requests()
            .iter()
            .any(|r| r.ends_with("Authorization: Bearer hf_test")),
        "{:?}",
        server.requests()
    );
}

#[test]
fn silent_server_is_a_network_error_not_a_hang() {
    let server = TestServer::start(vec![Route::hang("/owner/model/resolve/main/config.json")]);
    let cache = tempfile::tempdir().expect("tempdir");
    let mut opts = options(server.base(), cache.path());
    opts.net.read_timeout = Duration::from_millis(200);
    opts.net.retries = 1;
    let start = Instant::now();
    let err = resolve_model_dir_with("owner/model", &["config.json"], &opts).expect_err("hang");
    // Generous: only "returns instead of hanging".
    assert!(
        start.elapsed() < Duration::from_secs(120),
        "{:?}",
        start.elapsed()
    );
    match &err {
        ModelError::HubUnreachable { source, .. } => assert!(
            matches!(
                **source,
                ModelError::Network {
                    source: ureq::Error::Timeout(_),
                    attempts: 2,
                    ..
                }
            ),
            "{source:?}"
        ),
        other => panic!("expected HubUnreachable, got {other:?}"),
    }
}

#[test]
fn damaged_cached_file_names_the_blob_to_delete() {
    let cache = tempfile::tempdir().expect("tempdir");
    let repo_dir = cache.path().join("models--owner--model");
    let snap = repo_dir.join("snapshots").join(COMMIT);
    let blobs = repo_dir.join("blobs");
    std::fs::create_dir_all(&snap).expect("mkdir");
    std::fs::create_dir_all(&blobs).expect("mkdir");
    std::fs::create_dir_all(repo_dir.join("refs")).expect("mkdir");
    std::fs::write(repo_dir.join("refs").join("main"), COMMIT).expect("write");
    let weights = safetensors(100);
    let truncated = &weights[..weights.len() - 7];
    std::fs::write(blobs.join("weights-blob"), truncated).expect("write");
    std::fs::write(blobs.join("config-blob"), "{}").expect("write");
    link_snapshot(
        &blobs.join("config-blob"),
        &snap.join("config.json"),
        "config.json",
    )
    .expect("link");
    link_snapshot(
        &blobs.join("weights-blob"),
        &snap.join(SAFETENSORS_WEIGHTS),
        SAFETENSORS_WEIGHTS,
    )
    .expect("link");
    let mut opts = options("http://127.0.0.1:9", cache.path());
    opts.offline = true;
    let err = resolve_model_dir_with("owner/model", &["config.json", SAFETENSORS_WEIGHTS], &opts)
        .expect_err("damaged");
    let blob = std::fs::canonicalize(blobs.join("weights-blob")).expect("canonical");
    match &err {
        ModelError::CorruptCacheFile { path, reason, .. } => {
            assert_eq!(*path, blob);
            assert!(reason.contains("truncated"), "{reason}");
        }
        other => panic!("expected CorruptCacheFile, got {other:?}"),
    }
    assert!(
        err.to_string()
            .contains(&format!("delete {}", blob.display())),
        "{err}"
    );
    // Whole again: accepted.
    std::fs::write(blobs.join("weights-blob"), &weights).expect("write");
    resolve_model_dir_with("owner/model", &["config.json", SAFETENSORS_WEIGHTS], &opts)
        .expect("whole");
}

#[test]
fn invalid_spec_is_rejected_with_hint() {
    for spec in [
        "./no/such/dir",
        "/abs/path/model",
        "a/b/c",
        "",
        "bad name",
        "a/b@../x",
    ] {
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
