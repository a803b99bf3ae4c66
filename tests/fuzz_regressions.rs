//! Stable replay of the fuzzing work in `fuzz/` (see `fuzz/README.md`): no nightly, no
//! cargo-fuzz.
//!
//! - every committed seed and corpus input (`fuzz/seeds/<target>/*`, `fuzz/corpus/<target>/*`)
//!   and every input that once crashed (`fuzz/regressions/<target>/*`) goes through the same target functions as the fuzzer
//!   (`fuzz/src/lib.rs`, included below), none may panic;
//! - a smoke run per target: deterministic random mutations of its corpus (a fixed number, a
//!   few seconds in all);
//! - the harness itself: the valid fixtures are accepted, so the targets reach the loaders'
//!   success paths.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

#[path = "../fuzz/src/lib.rs"]
mod targets;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The seed and minimized corpus inputs of a target.
fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut all = inputs("seeds", target);
    all.extend(inputs("corpus", target));
    all
}

/// The files of `fuzz/<kind>/<target>/`, sorted by name (none when the folder is absent).
fn inputs(kind: &str, target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = fuzz_dir().join(kind).join(target);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    paths.sort();
    paths
        .into_iter()
        // A file that vanished since the listing (a fuzzer running on the corpus) is skipped.
        .filter_map(|p| std::fs::read(&p).ok().map(|bytes| (p, bytes)))
        .collect()
}

/// Run `target` on `data`; the panic message if it panicked.
fn run(target: targets::Target, data: &[u8]) -> Option<String> {
    catch_unwind(AssertUnwindSafe(|| target(data)))
        .err()
        .map(|p| {
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "non-string panic".into())
        })
}

#[test]
fn corpus_and_crash_inputs_replay_without_panic() {
    let mut failures = Vec::new();
    for (name, target) in targets::TARGETS {
        let corpus = corpus(name);
        assert!(!corpus.is_empty(), "no seeds or corpus for {name}");
        for (path, data) in corpus.iter().chain(&inputs("regressions", name)) {
            if std::env::var_os("FUZZ_PRINT_ERRORS").is_some() {
                eprintln!("input: {}", path.display());
            }
            if let Some(msg) = run(target, data) {
                failures.push(format!("{name}: {}: {msg}", path.display()));
            }
        }
    }
    assert!(failures.is_empty(), "panics:\n{}", failures.join("\n"));
}

#[test]
fn valid_fixtures_are_accepted_by_the_targets() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let seeds = [
        (
            "safetensors_checkpoint",
            "fixtures/tiny-bert/model.safetensors",
        ),
        (
            "safetensors_checkpoint",
            "fixtures/tiny-bert/model-f16.safetensors",
        ),
        ("pytorch_checkpoint", "fixtures/tiny-bert/pytorch_model.bin"),
        ("bert_config", "fixtures/tiny-bert/config.json"),
        ("gpt2_config", "fixtures/tiny-gpt2/config.json"),
        (
            "adapter_config",
            "fuzz/seeds/adapter_config/houlsby-head.json",
        ),
        ("adapter_config", "fuzz/seeds/adapter_config/parallel.json"),
        (
            "adapterhub_weights",
            "fixtures/tiny-bert/adapters/double_seq_bn-hub/adapter.safetensors",
        ),
        (
            "adapterhub_config",
            "fixtures/tiny-bert/hub/d-hub/adapter_config.json",
        ),
        (
            "adapterhub_config",
            "fixtures/tiny-gpt2/hub/b-hub/adapter_config.json",
        ),
        ("tokenizer_json", "fuzz/seeds/tokenizer_json/wordpiece.json"),
        (
            "tokenizer_json",
            "fuzz/seeds/tokenizer_json/bytelevel-bpe.json",
        ),
        ("glue_tsv", "fuzz/seeds/glue_tsv/mnli.tsv"),
        ("glue_tsv", "fuzz/seeds/glue_tsv/cola.tsv"),
    ];
    for (name, file) in seeds {
        let target = targets::TARGETS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| *t)
            .unwrap_or_else(|| panic!("no target {name}"));
        let data = std::fs::read(root.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(target(&data), "{name} rejects the valid {file}");
        // The same bytes cut short are refused (a TSV cut at a line end is still valid).
        if name != "glue_tsv" {
            assert!(
                !target(&data[..data.len() / 2]),
                "{name} accepts half of {file}"
            );
        }
    }
}

