//! Resuming from a checkpoint continues exactly. Its own test binary (process): the device
//! RNG that dropout draws from is shared by all tests of a process.

mod common;

use burn::tensor::Device;
use common::{config, data, model, quiet, tokenizer, values};
use peft_train::data::ClassificationBatcher;
use peft_train::optim::{OptimConfig, Schedule};
use peft_train::trainer::ClassifierTrainingConfig;
use peft_train::trainer::train_classifier;

#[test]
fn resuming_from_a_checkpoint_equals_an_uninterrupted_run() {
    // Stopping after epoch 1 is simulated by a run of 1 epoch: with a decaying schedule that run
    // would have a shorter schedule than the 2-epoch one, so use a constant rate.
    let config = |epochs: usize| -> ClassifierTrainingConfig {
        config(epochs).with_optim(
            OptimConfig::new()
                .with_lr(1e-2)
                .with_schedule(Schedule::Constant),
        )
    };
    let device = Device::flex().autodiff();
    let tok = tokenizer();
    let data = data(&tok);
    let batcher = ClassificationBatcher::new(tok.clone());

    // The head is created before training seeds the device: seed here so both runs start alike.
    device.seed(3);
    let straight = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (a, _) = train_classifier(
        model(&device),
        &data,
        batcher.clone(),
        &config(2),
        straight.path(),
        quiet(),
    )
    .unwrap_or_else(|e| panic!("{e}"));

    let split = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    device.seed(3);
    train_classifier(
        model(&device),
        &data,
        batcher.clone(),
        &config(1),
        split.path(),
        quiet(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // A new process would load the base again; the checkpoint restores adapters, head,
    // optimizer and schedule.
    let (b, report) = train_classifier(
        model(&device),
        &data,
        batcher,
        &config(2),
        split.path(),
        quiet(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.resumed_from_epoch, Some(1));
    assert_eq!(report.epochs.len(), 1);

    let (va, vb) = (values(&a), values(&b));
    assert_eq!(va.len(), vb.len());
    for ((path, x), (_, y)) in va.iter().zip(&vb) {
        assert_eq!(
            x, y,
            "{path} differs between the resumed and the uninterrupted run"
        );
    }
}
