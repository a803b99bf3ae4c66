//! Adapter training on the tiny fixture BERT with burn-train's Learner: learning, frozen base,
//! typed errors. (Exact resume lives in `resume.rs`, a process of its own: the device RNG is
//! shared by the tests of one process.)

mod common;

use burn::tensor::Device;
use common::{config, data, model, quiet, tokenizer, values};
use peft_train::TrainError;
use peft_train::data::ClassificationBatcher;
use peft_train::trainer::train_classifier;

#[test]
fn adapters_learn_a_synthetic_task_and_the_base_stays_frozen() {
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
        &config(3),
        out.path(),
        quiet(),
    )
    .unwrap_or_else(|e| panic!("{e}"));

    // 160 examples / 16 = 10 steps per epoch, 30 steps.
    assert_eq!(report.epochs.len(), 3, "{report:?}");
    let first = report.epochs[0].train_loss.unwrap_or(f64::NAN);
    let last = report.epochs[2].train_loss.unwrap_or(f64::NAN);
    assert!(
        last < 0.8 * first,
        "training loss should drop: {first} -> {last}"
    );
    let (acc0, acc2) = (
        report.epochs[0].train_accuracy.unwrap_or(100.0),
        report.epochs[2].train_accuracy.unwrap_or(0.0),
    );
    assert!(
        acc2 > acc0,
        "training accuracy should rise: {acc0} -> {acc2}"
    );
    assert!(
        report.final_eval.accuracy >= 90.0,
        "held-out accuracy {}",
        report.final_eval.accuracy
    );

    // The frozen base is bit-identical (it had no adapters before training).
    let after: Vec<_> = values(&trained.bert)
        .into_iter()
        .filter(|(p, _)| !p.contains("adapter"))
        .collect();
    assert_eq!(before.len(), after.len());
    for ((path, b), (path_after, a)) in before.iter().zip(&after) {
        assert_eq!(path, path_after);
        assert_eq!(b, a, "{path} changed");
    }
    // Artefacts: adapter + head only, config and metrics.
    let weights = report.adapter_dir.join(peft_core::file::WEIGHTS_FILE);
    let bytes = std::fs::metadata(&weights).map(|m| m.len()).unwrap_or(0);
    assert!(bytes > 0 && bytes < 40_000, "adapter file is {bytes} bytes");
    assert!(out.path().join("training_config.json").is_file());
    assert!(out.path().join("metrics.json").is_file());
    let ckpt = out.path().join("checkpoints/model-3.bpk");
    let ckpt_bytes = std::fs::metadata(&ckpt)
        .map(|m| m.len())
        .unwrap_or(u64::MAX);
    assert!(
        ckpt_bytes < 60_000,
        "checkpoint holds the base? {ckpt_bytes} bytes"
    );
}

#[test]
fn a_nan_loss_stops_with_a_typed_error() {
    let device = Device::flex().autodiff();
    let tok = tokenizer();
    let data = data(&tok);
    let mut m = model(&device);
    m.head.classifier.weight = m.head.classifier.weight.map(|w| w * f64::NAN);
    let out = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let err = train_classifier(
        m,
        &data,
        ClassificationBatcher::new(tok),
        &config(1),
        out.path(),
        quiet(),
    );
    match err {
        Err(TrainError::NonFiniteLoss {
            step, checkpoint, ..
        }) => {
            assert_eq!(step, 1);
            assert_eq!(checkpoint, "none");
        }
        other => panic!("expected NonFiniteLoss, got {:?}", other.map(|(_, r)| r)),
    }
    assert!(
        !out.path().join("adapter").exists(),
        "no adapter is written after a failed run"
    );
}

#[test]
fn bad_labels_and_configs_are_typed_errors() {
    let device = Device::flex().autodiff();
    let tok = tokenizer();
    let mut data = data(&tok);
    data.train[3].label = 5;
    let out = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let batcher = ClassificationBatcher::new(tok);
    let err = train_classifier(
        model(&device),
        &data,
        batcher.clone(),
        &config(1),
        out.path(),
        quiet(),
    );
    assert!(matches!(err, Err(TrainError::InvalidConfig(m)) if m.contains("label 5")));
    data.train[3].label = 1;
    let err = train_classifier(
        model(&device),
        &data,
        batcher.clone(),
        &config(1).with_batch_size(0),
        out.path(),
        quiet(),
    );
    assert!(matches!(err, Err(TrainError::InvalidConfig(_))));
    let err = train_classifier(
        model(&Device::flex()),
        &data,
        batcher,
        &config(1),
        out.path(),
        quiet(),
    );
    assert!(matches!(err, Err(TrainError::InvalidConfig(m)) if m.contains("autodiff")));
}

/// Items that do not fit the model (too long, token id >= vocab_size, segment id >=
/// type_vocab_size) are typed errors naming the row, the value and the limit, before any batch
/// reaches the model, in training and in evaluation.
#[test]
fn items_that_do_not_fit_the_model_are_typed_errors() {
    use peft_models::ModelError;
    let device = Device::flex().autodiff();
    let tok = tokenizer();
    let batcher = ClassificationBatcher::new(tok.clone());
    let out = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    type Case = (
        usize,
        fn(&mut peft_train::data::EncodedItem),
        fn(&ModelError) -> bool,
    );
    let cases: [Case; 3] = [
        (
            5,
            |i| i.input_ids = vec![4; 65],
            |e| matches!(e, ModelError::SequenceTooLong { len: 65, max: 64 }),
        ),
        (
            7,
            |i| i.input_ids[1] = 99,
            |e| {
                matches!(
                    e,
                    ModelError::TokenIdOutOfRange {
                        id: 99,
                        vocab_size: 99
                    }
                )
            },
        ),
        (
            9,
            |i| i.token_type_ids = vec![2; i.input_ids.len()],
            |e| {
                matches!(
                    e,
                    ModelError::TokenTypeOutOfRange {
                        id: 2,
                        type_vocab_size: 2
                    }
                )
            },
        ),
    ];
    for (index, spoil, expected) in cases {
        let mut data = data(&tok);
        spoil(&mut data.train[index]);
        let err = train_classifier(
            model(&device),
            &data,
            batcher.clone(),
            &config(1),
            out.path(),
            quiet(),
        );
        match err {
            Err(TrainError::Model(ModelError::InvalidRow { row, source })) => {
                assert_eq!(row, index);
                assert!(expected(&source), "{source:?}");
            }
            other => panic!("expected a row error, got {:?}", other.map(|(_, r)| r)),
        }
        let err = peft_train::trainer::evaluate(
            &model(&Device::flex()),
            &data.train,
            &batcher,
            8,
            &Device::flex(),
        );
        assert!(
            matches!(&err, Err(TrainError::Model(ModelError::InvalidRow { row, .. })) if *row == index),
            "{err:?}"
        );
    }
}
