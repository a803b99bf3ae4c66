//! What the `burn-peft` binary tests share: a [`Sandbox`] that runs the binary as a user would,
//! on the committed tiny BERT fixture (`fixtures/tiny-bert`) with a word-level tokenizer and a
//! small TSV dataset written into a temporary directory.
//!
//! Every run points `HF_ENDPOINT` and the GLUE URLs at a local listener that must never see a
//! connection, and the caches at a temporary directory: nothing is downloaded.
#![allow(dead_code)]

use std::io::ErrorKind;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use tokenizers::Tokenizer;
use tokenizers::models::wordlevel::WordLevel;
use tokenizers::pre_tokenizers::whitespace::Whitespace;

pub const BIN: &str = env!("CARGO_BIN_EXE_burn-peft");

pub fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/tiny-bert")
}

/// A sandbox: a listener standing in for the Hub and GLUE servers, caches, data, tokenizer.
pub struct Sandbox {
    dir: tempfile::TempDir,
    listener: TcpListener,
}

impl Sandbox {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        listener
            .set_nonblocking(true)
            .unwrap_or_else(|e| panic!("{e}"));
        let sb = Self { dir, listener };
        sb.write_tokenizer();
        sb.write_data();
        sb
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn p(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    /// [PAD] 0, [UNK] 1, `w4`..`w98`: the tiny BERT's 99 ids.
    fn write_tokenizer(&self) {
        let mut vocab: Vec<(String, u32)> = vec![("[PAD]".into(), 0), ("[UNK]".into(), 1)];
        vocab.extend((4..99u32).map(|i| (format!("w{i}"), i)));
        let model = WordLevel::builder()
            .vocab(vocab.into_iter().collect())
            .unk_token("[UNK]".into())
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let mut tok = Tokenizer::new(model);
        tok.with_pre_tokenizer(Some(Whitespace));
        tok.save(self.path("tokenizer.json"), false)
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Learnable with string labels: the first word says the class.
    fn write_data(&self) {
        let rows = |range: std::ops::Range<u32>| -> Vec<(String, &'static str)> {
            range
                .map(|k| {
                    let pos = k % 2 == 1;
                    let first = if pos {
                        90 + (k * 5) % 8
                    } else {
                        4 + (k * 7) % 8
                    };
                    let noise: Vec<String> = (0..1 + k % 4)
                        .map(|j| format!("w{}", 20 + (k * 13 + j * 29) % 60))
                        .collect();
                    (
                        format!("w{first} {}", noise.join(" ")),
                        if pos { "pos" } else { "neg" },
                    )
                })
                .collect()
        };
        let tsv = |rows: &[(String, &str)]| {
            let mut s = String::from("text\tsentiment\n");
            for (t, l) in rows {
                s.push_str(&format!("{t}\t{l}\n"));
            }
            s
        };
        let train = rows(0..160);
        let valid = rows(160..200);
        let write = |name: &str, text: String| {
            std::fs::write(self.path(name), text).unwrap_or_else(|e| panic!("{e}"));
        };
        write("train.tsv", tsv(&train));
        write("valid.tsv", tsv(&valid));
        write(
            "inputs.txt",
            valid.iter().map(|(t, _)| format!("{t}\n")).collect(),
        );
        let mut bad = valid.clone();
        bad[3].1 = "neutral";
        write("bad_labels.tsv", tsv(&bad));
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with_stdin(args, None)
    }

    pub fn run_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let url = format!(
            "http://{}",
            self.listener
                .local_addr()
                .map_or_else(|e| panic!("{e}"), |a| a.to_string())
        );
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .current_dir(self.dir.path())
            .env("HF_ENDPOINT", &url)
            .env("HF_HOME", self.path("hf"))
            .env_remove("HF_HUB_CACHE")
            .env_remove("HF_HUB_OFFLINE")
            .env("XDG_CACHE_HOME", self.path("cache"))
            .env_remove("BURN_DEVICE")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for var in [
            "BURN_PEFT_GLUE_SST2_URL",
            "BURN_PEFT_GLUE_COLA_URL",
            "BURN_PEFT_GLUE_RTE_URL",
        ] {
            cmd.env(var, format!("{url}/glue.zip"));
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{e}"));
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            use std::io::Write;
            pipe.write_all(text.as_bytes())
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
        match self.listener.accept() {
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            other => panic!(
                "`burn-peft {}` contacted the network: {other:?}",
                args.join(" ")
            ),
        }
        out
    }

    /// Run; expect success and return stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "`burn-peft {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Run; expect exit `code` with one stderr line containing `needle`, and no panic.
    pub fn fails(&self, args: &[&str], code: i32, needle: &str) {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let what = format!("`burn-peft {}`", args.join(" "));
        assert_eq!(out.status.code(), Some(code), "{what}: {stderr}");
        assert!(!stderr.contains("panicked"), "{what} panicked: {stderr}");
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{what}: not one line: {stderr}");
        assert!(lines[0].starts_with("error: "), "{what}: {stderr}");
        assert!(
            lines[0].contains(needle),
            "{what}: `{needle}` not in {stderr}"
        );
    }

    pub fn model_args(&self) -> Vec<String> {
        vec![
            "--model".into(),
            fixture().display().to_string(),
            "--tokenizer".into(),
            self.p("tokenizer.json"),
        ]
    }
}

pub fn json(text: &str) -> Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"))
}

pub fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

pub fn eval_accuracies(sb: &Sandbox, adapters: &[&Path]) -> Vec<(String, f64)> {
    let mut args = vec!["--json".to_string(), "eval".into()];
    args.extend(sb.model_args());
    args.extend(["--valid".into(), sb.p("valid.tsv")]);
    args.extend(["--label-column".into(), "sentiment".into()]);
    for a in adapters {
        args.extend(["--adapter".into(), a.display().to_string()]);
    }
    let rows = json(&sb.ok(&strs(&args)));
    rows.as_array()
        .unwrap_or_else(|| panic!("not an array: {rows}"))
        .iter()
        .map(|r| {
            (
                r["adapter"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                r["eval"]["accuracy"].as_f64().unwrap_or(f64::NAN),
            )
        })
        .collect()
}

/// `predict --json` lines of `adapter` on the inputs: (label id, probabilities) each.
pub fn predictions(sb: &Sandbox, adapter: &Path) -> Vec<(u64, Vec<f64>)> {
    let mut args = vec!["predict".to_string()];
    args.extend(sb.model_args());
    args.extend(
        [
            "--adapter",
            &adapter.display().to_string(),
            "--input",
            &sb.p("inputs.txt"),
        ]
        .map(String::from),
    );
    sb.ok(&strs(&args))
        .lines()
        .map(json)
        .map(|p| {
            let probs = p["probabilities"]
                .as_array()
                .unwrap_or_else(|| panic!("{p}"))
                .iter()
                .filter_map(Value::as_f64)
                .collect();
            (p["label_id"].as_u64().unwrap_or(u64::MAX), probs)
        })
        .collect()
}
