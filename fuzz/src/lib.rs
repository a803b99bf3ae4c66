//! Fuzz targets for every loader that reads a file a user may have downloaded from anywhere.
//!
//! One function per target, each taking arbitrary bytes. An error is the expected outcome for
//! almost every input; a panic, an abort or a huge allocation is a bug. This file is shared, not
//! copied: the cargo-fuzz binaries (`fuzz/fuzz_targets/*.rs`, nightly) call it through the
//! `burn-peft-fuzz` crate, and the stable regression test `tests/fuzz_regressions.rs` includes it
//! with `#[path]` to replay the committed corpus and crash inputs.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use peft_core::{AdapterConfig, AdapterFile, AdapterMethod, attach_adapters};
use peft_models::adapterhub::load_adapterhub_weights;
use peft_models::bert::{BertConfig, BertModel};
use peft_models::gpt2::Gpt2Config;
use peft_models::tokenizer::TextTokenizer;
use peft_train::data::{GlueTask, parse_glue_tsv};

/// A fuzz target: feeds bytes to one loader; `true` when the loader accepted them.
pub type Target = fn(&[u8]) -> bool;

/// Every target, by the name of its cargo-fuzz binary and corpus directory.
pub const TARGETS: [(&str, Target); 9] = [
    ("safetensors_checkpoint", safetensors_checkpoint),
    ("pytorch_checkpoint", pytorch_checkpoint),
    ("bert_config", bert_config),
    ("gpt2_config", gpt2_config),
    ("adapter_config", adapter_config),
    ("adapterhub_weights", adapterhub_weights),
    ("adapterhub_config", adapterhub_config),
    ("tokenizer_json", tokenizer_json),
    ("glue_tsv", glue_tsv),
];

/// `config.json` of the tiny BERT fixture every loading target loads into.
const TINY_BERT_CONFIG: &str = include_str!("../../fixtures/tiny-bert/config.json");

struct Scratch {
    /// Directory for the files the path-only loaders read.
    dir: tempfile::TempDir,
    /// The tiny BERT, without adapters.
    bert: BertModel,
    /// The tiny BERT with Houlsby adapters (reduction factor 4), as AdapterHub's
    /// `double_seq_bn` fixture.
    bert_adapters: BertModel,
}

thread_local! {
    static SCRATCH: RefCell<Option<Scratch>> = const { RefCell::new(None) };
}

fn device() -> Device {
    Device::flex()
}

/// Run `f` with the per-thread scratch state, building it on first use.
fn with_scratch<R>(f: impl FnOnce(&Scratch) -> R) -> R {
    SCRATCH.with(|cell| {
        let mut slot = cell.borrow_mut();
        let scratch = slot.get_or_insert_with(|| {
            let device = device();
            let config = BertConfig::from_hf_json(TINY_BERT_CONFIG)
                .unwrap_or_else(|e| panic!("fixture config: {e}"));
            let bert = config
                .init(&device)
                .unwrap_or_else(|e| panic!("tiny BERT: {e}"));
            let mut bert_adapters = bert.clone();
            attach_adapters(&mut bert_adapters, &AdapterConfig::houlsby(4.0), &device)
                .unwrap_or_else(|e| panic!("attach: {e}"));
            Scratch {
                dir: tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}")),
                bert,
                bert_adapters,
            }
        });
        f(scratch)
    })
}

