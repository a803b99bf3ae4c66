//! Shared pieces of the training tests: the tiny fixture BERT, a word-level tokenizer over its
//! ids and a learnable synthetic task.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor, TensorData};
use peft_core::{AdapterConfig, BottleneckWidth};
use peft_models::head::{BertClassifier, HeadPooling};
use peft_models::tokenizer::TextTokenizer;
use peft_train::data::{TextClassificationItem, TokenizedDataset};
use peft_train::optim::{OptimConfig, Schedule};
use peft_train::trainer::{
    ClassificationData, ClassifierTrainingConfig, RunOptions, TrainingMethod,
};
use tokenizers::Tokenizer;
use tokenizers::models::wordlevel::WordLevel;
use tokenizers::pre_tokenizers::whitespace::Whitespace;

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tiny-bert")
}

/// A word-level tokenizer over the tiny BERT's 99 ids: [PAD] 0, [UNK] 1, `w4`..`w98`. No
/// [CLS]: the first word sits where the head reads, which a frozen random base needs for the
/// synthetic task to be learnable in a few steps.
pub fn tokenizer() -> Arc<TextTokenizer> {
    let mut vocab: Vec<(String, u32)> = ["[PAD]", "[UNK]"]
        .iter()
        .enumerate()
        .map(|(i, t)| (t.to_string(), i as u32))
        .collect();
    vocab.extend((4..99u32).map(|i| (format!("w{i}"), i)));
    let model = WordLevel::builder()
        .vocab(vocab.into_iter().collect())
        .unk_token("[UNK]".into())
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut tok = Tokenizer::new(model);
    tok.with_pre_tokenizer(Some(Whitespace));
    Arc::new(TextTokenizer::from_tokenizer(tok).unwrap_or_else(|e| panic!("{e}")))
}

/// Learnable: the first word says the class (one of 8 words per class), then 1-4 noise words;
/// lengths vary so batches are padded.
pub fn data(tok: &TextTokenizer) -> ClassificationData {
    let make = |range: std::ops::Range<u32>| -> Vec<TextClassificationItem> {
        range
            .map(|k| {
                let label = (k % 2) as usize;
                let first = if label == 0 {
                    4 + (k * 7) % 8
                } else {
                    90 + (k * 5) % 8
                };
                let noise = (0..1 + k % 4).map(|j| format!("w{}", 20 + (k * 13 + j * 29) % 60));
                let words: Vec<String> =
                    std::iter::once(format!("w{first}")).chain(noise).collect();
                TextClassificationItem {
                    text_a: words.join(" "),
                    text_b: None,
                    label,
                }
            })
            .collect()
    };
    let encode = |items: &[TextClassificationItem]| {
        TokenizedDataset::new(items, tok)
            .unwrap_or_else(|e| panic!("{e}"))
            .items()
            .to_vec()
    };
    ClassificationData {
        train: encode(&make(0..160)),
        valid: encode(&make(160..224)),
        first_epoch_order: None,
    }
}

pub fn model(device: &Device) -> BertClassifier {
    let (model, _) = BertClassifier::from_pretrained(fixtures(), 2, HeadPooling::DenseTanh, device)
        .unwrap_or_else(|e| panic!("{e}"));
    model
}

pub fn config(epochs: usize) -> ClassifierTrainingConfig {
    let mut adapters = AdapterConfig::houlsby(4.0);
    adapters.bottleneck.width = BottleneckWidth::BottleneckDim(8);
    adapters.bottleneck.dropout = 0.1;
    ClassifierTrainingConfig::new()
        .with_method(TrainingMethod::Adapter { config: adapters })
        .with_optim(
            OptimConfig::new()
                .with_lr(1e-2)
                .with_schedule(Schedule::WarmupLinear { warmup_ratio: 0.1 }),
        )
        .with_epochs(epochs)
        .with_batch_size(16)
        .with_eval_batch_size(32)
        .with_seed(7)
        .with_log_every(3)
}

pub fn quiet() -> RunOptions {
    RunOptions {
        quiet: true,
        ..RunOptions::default()
    }
}

/// Options that stop `interrupter` after `k` optimizer steps (as Ctrl-C would).
pub fn stop_after(k: usize, interrupter: &burn::train::Interrupter) -> RunOptions {
    let i = interrupter.clone();
    RunOptions {
        interrupter: Some(interrupter.clone()),
        quiet: true,
        on_step: Some(Arc::new(move |step| {
            if step == k {
                i.stop(Some("test interrupt"));
            }
        })),
        ..RunOptions::default()
    }
}

/// A copy of the fixture directory `name` in a temporary directory, with the config's
/// `keys` (dropout probabilities) set to 0.
pub fn fixture_without(name: &str, keys: &[&str]) -> tempfile::TempDir {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures")
        .join(name);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    for f in ["model.safetensors", "config.json"] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap_or_else(|e| panic!("{e}"));
    }
    let path = dir.path().join("config.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
    let mut json: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    for k in keys {
        json[*k] = serde_json::json!(0.0);
    }
    std::fs::write(&path, json.to_string()).unwrap_or_else(|e| panic!("{e}"));
    dir
}

/// Every parameter of `a` and `b` equal bit for bit.
pub fn assert_same<M: Module>(a: &M, b: &M, what: &str) {
    let (va, vb) = (values(a), values(b));
    assert_eq!(va.len(), vb.len());
    for ((path, x), (path_b, y)) in va.iter().zip(&vb) {
        assert_eq!(path, path_b);
        assert_eq!(x, y, "{path} differs: {what}");
    }
}

pub fn values<M: Module>(module: &M) -> Vec<(String, TensorData)> {
    struct V(Vec<String>, Vec<(String, TensorData)>);
    impl ModuleVisitor for V {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.0.push(name.into());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.0.pop();
        }
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            self.1.push((self.0.join("."), p.val().into_data()));
        }
    }
    let mut v = V(vec![], vec![]);
    module.visit(&mut v);
    v.1
}

/// The largest absolute difference between the parameters of `a` and `b` (same structure).
pub fn max_difference<M: Module>(a: &M, b: &M) -> f32 {
    let (va, vb) = (values(a), values(b));
    assert_eq!(va.len(), vb.len());
    let mut worst = 0.0f32;
    for ((path, x), (path_b, y)) in va.iter().zip(&vb) {
        assert_eq!(path, path_b);
        let x = x
            .clone()
            .try_to_vec::<f32>()
            .unwrap_or_else(|e| panic!("{e:?}"));
        let y = y
            .clone()
            .try_to_vec::<f32>()
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(x.len(), y.len(), "{path}");
        for (p, q) in x.iter().zip(&y) {
            worst = worst.max((p - q).abs());
        }
    }
    worst
}
