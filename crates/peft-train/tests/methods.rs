//! LoRA, IA³, prefix and prompt tuning through the same training entry points as bottleneck adapters
//! (`train_classifier`, `train_causal_lm`): the loss drops, the base stays bit-identical, and the
//! saved adapter directory reloads onto a fresh base with the trained model's results.

mod common;

use burn::module::Module;
use burn::tensor::Device;
use common::{config, data, model, quiet, tokenizer, values};
use peft_core::{
    Ia3Config, LinearTarget, LoraConfig, MethodConfig, PrefixTuningConfig, PromptTuningConfig,
};
use peft_train::adapter_io::load_classifier_adapter;
use peft_train::data::ClassificationBatcher;
use peft_train::trainer::{TrainingMethod, evaluate, train_classifier};

fn classify_with(method: TrainingMethod) {
    let (name, trained, report, data, tok, _out) = train_only(method, 1e-2);
    // A fresh base + the adapter directory reproduces the evaluation exactly.
    let plain = Device::flex();
    let batcher = ClassificationBatcher::new(tok.clone());
    let want = evaluate(&trained.valid(), &data.valid, &batcher, 32, &plain)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut fresh = model(&plain);
    load_classifier_adapter(&mut fresh, &report.adapter_dir, &plain)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let got = evaluate(&fresh, &data.valid, &batcher, 32, &plain).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((got.correct, got.loss), (want.correct, want.loss), "{name}");
}

type Trained = (
    String,
    peft_models::head::BertClassifier,
    peft_train::trainer::TrainingReport,
    peft_train::trainer::ClassificationData,
    std::sync::Arc<peft_models::tokenizer::TextTokenizer>,
    tempfile::TempDir,
);

/// Train with `method` for 3 epochs at learning rate `lr`: the loss drops, the base is
/// bit-identical, the method's tensors changed.
/// The device RNG (initialisation, dropout, per-batch reseeding) is one per process: tests
/// that train take turns, or their runs interleave draws and stop being reproducible.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn train_only(method: TrainingMethod, lr: f64) -> Trained {
    let _turn = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let name = method.name();
    let device = Device::flex().autodiff();
    let tok = tokenizer();
    let data = data(&tok);
    let base = model(&device);
    let before = values(&base.bert);
    let out = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (trained, report) = train_classifier(
        base,
        &data,
        ClassificationBatcher::new(tok.clone()),
        &config(3).with_method(method).with_optim(
            peft_train::optim::OptimConfig::new()
                .with_lr(lr)
                .with_schedule(peft_train::optim::Schedule::WarmupLinear { warmup_ratio: 0.1 }),
        ),
        out.path(),
        quiet(),
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"));
    let first = report.epochs[0].train_loss.unwrap_or(f64::NAN);
    let last = report.epochs[2].train_loss.unwrap_or(f64::NAN);
    assert!(last < 0.9 * first, "{name}: loss {first} -> {last}");
    assert!(report.adapters_attached > 0, "{name}");

    // The frozen base is bit-identical; the method's tensors changed.
    let after = values(&trained.bert);
    let (adapter, base_after): (Vec<_>, Vec<_>) =
        after.iter().partition(|(p, _)| p.contains(".adapters."));
    assert_eq!(before.len(), base_after.len(), "{name}");
    for ((path, b), (path_after, a)) in before.iter().zip(&base_after) {
        assert_eq!(path, path_after);
        assert_eq!(b, a, "{name}: {path} changed");
    }
    assert!(!adapter.is_empty(), "{name}: no adapter tensors");
    (name, trained, report, data, tok, out)
}

#[test]
fn prefix_tuning_trains_with_train_classifier() {
    let (name, trained, ..) = train_only(
        TrainingMethod::PrefixTuning {
            config: PrefixTuningConfig::default()
                .with_prefix_length(4)
                .with_bottleneck_size(16),
        },
        1e-2,
    );
    let info = peft_core::adapters(&trained);
    assert_eq!(info.len(), 1, "{name}");
    assert_eq!(info[0].config.kind(), peft_core::MethodKind::PrefixTuning);
}

#[test]
fn prompt_tuning_trains_with_train_classifier() {
    let (name, trained, ..) = train_only(
        TrainingMethod::PromptTuning {
            config: PromptTuningConfig::default().with_prompt_length(4),
        },
        1e-1,
    );
    let info = peft_core::adapters(&trained);
    assert_eq!(
        info[0].config.kind(),
        peft_core::MethodKind::PromptTuning,
        "{name}"
    );
}

#[test]
fn lora_trains_with_train_classifier_and_reloads() {
    classify_with(TrainingMethod::Lora {
        config: LoraConfig::new(4, 8.0).with_targets(vec![
            LinearTarget::Query,
            LinearTarget::Value,
            LinearTarget::FeedForwardOut,
        ]),
    });
}

#[test]
fn ia3_trains_with_train_classifier_and_reloads() {
    classify_with(TrainingMethod::Ia3 {
        config: Ia3Config::liu2022(),
    });
}

#[test]
fn method_configs_are_one_adapter_kind() {
    // The training method tells the named adapter it adds; configs serialise by method.
    let lora = TrainingMethod::Lora {
        config: LoraConfig::new(8, 16.0),
    };
    assert_eq!(
        lora.adapter_config(),
        Some(MethodConfig::Lora(LoraConfig::new(8, 16.0)))
    );
    let json = serde_json::to_string(&lora).unwrap_or_default();
    let back: TrainingMethod = serde_json::from_str(&json).unwrap_or(TrainingMethod::HeadOnly);
    assert_eq!(back, lora, "{json}");
    assert_eq!(TrainingMethod::HeadOnly.adapter_config(), None);
}
