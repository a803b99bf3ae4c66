use super::*;
use crate::data::GlueDataset;
use peft_models::ModelError;
use peft_models::test_server::{Route, TestServer};
use std::io::Write;
use std::time::{Duration, Instant};

fn net() -> NetOptions {
    NetOptions {
        connect_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_millis(500),
        retries: 2,
        retry_delay: Duration::ZERO,
        progress: false,
    }
}

fn write(dir: &Path, name: &str, text: &str) {
    fs::write(dir.join(name), text).expect("write");
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("read")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn sst2_zip() -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, text) in [
        ("SST-2/train.tsv", "sentence\tlabel\ngood \t1\nbad \t0\n"),
        ("SST-2/dev.tsv", "sentence\tlabel\nfine \t1\n"),
        ("SST-2/original/README.txt", "x"),
    ] {
        zip.start_file(name, opts).expect("start");
        zip.write_all(text.as_bytes()).expect("write");
    }
    zip.finish().expect("finish").into_inner()
}

#[test]
fn glue_url_override() {
    assert_eq!(
        glue_url_from(GlueTask::Sst2, None).as_deref(),
        Some("https://dl.fbaipublicfiles.com/glue/data/SST-2.zip")
    );
    assert_eq!(
        glue_url_from(GlueTask::Sst2, Some("http://mirror/x.zip".into())).as_deref(),
        Some("http://mirror/x.zip")
    );
    assert_eq!(glue_url_from(GlueTask::Mrpc, Some(" ".into())), None);
}

#[test]
fn download_unreachable_is_a_network_error() {
    let cache = tempfile::tempdir().expect("tempdir");
    let url = "http://127.0.0.1:9/SST-2.zip";
    let err = download_glue_with(GlueTask::Sst2, url, cache.path(), &net())
        .expect_err("nothing listens on port 9");
    let message = err.to_string();
    match err {
        TrainError::DatasetDownload {
            url: got, source, ..
        } => {
            assert_eq!(got, url);
            assert!(
                matches!(*source, ModelError::Network { attempts: 3, .. }),
                "{source:?}"
            );
        }
        other => panic!("expected DatasetDownload, got {other:?}"),
    }
    assert!(message.contains("--data DIR"), "{message}");
    assert!(message.contains("BURN_PEFT_GLUE_SST2_URL"), "{message}");
    assert!(entries(cache.path()).is_empty());
}

#[test]
fn download_uses_the_cache_first() {
    let cache = tempfile::tempdir().expect("tempdir");
    let dir = cache.path().join("SST-2");
    fs::create_dir_all(&dir).expect("mkdir");
    write(&dir, "train.tsv", "sentence\tlabel\na\t1\n");
    write(&dir, "dev.tsv", "sentence\tlabel\nb\t0\n");
    let got = download_glue_with(
        GlueTask::Sst2,
        "http://127.0.0.1:9/x.zip",
        cache.path(),
        &net(),
    )
    .expect("cached");
    assert_eq!(got, dir);
}

#[test]
fn download_and_unzip_from_local_server() {
    let cache = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(vec![
        Route::status("/missing.zip", 404),
        Route::file("/not-a.zip", b"this is not a zip"),
        Route::file("/SST-2.zip", &sst2_zip()),
    ]);
    let err = download_glue_with(
        GlueTask::Sst2,
        &server.url("/missing.zip"),
        cache.path(),
        &net(),
    )
    .expect_err("404");
    assert!(
        matches!(&err, TrainError::DatasetDownload { source, .. }
            if matches!(**source, ModelError::HttpStatus { status: 404, .. })),
        "{err:?}"
    );
    let err = download_glue_with(
        GlueTask::Sst2,
        &server.url("/not-a.zip"),
        cache.path(),
        &net(),
    )
    .expect_err("not zip");
    assert!(matches!(err, TrainError::DatasetArchive { .. }), "{err:?}");
    let url = server.url("/SST-2.zip");
    let dir = download_glue_with(GlueTask::Sst2, &url, cache.path(), &net()).expect("download");
    assert_eq!(dir, cache.path().join("SST-2"));
    let train = GlueDataset::from_dir(&dir, GlueTask::Sst2, Split::Train).expect("train");
    assert_eq!(train.items().len(), 2);
    assert_eq!(train.items()[0].text_a, "good");
    // Only the final folder remains: no temporary file or folder.
    assert_eq!(entries(cache.path()), vec!["SST-2".to_string()]);
    // Second call: served from the cache (a dead URL).
    assert_eq!(
        download_glue_with(
            GlueTask::Sst2,
            "http://127.0.0.1:9/x.zip",
            cache.path(),
            &net()
        )
        .expect("cached"),
        dir
    );
}

#[test]
fn dropped_connection_is_resumed() {
    let zip = sst2_zip();
    let cut = zip.len() / 3;
    let server = TestServer::start(vec![Route::file("/SST-2.zip", &zip).cut(cut, 2)]);
    let cache = tempfile::tempdir().expect("tempdir");
    let dir = download_glue_with(
        GlueTask::Sst2,
        &server.url("/SST-2.zip"),
        cache.path(),
        &net(),
    )
    .expect("resumed");
    assert!(dir.join("train.tsv").is_file());
    let requests = server.requests();
    assert_eq!(requests.len(), 3, "{requests:?}");
    assert!(
        requests[1].ends_with(&format!("Range: bytes={cut}-")),
        "{requests:?}"
    );
    assert_eq!(entries(cache.path()), vec!["SST-2".to_string()]);
}

#[test]
fn interrupted_download_leaves_nothing_behind() {
    let zip = sst2_zip();
    let server = TestServer::start(vec![Route::file("/SST-2.zip", &zip).cut(100, usize::MAX)]);
    let cache = tempfile::tempdir().expect("tempdir");
    // A killed earlier run's leftovers (a pid that cannot be alive).
    let stale = cache.path().join(".SST-2.999999999.zip.part");
    fs::write(&stale, b"partial").expect("write");
    let err = download_glue_with(
        GlueTask::Sst2,
        &server.url("/SST-2.zip"),
        cache.path(),
        &net(),
    )
    .expect_err("always cut");
    assert!(
        matches!(&err, TrainError::DatasetDownload { source, .. }
            if matches!(**source, ModelError::Network { attempts: 3, received: 300, .. })),
        "{err:?}"
    );
    assert!(err.to_string().contains("the network failed"), "{err}");
    let left = entries(cache.path());
    if Path::new("/proc/self").exists() {
        assert!(left.is_empty(), "{left:?}");
    } else {
        assert_eq!(left, vec![".SST-2.999999999.zip.part".to_string()]);
    }
}

#[test]
fn silent_server_is_an_error_not_a_hang() {
    let server = TestServer::start(vec![Route::hang("/SST-2.zip")]);
    let cache = tempfile::tempdir().expect("tempdir");
    let mut options = net();
    options.read_timeout = Duration::from_millis(200);
    options.retries = 1;
    let start = Instant::now();
    let err = download_glue_with(
        GlueTask::Sst2,
        &server.url("/SST-2.zip"),
        cache.path(),
        &options,
    )
    .expect_err("never answers");
    // Generous: only "returns instead of hanging".
    assert!(
        start.elapsed() < Duration::from_secs(120),
        "{:?}",
        start.elapsed()
    );
    assert!(
        matches!(&err, TrainError::DatasetDownload { source, .. }
        if matches!(**source, ModelError::Network {
            source: ureq::Error::Timeout(_), attempts: 2, ..
        })),
        "{err:?}"
    );
    assert!(entries(cache.path()).is_empty());
}
