//! One backward pass of prefix tuning (BERT and GPT-2, the re-parameterisation MLP in training
//! mode) and prompt tuning (BERT as AdapterHub 1.3.0, GPT-2 as PEFT 0.21.2) against PyTorch:
//! the fixtures of step `prefix-grads` (`scripts/prefix_grads.py`) hold the adapter weights, the
//! loss and the gradient of every trainable tensor after one `loss.backward()` on the padded
//! batch of `<model>/golden.json`, every dropout 0. Our loss equals theirs within 1e-5 (relative)
//! and every autodiff gradient theirs within 1e-4 (relative to the tensor's largest gradient
//! when that exceeds 1).

use std::path::PathBuf;

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor};
use peft_core::{
    AdapterHost, PrefixTuningConfig, PromptTuningConfig, Setup, Trainable, add_adapter,
    freeze_except, param_summary, set_active,
};
use peft_models::bert::{BertConfig, BertInput, BertModel};
use peft_models::golden::Golden;
use peft_models::gpt2::{Gpt2Config, Gpt2Model, causal_lm_loss};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

fn golden(path: &str) -> Golden {
    ok(Golden::from_file(root().join(path)))
}

/// The tiny BERT with every dropout 0 (the fixture's setting).
fn bert(device: &Device) -> BertModel {
    let dir = root().join("tiny-bert");
    let mut config = ok(BertConfig::from_hf_file(dir.join("config.json")));
    config.hidden_dropout_prob = 0.0;
    config.attention_probs_dropout_prob = 0.0;
    let mut model = ok(config.init(device));
    ok(model.load_checkpoint(dir.join("model.safetensors")));
    model
}

/// The tiny GPT-2 with every dropout 0.
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

/// `sum(last_hidden_state²)` on the padded batch of `tiny-bert/golden.json`.
fn bert_loss(model: &BertModel) -> Tensor<1> {
    let device = model.devices()[0].clone();
    let g = golden("tiny-bert/golden.json");
    let int = |n: &str| ok(g.int::<2>(n, &device));
    let input = BertInput::new(int("input_ids"))
        .with_token_type_ids(int("token_type_ids"))
        .with_attention_mask(int("attention_mask"));
    model
        .forward(input)
        .last_hidden_state
        .powf_scalar(2.0)
        .sum()
}

/// The causal-LM cross-entropy on the padded batch of `tiny-gpt2/golden.json`.
fn gpt2_loss(model: &Gpt2Model) -> Tensor<1> {
    let device = model.devices()[0].clone();
    let g = golden("tiny-gpt2/golden.json");
    let int = |n: &str| ok(g.int::<2>(n, &device));
    let logits = model.forward(int("input_ids"), Some(int("attention_mask")));
    causal_lm_loss(logits, int("input_ids"), int("attention_mask"))
}

/// PyTorch `[out, in]` -> burn `[in, out]` linear layer from fixture keys.
fn linear(g: &Golden, w: &str, b: &str, device: &Device) -> Linear {
    Linear {
        weight: Param::from_tensor(ok(g.float::<2>(w, device)).transpose()),
        bias: Some(Param::from_tensor(ok(g.float::<1>(b, device)))),
    }
}

/// `got` (`[..]` on the autodiff device's inner backend) against the fixture's `grad:<key>`.
fn check_grad<const D: usize>(g: &Golden, key: &str, got: Tensor<D>, case: &str) -> f64 {
    let plain = Device::flex();
    let got = Tensor::<D>::from_data(got.into_data(), &plain);
    let want = ok(g.float::<D>(&format!("grad:{key}"), &plain));
    assert_eq!(got.dims(), want.dims(), "{case}: grad {key} shape");
    let scale = want.clone().abs().max().into_scalar::<f64>();
    assert!(
        scale > 1e-3,
        "{case}: grad {key} is too small to test ({scale:e})"
    );
    let d = (got - want).abs().max().into_scalar::<f64>();
    assert!(
        d <= 1e-4 * scale.max(1.0),
        "{case}: grad {key} max |diff| {d:e} (largest gradient {scale:e})"
    );
    d
}

fn check_loss(g: &Golden, loss: &Tensor<1>, case: &str) {
    let want = g
        .value("loss")
        .and_then(|v| v.as_f64())
        .unwrap_or_else(|| panic!("{case}: no loss"));
    let got = loss.clone().into_scalar::<f64>();
    assert!(
        (got - want).abs() <= 1e-5 * want.abs().max(1.0),
        "{case}: loss {got} vs PyTorch {want}"
    );
}

