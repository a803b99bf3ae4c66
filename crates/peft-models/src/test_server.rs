//! A small HTTP/1.1 server on 127.0.0.1 for download tests (this crate's and `peft-train`'s,
//! through the `test-server` feature). Not part of the public API.
//!
//! Each [`Route`] serves a body (with `Range` support: `206`/`416`), answers a fixed status with
//! headers (401, a 302 with `X-Linked-*` headers, ...), cuts the connection after some bytes for
//! its first few requests, or accepts a request and never answers.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What one path answers.
#[derive(Debug, Clone)]
pub struct Route {
    /// The request path, e.g. `/owner/name/resolve/main/config.json`.
    pub path: String,
    /// The status; 200 serves `body` (206 for ranges), others answer headers and `body`.
    pub status: u16,
    /// Extra response headers.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// Send at most this many body bytes, then close, for the first `cut_times` GETs.
    pub cut_after: Option<usize>,
    /// How many GETs are cut (`usize::MAX`: all).
    pub cut_times: usize,
    /// Read the request, then never answer.
    pub hang: bool,
}

impl Route {
    /// `path` serves `body` with status 200.
    pub fn file(path: &str, body: &[u8]) -> Self {
        Self {
            path: path.to_string(),
            status: 200,
            headers: Vec::new(),
            body: body.to_vec(),
            cut_after: None,
            cut_times: 0,
            hang: false,
        }
    }

    /// `path` answers `status` with an empty body.
    pub fn status(path: &str, status: u16) -> Self {
        Self {
            status,
            ..Self::file(path, b"")
        }
    }

    /// `path` accepts requests and never answers.
    pub fn hang(path: &str) -> Self {
        Self {
            hang: true,
            ..Self::file(path, b"")
        }
    }

    /// Adds a response header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// The first `times` GETs send only `bytes` body bytes, then close the connection.
    pub fn cut(mut self, bytes: usize, times: usize) -> Self {
        self.cut_after = Some(bytes);
        self.cut_times = times;
        self
    }
}

/// A running server; it lives until the test process ends.
pub struct TestServer {
    base: String,
    requests: Arc<Mutex<Vec<String>>>,
}

impl TestServer {
    /// Starts serving `routes` on a free port of 127.0.0.1; unknown paths get 404.
    ///
    /// # Panics
    /// When no port can be bound.
    pub fn start(routes: Vec<Route>) -> Self {
        Self::start_with(|_| routes)
    }

    /// [`TestServer::start`] with routes made from the base URL (for absolute redirects).
    ///
    /// # Panics
    /// When no port can be bound.
    #[allow(clippy::expect_used)]
    pub fn start_with(routes: impl FnOnce(&str) -> Vec<Route>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let base = format!("http://{}", listener.local_addr().expect("local addr"));
        let routes = routes(&base);
        let requests = Arc::new(Mutex::new(Vec::new()));
        let routes: Arc<Vec<(Route, AtomicUsize)>> = Arc::new(
            routes
                .into_iter()
                .map(|r| (r, AtomicUsize::new(0)))
                .collect(),
        );
        let log = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let routes = routes.clone();
                let log = log.clone();
                std::thread::spawn(move || serve(stream, &routes, &log));
            }
        });
        Self { base, requests }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The base URL joined with `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The requests so far: `METHOD PATH` plus ` Range: ...` and ` Authorization: ...` when
    /// sent.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

fn serve(stream: TcpStream, routes: &[(Route, AtomicUsize)], log: &Mutex<Vec<String>>) {
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut range = None;
    let mut auth = None;
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) if line.trim().is_empty() => break,
            Ok(_) => {
                if let Some((name, value)) = line.split_once(':') {
                    let value = value.trim().to_string();
                    match name.trim().to_ascii_lowercase().as_str() {
                        "range" => range = Some(value),
                        "authorization" => auth = Some(value),
                        _ => {}
                    }
                }
            }
        }
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    if let Ok(mut log) = log.lock() {
        let mut entry = format!("{method} {path}");
        if let Some(r) = &range {
            entry.push_str(&format!(" Range: {r}"));
        }
        if let Some(a) = &auth {
            entry.push_str(&format!(" Authorization: {a}"));
        }
        log.push(entry);
    }
    let mut stream = stream;
    let Some((route, count)) = routes.iter().find(|(r, _)| r.path == path) else {
        let _ = stream
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
    };
    if route.hang {
        std::thread::sleep(Duration::from_secs(600));
        return;
    }
    let head_only = method == "HEAD";
    let mut status = route.status;
    let mut body: &[u8] = &route.body;
    let mut headers = route.headers.clone();
    if status == 200 {
        let len = route.body.len();
        headers.push(("Accept-Ranges".into(), "bytes".into()));
        let start = range
            .as_deref()
            .and_then(|r| r.strip_prefix("bytes="))
            .and_then(|r| r.strip_suffix('-'))
            .and_then(|r| r.parse::<usize>().ok());
        match start {
            Some(start) if start >= len => {
                status = 416;
                body = b"";
                headers.push(("Content-Range".into(), format!("bytes */{len}")));
            }
            Some(start) => {
                status = 206;
                body = &route.body[start..];
                headers.push((
                    "Content-Range".into(),
                    format!("bytes {start}-{}/{len}", len - 1),
                ));
            }
            None => {}
        }
    }
    let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (name, value) in &headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    if stream.write_all(head.as_bytes()).is_err() || head_only {
        return;
    }
    let cut = !head_only
        && route.cut_after.is_some()
        && count.fetch_add(1, Ordering::SeqCst) < route.cut_times;
    let send = match (cut, route.cut_after) {
        (true, Some(n)) => &body[..n.min(body.len())],
        _ => body,
    };
    let _ = stream.write_all(send);
    let _ = stream.flush();
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        302 => "Found",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        416 => "Range Not Satisfiable",
        500 => "Internal Server Error",
        _ => "Status",
    }
}