/// SplitMix64: a small deterministic generator, so the smoke run is the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Values that tend to break parsers: sizes, signs, JSON and TSV punctuation.
const TOKENS: [&[u8]; 14] = [
    b"0",
    b"-1",
    b"18446744073709551615",
    b"1e308",
    b"NaN",
    b"null",
    b"\"\"",
    b"[]",
    b"{}",
    b"\t",
    b"\n",
    b"\xff\xfe",
    b"\"F64\"",
    b"[99999999999, 99999999999]",
];

/// One to four stacked byte-level mutations of `data`.
fn mutate(rng: &mut Rng, data: &[u8], splice: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = out.len();
        let pos = rng.below(len + 1);
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                out[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                out[i] = [0u8, 0xff, 0x7f, 0x80, b'"', b'{', b'9', b'\t'][rng.below(8)];
            }
            2 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                out.splice(pos..pos, token.iter().copied());
            }
            3 if len > 0 => {
                let end = (pos + 1 + rng.below(64)).min(len);
                out.drain(pos.min(len - 1)..end);
            }
            4 => out.truncate(pos),
            5 if len >= 8 => {
                // An 8-byte little-endian size field set to something huge.
                let i = rng.below(len - 7);
                let v = [u64::MAX, 1 << 40, 1 << 62, 0x7fff_ffff][rng.below(4)];
                out[i..i + 8].copy_from_slice(&v.to_le_bytes());
            }
            6 if !splice.is_empty() => {
                let start = rng.below(splice.len());
                let end = (start + 1 + rng.below(256)).min(splice.len());
                out.splice(pos..pos, splice[start..end].iter().copied());
            }
            _ => {
                let token = TOKENS[rng.below(TOKENS.len())];
                let end = (pos + token.len()).min(len);
                out.splice(pos..end, token.iter().copied());
            }
        }
    }
    out
}

/// Mutations per target (override with `FUZZ_SMOKE_ITERS`; `FUZZ_SMOKE_TARGETS=a,b` runs only
/// those targets, e.g. for a long stable-toolchain run of one target).
const SMOKE_ITERS: usize = 1000;

#[test]
fn mutation_smoke_per_target() {
    let iters = std::env::var("FUZZ_SMOKE_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(SMOKE_ITERS);
    let only: Option<Vec<String>> = std::env::var("FUZZ_SMOKE_TARGETS")
        .ok()
        .map(|v| v.split(',').map(str::to_string).collect());
    let mut failures = Vec::new();
    for (t, (name, target)) in targets::TARGETS.into_iter().enumerate() {
        if only.as_ref().is_some_and(|o| !o.iter().any(|n| n == name)) {
            continue;
        }
        let corpus: Vec<Vec<u8>> = corpus(name).into_iter().map(|(_, d)| d).collect();
        assert!(!corpus.is_empty(), "no seeds or corpus for {name}");
        let mut rng = Rng(0x5eed_0000 + t as u64);
        for i in 0..iters {
            let base = &corpus[rng.below(corpus.len())];
            let other = &corpus[rng.below(corpus.len())];
            let data = mutate(&mut rng, base, other);
            if let Some(msg) = run(target, &data) {
                let path = std::env::temp_dir().join(format!("fuzz-smoke-{name}-{i}"));
                std::fs::write(&path, &data).ok();
                failures.push(format!(
                    "{name}: mutation {i} (saved to {}): {msg}",
                    path.display()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "panics:\n{}", failures.join("\n"));
}
