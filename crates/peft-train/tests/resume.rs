//! Interrupting a run (burn-train's `Interrupter`, as Ctrl-C does) and resuming it gives the
//! same adapter bit for bit as an uninterrupted run; resuming with other settings, or a
//! finished run, are typed errors; `overwrite` starts over. Its own test binary (process): the
//! device RNG that dropout draws from is shared by all tests of a process.

mod common;

use burn::tensor::Device;
use burn::train::Interrupter;
use common::{assert_same, config, data, model, quiet, stop_after, tokenizer};
use peft_core::AdapterInit;
use peft_train::TrainError;
use peft_train::checkpoint::{complete_checkpoints, last_checkpoint};
use peft_train::data::ClassificationBatcher;
use peft_train::optim::{OptimConfig, Schedule};
use peft_train::trainer::{ClassifierTrainingConfig, RunOptions, TrainingMethod, train_classifier};

/// Houlsby adapters with non-zero (AdapterHub `bert`) init and dropout 0.1 (plus the fixture's
/// and the head's dropout), warm-up + linear decay: the LR at the resume step differs from a
/// restart's. 3 epochs of 10 steps, a checkpoint every 4 steps.
fn run_config() -> ClassifierTrainingConfig {
    let mut c = config(3).with_checkpoint_every(4);
    if let TrainingMethod::Adapter { config } = &mut c.method {
        config.bottleneck.init = AdapterInit::Bert;
        assert!(config.bottleneck.dropout > 0.0);
    }
    c
}

#[test]
fn an_interrupted_and_resumed_run_equals_an_uninterrupted_one() {
    let device = Device::flex().autodiff();
    let tok = tokenizer();
    let data = data(&tok);
    let batcher = ClassificationBatcher::new(tok.clone());
    let fresh = || {
        // The head's init draws from the device RNG: seed before building it.
        device.seed(3);
        model(&device)
    };

    let straight = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (a, report_a) = train_classifier(
        fresh(),
        &data,
        batcher.clone(),
        &run_config(),
        straight.path(),
        quiet(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report_a.steps, 30);

    // Stopped after 13 optimizer steps: mid-epoch 2, one step after the checkpoint of step 12.
    let split = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let interrupter = Interrupter::new();
    let (_, report) = train_classifier(
        fresh(),
        &data,
        batcher.clone(),
        &run_config(),
        split.path(),
        stop_after(13, &interrupter),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(report.interrupted);
    assert_eq!(report.steps, 13);
    let ckpt = split.path().join("checkpoints");
    assert_eq!(complete_checkpoints(&ckpt), vec![12, 13]);
    let state = last_checkpoint(&ckpt)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no checkpoint"));
    assert_eq!(
        (state.step, state.epochs_done, state.batches_done),
        (13, 1, 3)
    );

    // Other settings are refused, naming what differs; nothing is trained.
    let other_lr = run_config().with_optim(
        OptimConfig::new()
            .with_lr(2e-2)
            .with_schedule(Schedule::WarmupLinear { warmup_ratio: 0.1 }),
    );
    let other_method = run_config().with_method(TrainingMethod::HeadOnly);
    for (config, want) in [(other_lr, "optim.lr"), (other_method, "method.")] {
        match train_classifier(
            fresh(),
            &data,
            batcher.clone(),
            &config,
            split.path(),
            quiet(),
        ) {
            Err(TrainError::ResumeMismatch { field, .. }) => {
                assert!(field.starts_with(want), "{field}")
            }
            other => panic!("expected ResumeMismatch, got {:?}", other.map(|(_, r)| r)),
        }
    }
    let other_batch = run_config().with_batch_size(8);
    assert!(matches!(
        train_classifier(fresh(), &data, batcher.clone(), &other_batch, split.path(), quiet()),
        Err(TrainError::ResumeMismatch { field, .. }) if field == "batch_size"
    ));

    // A new process would load the base again (and draw another head: the checkpoint replaces
    // it); the checkpoint restores adapters, head, optimizer, schedule and data position.
    device.seed(999);
    let (b, report) = train_classifier(
        model(&device),
        &data,
        batcher.clone(),
        &run_config(),
        split.path(),
        quiet(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.resumed_from_step, Some(13));
    assert_eq!(report.steps, 30);
    assert!(!report.interrupted);
    // The epochs trained to their end in this process (2, resumed mid-way, and 3) are reported
    // under their own numbers (they were once labelled from 1 and dropped).
    assert_eq!(
        report.epochs.iter().map(|e| e.epoch).collect::<Vec<_>>(),
        vec![2, 3]
    );
    assert_same(&a, &b, "resumed vs uninterrupted run");
    assert_eq!(report.final_eval, {
        let mut e = report_a.final_eval.clone();
        e.examples_per_sec = report.final_eval.examples_per_sec;
        e
    });

    // The finished run is reported as such, not retrained.
    match train_classifier(
        fresh(),
        &data,
        batcher.clone(),
        &run_config(),
        split.path(),
        quiet(),
    ) {
        Err(e @ TrainError::RunFinished { epochs: 3, .. }) => {
            assert!(e.to_string().contains("--overwrite"), "{e}")
        }
        other => panic!("expected RunFinished, got {:?}", other.map(|(_, r)| r)),
    }
    // Overwrite starts over: the same result as the first uninterrupted run.
    let (c, report) = train_classifier(
        fresh(),
        &data,
        batcher,
        &run_config(),
        split.path(),
        RunOptions {
            overwrite: true,
            ..quiet()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.resumed_from_step, None);
    assert_same(&a, &c, "overwritten vs first run");
}
