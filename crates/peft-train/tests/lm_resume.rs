//! The causal-LM path shares the run loop: a run interrupted after k optimizer steps and
//! resumed equals an uninterrupted one bit for bit, and gradient accumulation matches one large
//! batch. Its own test binary (process), and the tests take a lock: the device RNG that dropout
//! draws from is shared by all tests of a process.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use burn::tensor::Device;
use burn::train::Interrupter;
use common::{assert_same, fixture_without, max_difference, stop_after};
use peft_core::{AdapterConfig, AdapterInit, BottleneckWidth};
use peft_models::gpt2::Gpt2Model;
use peft_train::lm::{LmData, LmTrainingConfig, Remainder, chunk_tokens, train_causal_lm};
use peft_train::optim::{OptimConfig, Schedule};
use peft_train::trainer::RunOptions;

static SERIAL: Mutex<()> = Mutex::new(());

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tiny-gpt2")
}

fn model_from(dir: &Path, device: &Device) -> Gpt2Model {
    let (model, _) = Gpt2Model::from_pretrained(dir, device).unwrap_or_else(|e| panic!("{e}"));
    model
}

fn model(device: &Device) -> Gpt2Model {
    model_from(&fixture(), device)
}

fn blocks() -> LmData {
    let tokens: Vec<u32> = [3u32, 14, 15, 92, 65]
        .iter()
        .copied()
        .cycle()
        .take(203)
        .collect();
    let blocks =
        chunk_tokens(&tokens, 12, Remainder::Pad { pad_id: 96 }).unwrap_or_else(|e| panic!("{e}"));
    LmData::split(blocks, 0.25).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn gradient_accumulation_matches_one_large_batch() {
    let _lock = SERIAL.lock();
    let dir = fixture_without("tiny-gpt2", &["attn_pdrop", "embd_pdrop", "resid_pdrop"]);
    let data = blocks();
    let mut adapters = AdapterConfig::pfeiffer(4.0);
    adapters.bottleneck.width = BottleneckWidth::BottleneckDim(4);
    adapters.bottleneck.init = AdapterInit::Bert;
    let device = Device::flex().autodiff();
    // 13 training blocks: 3 steps of 4 + a last step of 1, either way.
    let run = |batch: usize, accumulation: usize| {
        let out = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let config = LmTrainingConfig::new()
            .with_adapter(adapters.clone())
            .with_optim(OptimConfig::new().with_lr(1e-2))
            .with_batch_size(batch)
            .with_grad_accumulation(accumulation)
            .with_seed(11)
            .with_log_every(0);
        let (m, report) = train_causal_lm(
            model_from(dir.path(), &device),
            &data,
            &config,
            out.path(),
            RunOptions {
                quiet: true,
                ..RunOptions::default()
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(report.steps, 4);
        m
    };
    let (one, two) = (run(4, 1), run(2, 2));
    let worst = max_difference(&one, &two);
    assert!(worst < 1e-5, "2 x 2 vs 1 x 4: max difference {worst}");
}

#[test]
fn an_interrupted_lm_run_resumes_exactly() {
    let _lock = SERIAL.lock();
    // Token ids built directly: a cycle of 5 ids, padded last block (mask 0) included.
    let data = blocks();
    assert_eq!(data.valid.last().map(|b| b.targets()), Some(203 % 12 - 1));
    // Warm-up + linear decay over 2 epochs of 4 steps; non-zero adapter init and adapter
    // dropout on top of the fixture's own dropout exercise the RNG reseeding.
    let mut adapters = AdapterConfig::pfeiffer(4.0);
    adapters.bottleneck.width = BottleneckWidth::BottleneckDim(4);
    adapters.bottleneck.dropout = 0.1;
    adapters.bottleneck.init = AdapterInit::Bert;
    let config = LmTrainingConfig::new()
        .with_adapter(adapters)
        .with_optim(
            OptimConfig::new()
                .with_lr(1e-2)
                .with_schedule(Schedule::WarmupLinear { warmup_ratio: 0.25 }),
        )
        .with_epochs(2)
        .with_batch_size(4)
        .with_seed(11)
        .with_checkpoint_every(3)
        .with_log_every(0);
    let quiet = || RunOptions {
        quiet: true,
        ..RunOptions::default()
    };
    let device = Device::flex().autodiff();

    let straight = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (a, report) = train_causal_lm(model(&device), &data, &config, straight.path(), quiet())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.steps, 8);

    // Stopped after 5 steps: one batch into epoch 2.
    let split = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let interrupter = Interrupter::new();
    let (_, report) = train_causal_lm(
        model(&device),
        &data,
        &config,
        split.path(),
        stop_after(5, &interrupter),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(report.interrupted);
    assert!(split.path().join("adapter-interrupted").is_dir());

    // Another adapter width is refused.
    let mut other = config.clone();
    other.adapter.bottleneck.width = BottleneckWidth::BottleneckDim(2);
    assert!(matches!(
        train_causal_lm(model(&device), &data, &other, split.path(), quiet()),
        Err(peft_train::TrainError::ResumeMismatch { field, .. })
            if field.starts_with("method.bottleneck.width")
    ));

    let (b, report) = train_causal_lm(model(&device), &data, &config, split.path(), quiet())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.resumed_from_step, Some(5));
    assert_eq!(report.steps, 8);
    assert_same(&a, &b, "resumed vs uninterrupted LM run");

    // A finished run is not silently retrained.
    let again = train_causal_lm(model(&device), &data, &config, split.path(), quiet());
    assert!(matches!(
        again,
        Err(peft_train::TrainError::RunFinished { epochs: 2, .. })
    ));
}
