//! AdapterDrop in training covers LoRA and IA³ too (as AdapterHub's, which skips whole layers
//! for every method): on the tiny BERT and GPT-2 (every dropout 0, autodiff device) each
//! training pass with `train_drop_prob` gives exactly the output of the model with some set of
//! WHOLE blocks skipped (bottleneck adapters and every projection's LoRA / IA³ modules of a block
//! dropped together, one draw per block), random drops do happen, robust AdapterDrop skips a
//! prefix of blocks, and nothing is drawn at inference.
//!
//! A per-site draw (each projection or residual site deciding on its own), or LoRA / IA³ left
//! out of the random drops, gives outputs that match no reference or never change.

use std::collections::BTreeSet;
use std::path::PathBuf;

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use peft_core::{
    AdapterConfig, AdapterDrop, AdapterHost, Ia3Config, Ia3Init, LinearTarget, LoraConfig,
    LoraInit, MethodConfig, Setup, add_adapter, randomize_matching, set_active, set_adapter_drop,
};
use peft_models::bert::{BertConfig, BertInput, BertModel};
use peft_models::golden::Golden;
use peft_models::gpt2::{Gpt2Config, Gpt2Model};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

fn golden(path: &str) -> Golden {
    ok(Golden::from_file(root().join(path)))
}

fn bert(device: &Device) -> BertModel {
    let dir = root().join("tiny-bert");
    let mut config = ok(BertConfig::from_hf_file(dir.join("config.json")));
    config.hidden_dropout_prob = 0.0;
    config.attention_probs_dropout_prob = 0.0;
    let mut model = ok(config.init(device));
    ok(model.load_checkpoint(dir.join("model.safetensors")));
    model
}

fn gpt2(device: &Device) -> Gpt2Model {
    let dir = root().join("tiny-gpt2");
    let mut config = ok(Gpt2Config::from_hf_file(dir.join("config.json")));
    config.attn_pdrop = 0.0;
    config.resid_pdrop = 0.0;
    config.embd_pdrop = 0.0;
    let mut model = ok(config.init(device));
    ok(model.load_checkpoint(dir.join("model.safetensors")));
    model
}

fn bert_out(model: &BertModel) -> Tensor<3> {
    let device = model.devices()[0].clone();
    let g = golden("tiny-bert/golden.json");
    let int = |n: &str| ok(g.int::<2>(n, &device));
    let input = BertInput::new(int("input_ids"))
        .with_token_type_ids(int("token_type_ids"))
        .with_attention_mask(int("attention_mask"));
    model.forward(input).last_hidden_state
}

fn gpt2_out(model: &Gpt2Model) -> Tensor<3> {
    let device = model.devices()[0].clone();
    let g = golden("tiny-gpt2/golden.json");
    let int = |n: &str| ok(g.int::<2>(n, &device));
    model.forward(int("input_ids"), Some(int("attention_mask")))
}

fn max_diff(a: Tensor<3>, b: Tensor<3>) -> f64 {
    (a - b).abs().max().into_scalar::<f64>()
}

/// Adapters `a` (bottleneck, non-zero), `l` (LoRA on every projection, random A and B, scale 3)
/// and `i` (IA³, random vectors).
fn with_adapters<M: AdapterHost + Module>(
    mut model: M,
    targets: Vec<LinearTarget>,
    ia3: Ia3Config,
    device: &Device,
) -> M {
    device.seed(11);
    let lora = LoraConfig::new(4, 12.0)
        .with_targets(targets)
        .with_init(LoraInit::Random);
    ok(add_adapter(
        &mut model,
        "a",
        &AdapterConfig::pfeiffer(4.0),
        device,
    ));
    ok(add_adapter(
        &mut model,
        "l",
        &MethodConfig::Lora(lora),
        device,
    ));
    ok(add_adapter(
        &mut model,
        "i",
        &MethodConfig::Ia3(ia3.with_init(Ia3Init::Random)),
        device,
    ));
    ok(randomize_matching(model, r"\.adapters\.a\.", 0.3))
}

