//! Same settings, same numbers: two runs from scratch through the library path the `sst2`
//! example uses agree bit for bit, and gradient accumulation (2 x 16) matches one large batch
//! (1 x 32). Its own test binary (process), and the tests take a lock: the device RNG that
//! initialisation and dropout draw from is shared by all tests of a process.

mod common;

use std::sync::Mutex;

use burn::nn::DropoutConfig;
use burn::tensor::Device;
use common::{
    assert_same, config, data, fixture_without, fixtures, max_difference, quiet, tokenizer,
};
use peft_core::AdapterInit;
use peft_models::head::{BertClassifier, HeadPooling};
use peft_train::data::ClassificationBatcher;
use peft_train::trainer::{TrainingMethod, train_classifier, train_classifier_from_dir};

static SERIAL: Mutex<()> = Mutex::new(());

#[test]
fn two_runs_from_scratch_agree_bit_for_bit() {
    let _lock = SERIAL.lock();
    let tok = tokenizer();
    let data = data(&tok);
    let config = config(2);
    let run = || {
        let out = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        train_classifier_from_dir(
            fixtures(),
            2,
            HeadPooling::DenseTanh,
            &Device::flex(),
            &data,
            ClassificationBatcher::new(tok.clone()),
            &config,
            out.path(),
            quiet(),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    };
    let (a, ra) = run();
    // Something else drawing from the device RNG in between must not matter.
    let _ = burn::tensor::Tensor::<2>::random(
        [7, 7],
        burn::tensor::Distribution::Default,
        &Device::flex().autodiff(),
    );
    let (b, rb) = run();
    assert_same(&a, &b, "second run from scratch");
    assert_eq!(ra.final_eval.correct, rb.final_eval.correct);
    assert_eq!(ra.final_eval.loss.to_bits(), rb.final_eval.loss.to_bits());
    assert_eq!(ra.epochs.len(), rb.epochs.len());
    for (x, y) in ra.epochs.iter().zip(&rb.epochs) {
        assert_eq!(
            x.train_loss.map(f64::to_bits),
            y.train_loss.map(f64::to_bits)
        );
        assert_eq!(
            x.valid_loss.map(f64::to_bits),
            y.valid_loss.map(f64::to_bits)
        );
        assert_eq!(x.valid_accuracy, y.valid_accuracy);
    }
}

#[test]
fn gradient_accumulation_matches_one_large_batch() {
    let _lock = SERIAL.lock();
    let dir = fixture_without(
        "tiny-bert",
        &["hidden_dropout_prob", "attention_probs_dropout_prob"],
    );
    let tok = tokenizer();
    let data = data(&tok);
    let device = Device::flex().autodiff();
    // Dropout off everywhere, non-zero adapter init; one epoch of 160 examples = 5 steps.
    let mut base = config(1);
    if let TrainingMethod::Adapter { config } = &mut base.method {
        config.bottleneck.dropout = 0.0;
        config.bottleneck.init = AdapterInit::Bert;
    }
    let run = |batch: usize, accumulation: usize| {
        device.seed(5);
        let (mut model, _) =
            BertClassifier::from_pretrained(dir.path(), 2, HeadPooling::DenseTanh, &device)
                .unwrap_or_else(|e| panic!("{e}"));
        let head = model.head_mut().unwrap_or_else(|e| panic!("{e}"));
        head.dropout = DropoutConfig::new(0.0).init();
        let initial = head.clone();
        let out = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (trained, report) = train_classifier(
            model,
            &data,
            ClassificationBatcher::new(tok.clone()),
            &base
                .clone()
                .with_batch_size(batch)
                .with_grad_accumulation(accumulation),
            out.path(),
            quiet(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(report.steps, 5);
        (trained, initial)
    };
    let (one, initial) = run(32, 1);
    let (two, _) = run(16, 2);
    let worst = max_difference(&one, &two);
    assert!(worst < 1e-5, "2 x 16 vs 1 x 32: max difference {worst}");
    // The steps moved the weights (the comparison is not between two untouched models).
    let moved = max_difference(one.head().unwrap_or_else(|e| panic!("{e}")), &initial);
    assert!(moved > 1e-3, "the head moved only {moved}");
}
