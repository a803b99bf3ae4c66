//! Resuming a causal-LM run from a checkpoint continues exactly. Its own test binary (process):
//! the device RNG that dropout draws from is shared by all tests of a process.

mod common;

use std::path::PathBuf;

use burn::tensor::Device;
use common::values;
use peft_core::{AdapterConfig, BottleneckWidth};
use peft_models::gpt2::Gpt2Model;
use peft_train::lm::{LmData, LmTrainingConfig, Remainder, chunk_tokens, train_causal_lm};
use peft_train::optim::{OptimConfig, Schedule};
use peft_train::trainer::RunOptions;

fn model(device: &Device) -> Gpt2Model {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tiny-gpt2");
    let (model, _) = Gpt2Model::from_pretrained(dir, device).unwrap_or_else(|e| panic!("{e}"));
    model
}

#[test]
fn resuming_an_lm_run_equals_an_uninterrupted_one() {
    // Token ids built directly: a cycle of 5 ids, padded last block (mask 0) included.
    let tokens: Vec<u32> = [3u32, 14, 15, 92, 65]
        .iter()
        .copied()
        .cycle()
        .take(203)
        .collect();
    let blocks =
        chunk_tokens(&tokens, 12, Remainder::Pad { pad_id: 96 }).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(blocks.last().map(|b| b.targets()), Some(203 % 12 - 1));
    let data = LmData::split(blocks, 0.25).unwrap_or_else(|e| panic!("{e}"));
    // A constant rate: a 1-epoch run then has the same schedule as the first half of a 2-epoch
    // one. Adapter dropout on top of the fixture's own dropout exercises the RNG reseeding.
    let mut adapters = AdapterConfig::pfeiffer(4.0);
    adapters.bottleneck.width = BottleneckWidth::BottleneckDim(4);
    adapters.bottleneck.dropout = 0.1;
    let config = |epochs: usize| {
        LmTrainingConfig::new()
            .with_adapter(adapters.clone())
            .with_optim(
                OptimConfig::new()
                    .with_lr(1e-2)
                    .with_schedule(Schedule::Constant),
            )
            .with_epochs(epochs)
            .with_batch_size(4)
            .with_seed(11)
            .with_log_every(0)
    };
    let quiet = || RunOptions {
        interrupter: None,
        quiet: true,
    };
    let device = Device::flex().autodiff();

    let straight = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (a, _) = train_causal_lm(model(&device), &data, &config(2), straight.path(), quiet())
        .unwrap_or_else(|e| panic!("{e}"));

    let split = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    train_causal_lm(model(&device), &data, &config(1), split.path(), quiet())
        .unwrap_or_else(|e| panic!("{e}"));
    let (b, report) = train_causal_lm(model(&device), &data, &config(2), split.path(), quiet())
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

    // A finished run is not silently retrained.
    let again = train_causal_lm(model(&device), &data, &config(2), split.path(), quiet());
    assert!(matches!(
        again,
        Err(peft_train::TrainError::InvalidConfig(m)) if m.contains("already holds")
    ));
}