/// The check for one active `setup`: references with each set of whole blocks skipped, then
/// random training drops (each output one of the references, several seen), robust drops (a
/// prefix of blocks), inference (nothing dropped).
fn whole_blocks_dropped<M: AdapterHost + Module>(
    mut model: M,
    setup: Setup,
    out: impl Fn(&M) -> Tensor<3>,
    what: &str,
) {
    let device = model.devices()[0].clone();
    assert!(device.is_autodiff(), "{what}: train on an autodiff device");
    ok(set_active(&mut model, Some(setup)));
    let n = model.num_layers();
    let references: Vec<(Vec<usize>, Tensor<3>)> = (0..1usize << n)
        .map(|mask| {
            let skipped: Vec<usize> = (0..n).filter(|b| mask & (1 << b) != 0).collect();
            let drop = AdapterDrop {
                skip_layers: skipped.clone(),
                ..AdapterDrop::default()
            };
            ok(set_adapter_drop(&mut model, &drop));
            (skipped, out(&model))
        })
        .collect();
    for (i, (sa, a)) in references.iter().enumerate() {
        for (sb, b) in &references[i + 1..] {
            let d = max_diff(a.clone(), b.clone());
            assert!(
                d > 1e-4,
                "{what}: skipping {sa:?} and {sb:?} must differ ({d:e})"
            );
        }
    }
    let matching = |got: &Tensor<3>| {
        references
            .iter()
            .find(|(_, r)| max_diff(got.clone(), r.clone()) < 1e-5)
            .map(|(s, _)| s.clone())
    };

    ok(set_adapter_drop(
        &mut model,
        &AdapterDrop::default().with_train_drop_prob(0.5),
    ));
    device.seed(3);
    let mut seen = BTreeSet::new();
    for pass in 0..24 {
        match matching(&out(&model)) {
            Some(skipped) => seen.insert(skipped),
            None => panic!("{what}: pass {pass}: the sites of a block were dropped separately"),
        };
    }
    assert_eq!(
        seen.len(),
        1 << n,
        "{what}: every set of blocks is dropped at some pass: {seen:?}"
    );

    ok(set_adapter_drop(&mut model, &AdapterDrop::robust(n)));
    device.seed(4);
    let mut prefixes = BTreeSet::new();
    for pass in 0..16 {
        let skipped = matching(&out(&model))
            .unwrap_or_else(|| panic!("{what}: robust pass {pass}: no whole-block reference"));
        assert_eq!(
            skipped,
            (0..skipped.len()).collect::<Vec<_>>(),
            "{what}: robust pass {pass}: the skipped blocks are not a prefix"
        );
        prefixes.insert(skipped.len());
    }
    assert!(
        prefixes.len() > 1,
        "{what}: robust drops happen: {prefixes:?}"
    );

    // At inference nothing is drawn: the output is the no-skip reference.
    ok(set_adapter_drop(
        &mut model,
        &AdapterDrop::default().with_train_drop_prob(0.5),
    ));
    let inference = model.valid();
    for _ in 0..3 {
        let d = max_diff(
            Tensor::<3>::from_data(out(&inference).into_data(), &Device::flex()),
            Tensor::<3>::from_data(references[0].1.clone().into_data(), &Device::flex()),
        );
        assert!(d < 1e-5, "{what}: inference drops nothing ({d:e})");
    }
}

const BERT_TARGETS: [LinearTarget; 6] = [
    LinearTarget::Query,
    LinearTarget::Key,
    LinearTarget::Value,
    LinearTarget::AttentionOutput,
    LinearTarget::FeedForwardIn,
    LinearTarget::FeedForwardOut,
];

const GPT2_TARGETS: [LinearTarget; 4] = [
    LinearTarget::QueryKeyValue,
    LinearTarget::AttentionOutput,
    LinearTarget::FeedForwardIn,
    LinearTarget::FeedForwardOut,
];

fn stack() -> Setup {
    Setup::stack(["a", "l", "i"].map(String::from))
}

#[test]
fn bert_training_adapter_drop_skips_lora_and_ia3_with_their_block() {
    let device = Device::flex().autodiff();
    let model = || {
        with_adapters(
            bert(&device),
            BERT_TARGETS.to_vec(),
            Ia3Config::liu2022(),
            &device,
        )
    };
    whole_blocks_dropped(model(), Setup::single("l"), bert_out, "bert lora");
    whole_blocks_dropped(model(), stack(), bert_out, "bert bottleneck+lora+ia3");
}

#[test]
fn gpt2_training_adapter_drop_skips_lora_and_ia3_with_their_block() {
    let device = Device::flex().autodiff();
    let model = || {
        with_adapters(
            gpt2(&device),
            GPT2_TARGETS.to_vec(),
            Ia3Config::liu2022_fused_qkv(),
            &device,
        )
    };
    whole_blocks_dropped(model(), Setup::single("l"), gpt2_out, "gpt2 lora");
    whole_blocks_dropped(model(), stack(), gpt2_out, "gpt2 bottleneck+lora+ia3");
}