/// Prefix tuning `p` with the fixture's weights, trainable alone, one backward pass.
fn prefix_case<M: AdapterHost + Module>(mut model: M, case: &str, loss: impl Fn(&M) -> Tensor<1>) {
    let device = Device::flex().autodiff();
    let g = golden(case);
    let c = g.value("config").unwrap_or_else(|| panic!("no config"));
    let num = |k: &str| c.get(k).and_then(|v| v.as_u64()).unwrap_or(0) as usize;
    let config = PrefixTuningConfig::default()
        .with_prefix_length(num("prefix_length"))
        .with_bottleneck_size(num("bottleneck_size"))
        .with_dropout(0.0);
    ok(add_adapter(&mut model, "p", &config, &device));
    {
        let pool = model.prefix_pool_mut().unwrap_or_else(|| panic!("pool"));
        let module = pool.get_mut("p").unwrap_or_else(|| panic!("adapter p"));
        module.prefix_wte = Some(Param::from_tensor(ok(g.float::<2>("wte", &device))));
        module.prefix_down = Some(linear(&g, "down_w", "down_b", &device));
        module.prefix_up = Some(linear(&g, "up_w", "up_b", &device));
    }
    ok(set_active(&mut model, Some(Setup::single("p"))));
    let trainable = Trainable::adapter("p");
    let model = ok(freeze_except(model, &trainable)).train();
    assert_eq!(ok(param_summary(&model, &trainable)).trainable_tensors, 5);
    let loss = loss(&model);
    check_loss(&g, &loss, case);
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    assert_eq!(
        grads.len(),
        5,
        "{case}: only the prefix tensors get gradients"
    );
    let pool = model.prefix_pool().unwrap_or_else(|| panic!("pool"));
    let module = pool
        .adapters()
        .get("p")
        .unwrap_or_else(|| panic!("adapter p"));
    let get2 = |p: &Param<Tensor<2>>| {
        grads
            .get::<2>(p.id)
            .unwrap_or_else(|| panic!("{case}: no gradient"))
    };
    let get1 = |p: &Param<Tensor<1>>| {
        grads
            .get::<1>(p.id)
            .unwrap_or_else(|| panic!("{case}: no gradient"))
    };
    let (Some(wte), Some(down), Some(up)) = (
        module.prefix_wte.as_ref(),
        module.prefix_down.as_ref(),
        module.prefix_up.as_ref(),
    ) else {
        panic!("{case}: not re-parameterised")
    };
    let bias = |l: &Linear| get1(l.bias.as_ref().unwrap_or_else(|| panic!("no bias")));
    let mut worst: f64 = 0.0;
    worst = worst.max(check_grad(&g, "wte", get2(wte), case));
    worst = worst.max(check_grad(
        &g,
        "down_w",
        get2(&down.weight).transpose(),
        case,
    ));
    worst = worst.max(check_grad(&g, "down_b", bias(down), case));
    worst = worst.max(check_grad(&g, "up_w", get2(&up.weight).transpose(), case));
    worst = worst.max(check_grad(&g, "up_b", bias(up), case));
    println!("{case}: worst gradient |diff| {worst:e}");
}

#[test]
fn bert_prefix_tuning_gradients_match_adapterhub() {
    let device = Device::flex().autodiff();
    prefix_case(bert(&device), "tiny-bert/grads/prefix.json", bert_loss);
}

#[test]
fn gpt2_prefix_tuning_gradients_match_adapterhub() {
    let device = Device::flex().autodiff();
    prefix_case(gpt2(&device), "tiny-gpt2/grads/prefix.json", gpt2_loss);
}

/// Prompt tuning `p` with the fixture's prompt, trainable alone, one backward pass.
fn prompt_case<M: AdapterHost + Module>(mut model: M, case: &str, loss: impl Fn(&M) -> Tensor<1>) {
    let device = Device::flex().autodiff();
    let g = golden(case);
    let config = PromptTuningConfig::default().with_prompt_length(4);
    ok(add_adapter(&mut model, "p", &config, &device));
    model
        .prefix_pool_mut()
        .and_then(|pool| pool.prompt_mut("p"))
        .unwrap_or_else(|| panic!("prompt p"))
        .prompt_embedding = Param::from_tensor(ok(g.float::<2>("prompt_embedding", &device)));
    ok(set_active(&mut model, Some(Setup::single("p"))));
    let trainable = Trainable::adapter("p");
    let model = ok(freeze_except(model, &trainable)).train();
    let loss = loss(&model);
    check_loss(&g, &loss, case);
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    assert_eq!(grads.len(), 1, "{case}: only the prompt gets a gradient");
    let pool = model.prefix_pool().unwrap_or_else(|| panic!("pool"));
    let module = pool
        .prompts()
        .get("p")
        .unwrap_or_else(|| panic!("prompt p"));
    let got = grads
        .get::<2>(module.prompt_embedding.id)
        .unwrap_or_else(|| panic!("{case}: no gradient"));
    let d = check_grad(&g, "prompt_embedding", got, case);
    println!("{case}: gradient |diff| {d:e}");
}

#[test]
fn bert_prompt_tuning_gradients_match_adapterhub() {
    let device = Device::flex().autodiff();
    prompt_case(bert(&device), "tiny-bert/grads/prompt.json", bert_loss);
}

/// PEFT's GPT-2 prompt tuning: the loss scores every token, the first from the last prompt
/// position (PEFT's `-100` labels for the prompt), so the gradient checks that too.
#[test]
fn gpt2_prompt_tuning_gradients_match_peft() {
    let device = Device::flex().autodiff();
    prompt_case(gpt2(&device), "tiny-gpt2/grads/prompt.json", gpt2_loss);
}
