//! Adapter training on the tiny fixture BERT with burn-train's Learner: learning, frozen base,
//! typed errors. (Exact resume lives in `resume.rs`, a process of its own: the device RNG is
//! shared by the tests of one process.)

mod common;

use burn::tensor::Device;
use common::{config, data, model, quiet, tokenizer, values};
use peft_core::{AdapterFile, AdapterMethod, Trainable, save_adapter};
use peft_models::bert::BertModel;
use peft_models::head::HeadPooling;
use peft_train::TrainError;
use peft_train::adapter_io::{FULL_MODEL_FILE, load_classifier_adapter, load_full_classifier};
use peft_train::checkpoint::last_checkpoint;
use peft_train::data::ClassificationBatcher;
use peft_train::optim::{OptimConfig, Schedule};
use peft_train::trainer::{TrainingMethod, evaluate, train_classifier, train_classifier_from_dir};

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
    // The last checkpoint is the end of epoch 3: optimizer step 30.
    let ckpt = out.path().join("checkpoints/model-30.bpk");
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
    let head = m.head_mut().unwrap_or_else(|e| panic!("{e}"));
    head.classifier.weight = head.classifier.weight.clone().map(|w| w * f64::NAN);
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

#[test]
fn early_stopping_ends_the_run_at_the_expected_epoch() {
    // A learning rate so small that no weight moves: validation accuracy is the same every
    // epoch, so with patience 2 the best epoch stays 1 and the run stops after epoch 3 of 6.
    let device = Device::flex().autodiff();
    let tok = tokenizer();
    let data = data(&tok);
    let config = config(6)
        .with_optim(
            OptimConfig::new()
                .with_lr(1e-30)
                .with_schedule(Schedule::Constant),
        )
        .with_early_stopping_patience(Some(2));
    let out = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let batcher = ClassificationBatcher::new(tok);
    let (trained, report) = train_classifier(
        model(&device),
        &data,
        batcher.clone(),
        &config,
        out.path(),
        quiet(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let accuracies: Vec<f64> = report
        .epochs
        .iter()
        .filter_map(|e| e.valid_accuracy)
        .collect();
    assert_eq!(accuracies.len(), 3, "{report:?}");
    assert!(
        accuracies.iter().all(|&a| a == accuracies[0]),
        "{accuracies:?}"
    );
    assert!(report.early_stopped);
    assert_eq!(report.steps, 30);
    // The final weights are epoch 3's, which early stopping had just scored: that score is the
    // final evaluation (3 passes over the validation set, not 4), and it agrees with
    // `evaluate` on the returned model.
    assert_eq!(report.valid_evaluations, 3, "{report:?}");
    assert_eq!(Some(report.final_eval.accuracy), accuracies.last().copied());
    assert_eq!(report.final_eval.examples, data.valid.len());
    let scored =
        evaluate(&trained, &data.valid, &batcher, 64, &device).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(scored.correct, report.final_eval.correct);
    assert!(
        (scored.loss - report.final_eval.loss).abs() < 1e-5,
        "{scored:?}"
    );
    let state = last_checkpoint(out.path().join("checkpoints"))
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no checkpoint"));
    assert!(state.finished && state.early_stopped && state.epochs_done == 3);
    // Reported as finished, not resumed for the 3 epochs left.
    let again = train_classifier(model(&device), &data, batcher, &config, out.path(), quiet());
    assert!(
        matches!(
            &again,
            Err(TrainError::RunFinished {
                epochs: 3,
                early_stopped: true,
                ..
            })
        ),
        "{:?}",
        again.map(|(_, r)| r)
    );
}

#[test]
fn full_fine_tuning_is_saved_as_a_model_not_an_adapter() {
    let device = Device::flex().autodiff();
    let tok = tokenizer();
    let data = data(&tok);
    let out = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let config = config(1).with_method(TrainingMethod::Full);
    // Without the base directory there is nowhere to take config.json from: refused up front.
    let err = train_classifier(
        model(&device),
        &data,
        ClassificationBatcher::new(tok.clone()),
        &config,
        out.path(),
        quiet(),
    );
    assert!(matches!(err, Err(TrainError::InvalidConfig(m)) if m.contains("base_dir")));

    let (trained, report) = train_classifier_from_dir(
        common::fixtures(),
        2,
        HeadPooling::DenseTanh,
        &device,
        &data,
        ClassificationBatcher::new(tok),
        &config,
        out.path(),
        quiet(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let dir = out.path().join("model");
    assert_eq!(report.adapter_dir, dir);
    assert!(!out.path().join("adapter").exists());
    for f in ["model.safetensors", "config.json", FULL_MODEL_FILE] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }

    // The whole classifier loads back exactly; the encoder through the plain HF path.
    let plain = Device::flex();
    let loaded = load_full_classifier(&dir, &plain).unwrap_or_else(|e| panic!("{e}"));
    common::assert_same(&trained, &loaded, "full model reloaded");
    let (encoder, _) = BertModel::from_pretrained(&dir, &plain).unwrap_or_else(|e| panic!("{e}"));
    common::assert_same(&trained.bert, &encoder, "encoder via from_pretrained");
    // The encoder really trained (the comparison is not with the untouched base).
    let base = model(&plain);
    assert_ne!(values(&base.bert), values(&encoder));

    // Loading the model directory as an adapter over a shared base is a typed error.
    let mut shared = model(&plain);
    let err = load_classifier_adapter(&mut shared, &dir, &plain);
    assert!(
        matches!(err, Err(TrainError::NotAnAdapter { .. })),
        "{err:?}"
    );
    // So is an adapter file whose saved tensors include the base (older full fine-tunings).
    let old = out.path().join("old-full");
    let file = AdapterFile::new(
        AdapterMethod::HeadOnly,
        shared.base_info(),
        &Trainable::none().with_pattern(".*"),
    )
    .with_head(shared.head_info());
    save_adapter(&loaded, &old, &file).unwrap_or_else(|e| panic!("{e}"));
    let err = load_classifier_adapter(&mut shared, &old, &plain);
    assert!(
        matches!(err, Err(TrainError::NotAnAdapter { .. })),
        "{err:?}"
    );
    common::assert_same(
        &shared.bert,
        &base.bert,
        "the shared base after refused loads",
    );
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