/// Write `data` to `name` in the scratch directory (for loaders that take only a path).
fn scratch_file(scratch: &Scratch, name: &str, data: &[u8]) -> PathBuf {
    let path = scratch.dir.path().join(name);
    std::fs::write(&path, data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path
}

/// Format the error, so that `Display` impls run on hostile content too.
fn consume<T, E: std::fmt::Display>(result: Result<T, E>) -> Option<T> {
    match result {
        Ok(v) => Some(v),
        Err(e) => {
            let message = e.to_string();
            if std::env::var_os("FUZZ_PRINT_ERRORS").is_some() {
                eprintln!("error: {message}");
            }
            std::hint::black_box(message);
            None
        }
    }
}

/// `model.safetensors` into the tiny BERT (`BertModel::load_checkpoint`).
pub fn safetensors_checkpoint(data: &[u8]) -> bool {
    with_scratch(|s| {
        let path = scratch_file(s, "model.safetensors", data);
        let mut model = s.bert.clone();
        consume(model.load_checkpoint(&path)).is_some()
    })
}

/// `pytorch_model.bin` (a zip of pickles, or a legacy pickle) into the tiny BERT.
pub fn pytorch_checkpoint(data: &[u8]) -> bool {
    with_scratch(|s| {
        let path = scratch_file(s, "pytorch_model.bin", data);
        let mut model = s.bert.clone();
        consume(model.load_checkpoint(&path)).is_some()
    })
}

fn utf8(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// A BERT `config.json`: parse and validate.
pub fn bert_config(data: &[u8]) -> bool {
    utf8(data).is_some_and(|text| consume(BertConfig::from_hf_json(text)).is_some())
}

/// A GPT-2 `config.json`: parse and validate.
pub fn gpt2_config(data: &[u8]) -> bool {
    utf8(data).is_some_and(|text| consume(Gpt2Config::from_hf_json(text)).is_some())
}

/// Our `adapter_config.json`: parse and check, then what loading an adapter does with it
/// before reading weights: compile the saved-tensor patterns, check the base model, attach
/// the adapters it describes to the tiny BERT.
pub fn adapter_config(data: &[u8]) -> bool {
    let Some(text) = utf8(data) else {
        return false;
    };
    let Some(file) = consume(AdapterFile::from_json(
        text,
        Path::new("adapter_config.json"),
    )) else {
        return false;
    };
    let saved = file.saved();
    for path in [
        "encoder.layer.0.output.adapters.default.adapter_down.weight",
        "head.weight",
    ] {
        consume(saved.matches(path));
    }
    with_scratch(|s| {
        // A file for another base is accepted by the parser; attaching needs the right base.
        if consume(file.check_base(&s.bert.base_info(), Path::new("adapter"))).is_none() {
            return true;
        }
        match &file.adapter {
            AdapterMethod::Bottleneck(config) => {
                let mut model = s.bert.clone();
                consume(attach_adapters(&mut model, config, &device())).is_some()
            }
            AdapterMethod::Lora(_)
            | AdapterMethod::Ia3(_)
            | AdapterMethod::PrefixTuning(_)
            | AdapterMethod::PromptTuning(_) => {
                let Some(config) = file.adapter.method_config() else {
                    return false;
                };
                let mut model = s.bert.clone();
                consume(peft_core::add_adapter(
                    &mut model,
                    "default",
                    &config,
                    &device(),
                ))
                .is_some()
            }
            AdapterMethod::Fusion { config, .. } => consume(config.validate()).is_some(),
            AdapterMethod::HeadOnly => true,
        }
    })
}

/// An AdapterHub `adapter.safetensors` into the tiny BERT with Houlsby adapters.
pub fn adapterhub_weights(data: &[u8]) -> bool {
    with_scratch(|s| {
        let path = scratch_file(s, "adapter.safetensors", data);
        let mut model = s.bert_adapters.clone();
        consume(load_adapterhub_weights(&mut model, &path)).is_some()
    })
}

/// An AdapterHub `adapter_config.json` (or `head_config.json`, `adapter_fusion_config.json`):
/// parse, list the warnings, map the config onto the tiny BERT (2 layers) and add the adapter
/// it describes; write it back. `true` when the adapter config was accepted and attached.
pub fn adapterhub_config(data: &[u8]) -> bool {
    use peft_core::adapterhub::{HubAdapterFile, HubFusionFile, HubHeadFile, HubMethodFile};
    let Some(text) = utf8(data) else {
        return false;
    };
    let path = Path::new("adapter_config.json");
    // LoRA / IA³ / prefix-tuning configs: parse, warnings, write back
    if let Some(method) = consume(HubMethodFile::from_json(text, path)) {
        std::hint::black_box(method.warnings());
        consume(method.to_json());
    }
    if let Some(head) = consume(HubHeadFile::from_json(text, path)) {
        std::hint::black_box(head.warnings());
        consume(head.to_json());
    }
    if let Some(fusion) = consume(HubFusionFile::from_json(text, path)) {
        std::hint::black_box(fusion.warnings());
        consume(fusion.to_json());
    }
    let Some(file) = consume(HubAdapterFile::from_json(text, path)) else {
        return false;
    };
    std::hint::black_box(file.warnings());
    consume(file.to_json());
    let Some(config) = consume(file.config.adapter_config(2, path)) else {
        return false;
    };
    with_scratch(|s| {
        let mut model = s.bert.clone();
        consume(peft_core::add_adapter(
            &mut model,
            "hub",
            &config,
            &device(),
        ))
        .is_some()
    })
}

/// A `tokenizer.json`: load, then encode a text and a pair (hostile normalizers, pre-tokenizers
/// and post-processors only act then), and decode.
pub fn tokenizer_json(data: &[u8]) -> bool {
    let Some(tokenizer) = consume(TextTokenizer::from_bytes(data)) else {
        return false;
    };
    let one = consume(tokenizer.encode_one("Hello world, héllo wörld! 12 <|endoftext|>"));
    if let Some(one) = &one {
        consume(tokenizer.inner().decode(&one.input_ids, true));
    }
    let pair = consume(tokenizer.encode_pair_one("a short one", "and a second text"));
    one.is_some() && pair.is_some()
}

/// A GLUE TSV file; the first byte picks the task.
pub fn glue_tsv(data: &[u8]) -> bool {
    let Some((&first, rest)) = data.split_first() else {
        return false;
    };
    let task = GlueTask::ALL[usize::from(first) % GlueTask::ALL.len()];
    consume(parse_glue_tsv(rest, Path::new("data.tsv"), task)).is_some()
}
