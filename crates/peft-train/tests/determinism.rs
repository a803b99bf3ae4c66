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

/// Environment variable that turns [`child_run_from_scratch`] into a real run writing its
/// result to the path it names (only set by [`two_processes_agree_bit_for_bit`]).
const CHILD_OUT: &str = "BURN_PEFT_DETERMINISM_CHILD_OUT";

/// What a child process writes: every parameter's bits, then the losses' bits.
fn fingerprint(model: &BertClassifier, report: &peft_train::trainer::TrainingReport) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    for (path, data) in common::values(model) {
        let _ = write!(s, "{path}:");
        for v in data.iter::<f32>() {
            let _ = write!(s, "{:08x}", v.to_bits());
        }
        s.push('\n');
    }
    for e in &report.epochs {
        let _ = writeln!(
            s,
            "epoch {:?} {:?}",
            e.train_loss.map(f64::to_bits),
            e.valid_loss.map(f64::to_bits)
        );
    }
    let _ = writeln!(s, "final {}", report.final_eval.loss.to_bits());
    s
}

/// The child half of [`two_processes_agree_bit_for_bit`]: a no-op unless [`CHILD_OUT`] is set.
#[test]
fn child_run_from_scratch() {
    let Some(path) = std::env::var_os(CHILD_OUT) else {
        return;
    };
    let _lock = SERIAL.lock();
    let tok = tokenizer();
    let data = data(&tok);
    let out = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (model, report) = train_classifier_from_dir(
        fixtures(),
        2,
        HeadPooling::DenseTanh,
        &Device::flex(),
        &data,
        ClassificationBatcher::new(tok.clone()),
        &config(2),
        out.path(),
        quiet(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(path, fingerprint(&model, &report)).unwrap_or_else(|e| panic!("{e}"));
}

/// "Same command, same seed, same backend: the same numbers bit for bit." Two separate
/// processes (what two runs of the example are) train from scratch with dropout on: every
/// parameter and loss agrees to the bit. Unlike two runs in one process, this also catches
/// state that differs between processes (entropy-seeded RNGs, hash-map orders, threads).
#[test]
fn two_processes_agree_bit_for_bit() {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let run = |name: &str| {
        let path = dir.path().join(name);
        let status = std::process::Command::new(&exe)
            .args(["child_run_from_scratch", "--exact", "--test-threads=1"])
            .env(CHILD_OUT, &path)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(status.success(), "child run {name} failed");
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"))
    };
    let (a, b) = (run("a"), run("b"));
    assert!(a.lines().count() > 10, "the child wrote its parameters");
    if a != b {
        let first = a
            .lines()
            .zip(b.lines())
            .find(|(x, y)| x != y)
            .map(|(x, _)| x.split(':').next().unwrap_or("").to_string());
        panic!("two processes differ, first at {first:?}");
    }
}
