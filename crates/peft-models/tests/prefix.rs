//! Prefix tuning (AdapterHub `adapters` 1.3.0 `prefix_tuning`) on the tiny BERT and GPT-2, and
//! prompt tuning (`prompt_tuning` on BERT; on GPT-2, which AdapterHub lacks, PEFT 0.21.2's
//! `PromptTuningConfig`):
//! golden outputs with AdapterHub's weights (padding in the batch, a `leave_out` case), the
//! ejected (flat) prefixes and outputs, GPT-2 generation with the KV cache, and the invariants
//! (inactive == base, only the prefix parameters train, the base stays bit-identical, save ->
//! load round trip exact, ejected == re-parameterised).

use std::path::PathBuf;

use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::Linear;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{Device, Int, Tensor, TensorData};
use peft_core::{
    AdapterFile, AdapterHost, AdapterMethod, MethodKind, PrefixTuningConfig, PromptCombine,
    PromptTuningConfig, Setup, Trainable, adapters, add_adapter, delete_adapter, eject_prefix,
    freeze_except, load_adapter_weights, param_summary, save_adapter, set_active,
};
use peft_models::bert::{BertConfig, BertInput, BertModel};
use peft_models::golden::Golden;
use peft_models::gpt2::{Gpt2Model, KvCache};

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
    let config = ok(BertConfig::from_hf_file(dir.join("config.json")));
    let mut model = ok(config.init(device));
    ok(model.load_checkpoint(dir.join("model.safetensors")));
    model.valid()
}

fn gpt2(device: &Device) -> Gpt2Model {
    let dir = root().join("tiny-gpt2");
    let (model, _) = ok(Gpt2Model::from_pretrained_file(
        dir.join("config.json"),
        dir.join("model.safetensors"),
        device,
    ));
    model.valid()
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

/// The case's config (the fixture's `PrefixTuningConfig` kwargs).
fn config_of(g: &Golden) -> PrefixTuningConfig {
    let c = g.value("config").unwrap_or_else(|| panic!("no config"));
    let num = |k: &str| c.get(k).and_then(|v| v.as_u64()).map(|v| v as usize);
    let mut config = PrefixTuningConfig::default()
        .with_prefix_length(num("prefix_length").unwrap_or(30))
        .with_bottleneck_size(num("bottleneck_size").unwrap_or(512));
    if let Some(l) = c.get("leave_out").and_then(|v| v.as_array()) {
        config.leave_out = l
            .iter()
            .filter_map(|v| v.as_u64())
            .map(|v| v as usize)
            .collect();
    }
    config
}

/// Add adapter `p` from the fixture and copy AdapterHub's weights into it.
fn add_from_fixture<M: AdapterHost>(model: &mut M, g: &Golden, device: &Device) {
    ok(add_adapter(model, "p", &config_of(g), device));
    let f2 = |n: &str| ok(g.float::<2>(n, device));
    let f1 = |n: &str| ok(g.float::<1>(n, device));
    let linear = |w: &str, b: &str| Linear {
        weight: Param::from_tensor(f2(w).transpose()),
        bias: Some(Param::from_tensor(f1(b))),
    };
    let pool = model
        .prefix_pool_mut()
        .unwrap_or_else(|| panic!("no prefix pool"));
    let module = pool.get_mut("p").unwrap_or_else(|| panic!("no adapter p"));
    module.prefix_wte = Some(Param::from_tensor(f2("wte")));
    module.prefix_down = Some(linear("down_w", "down_b"));
    module.prefix_up = Some(linear("up_w", "up_b"));
    ok(set_active(model, Some(Setup::single("p"))));
}

fn max_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f64 {
    (a - b).abs().max().into_scalar::<f64>()
}

const TOL: f64 = 1e-5;

fn check_golden<M: AdapterHost>(
    mut model: M,
    case: &str,
    key: &str,
    out: impl Fn(&M) -> Tensor<3>,
) -> M {
    let device = Device::flex();
    let g = golden(case);
    let base = out(&model);
    add_from_fixture(&mut model, &g, &device);
    let want = ok(g.float::<3>(key, &device));
    let got = out(&model);
    let d = max_diff(got.clone(), want.clone());
    assert!(d <= TOL, "{case}: {key} max |diff| {d:e}");
    assert!(
        max_diff(got.clone(), base.clone()) > 1e-3,
        "{case}: no effect"
    );

    // Inactive == base, bit for bit.
    ok(set_active(&mut model, None));
    assert_eq!(
        out(&model).into_data(),
        base.into_data(),
        "{case}: inactive"
    );
    ok(set_active(&mut model, Some(Setup::single("p"))));

    // Ejected: the plain prefixes AdapterHub's eject wrote, the same output.
    ok(eject_prefix(&mut model, "p"));
    let info = adapters(&model);
    assert_eq!(info.len(), 1);
    assert_eq!(info[0].config.kind(), MethodKind::PrefixTuning);
    let pool = model.prefix_pool().unwrap_or_else(|| panic!("pool"));
    let module = pool
        .adapters()
        .get("p")
        .unwrap_or_else(|| panic!("adapter p"));
    assert!(module.is_flat() && module.prefix_up.is_none());
    let flat = module.key_values();
    let d = max_diff(flat, ok(g.float::<2>("flat", &device)));
    assert!(d <= TOL, "{case}: flat prefixes max |diff| {d:e}");
    let ejected = out(&model);
    let d = max_diff(
        ejected.clone(),
        ok(g.float::<3>(&format!("ejected_{key}"), &device)),
    );
    assert!(d <= TOL, "{case}: ejected {key} max |diff| {d:e}");
    let d = max_diff(ejected, got);
    assert!(d <= TOL, "{case}: ejected vs re-parameterised {d:e}");
    model
}

#[test]
fn bert_prefix_tuning_matches_adapterhub() {
    let device = Device::flex();
    check_golden(
        bert(&device),
        "tiny-bert/prefix/prefix.json",
        "last_hidden_state",
        bert_out,
    );
}

#[test]
fn bert_prefix_tuning_with_leave_out_matches_adapterhub() {
    let device = Device::flex();
    let model = check_golden(
        bert(&device),
        "tiny-bert/prefix/leave_out.json",
        "last_hidden_state",
        bert_out,
    );
    let info = adapters(&model);
    let layers: Vec<usize> = info[0].sites.iter().map(|(l, _)| *l).collect();
    assert_eq!(layers, vec![1]);
}

#[test]
fn gpt2_prefix_tuning_matches_adapterhub_and_generates_with_the_cache() {
    let device = Device::flex();
    let case = "tiny-gpt2/prefix/prefix.json";
    let model = check_golden(gpt2(&device), case, "logits", gpt2_out);
    let g = golden(case);
    let ints = |n: &str| -> Vec<u32> {
        ok(g.int::<2>(n, &device))
            .into_data()
            .iter::<i64>()
            .map(|v| v as u32)
            .collect()
    };
    let prompt = ints("greedy_prompt");
    let expected = ints("greedy_output");
    for use_cache in [true, false] {
        let config = peft_models::gpt2::GenerationConfig::new()
            .with_max_new_tokens(expected.len() - prompt.len())
            .with_use_cache(use_cache);
        let out = ok(model.generate(std::slice::from_ref(&prompt), &config));
        assert_eq!(out, vec![expected.clone()], "use_cache {use_cache}");
    }
    // Step-by-step decoding with the cache gives the full forward's logits: the cache never
    // holds the prefix, each step prepends it once, positions are not shifted.
    let ids: Vec<i64> = expected.iter().map(|&t| i64::from(t)).collect();
    let n = ids.len();
    let full = model.forward(
        Tensor::<2, Int>::from_data(TensorData::new(ids.clone(), [1, n]), &device),
        None,
    );
    let mut cache = KvCache::new();
    let mut steps = Vec::new();
    for (i, &t) in ids.iter().enumerate() {
        let one = Tensor::<2, Int>::from_data(TensorData::new(vec![t], [1, 1]), &device);
        steps.push(model.forward_with_cache(one, None, &mut cache));
        assert_eq!(cache.len(), i + 1, "the cache holds the tokens only");
    }
    let d = max_diff(Tensor::cat(steps, 1), full);
    assert!(d <= TOL, "cached vs full logits {d:e}");
}

fn values<M: Module>(module: &M) -> Vec<(String, TensorData)> {
    struct V(Vec<String>, Vec<(String, TensorData)>);
    impl ModuleVisitor for V {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.0.push(name.into());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.0.pop();
        }
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            self.1.push((self.0.join("."), p.val().into_data()));
        }
    }
    let mut v = V(vec![], vec![]);
    module.visit(&mut v);
    v.1
}

/// Three AdamW steps: only the prefix parameters get gradients and optimizer state and change;
/// every base tensor is bit-identical.
fn training_invariants<M: AdapterHost + Module>(
    model: M,
    out: impl Fn(&M) -> Tensor<3>,
    flat: bool,
) {
    let device = Device::flex().autodiff();
    device.seed(7);
    let mut model = model;
    let config = PrefixTuningConfig::default()
        .with_prefix_length(3)
        .with_bottleneck_size(8)
        .with_flat(flat)
        .with_dropout(0.1);
    ok(add_adapter(&mut model, "t", &config, &device));
    ok(set_active(&mut model, Some(Setup::single("t"))));
    let trainable = Trainable::adapter("t");
    let mut model = ok(freeze_except(model, &trainable)).train();
    let summary = ok(param_summary(&model, &trainable));
    assert_eq!(summary.trainable_tensors, if flat { 1 } else { 5 });
    let before = values(&model);
    let mut optim = AdamWConfig::new().with_weight_decay(0.01).init();
    for step in 0..3 {
        let loss = out(&model).powf_scalar(2.0).mean();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        assert_eq!(grads.len(), summary.trainable_tensors, "step {step}");
        model = optim.step(1e-2, model, grads);
    }
    assert_eq!(optim.to_record().len(), 2 * summary.trainable_tensors);
    for ((path, b), (_, a)) in before.iter().zip(values(&model)) {
        if ok(trainable.matches(path)) {
            assert!(path.starts_with("prefix.adapters.t.prefix_"), "{path}");
            assert_ne!(b, &a, "{path} should have changed");
        } else {
            assert_eq!(b, &a, "{path} is frozen and must be bit-identical");
        }
    }
}

#[test]
fn bert_prefix_training_touches_only_the_prefix() {
    let device = Device::flex().autodiff();
    training_invariants(bert(&device), bert_out, false);
    training_invariants(bert(&device), bert_out, true);
}

#[test]
fn gpt2_prefix_training_touches_only_the_prefix() {
    let device = Device::flex().autodiff();
    training_invariants(gpt2(&device), gpt2_out, false);
}

/// Save the ejected prefixes and load them onto a fresh model with a flat adapter: the same
/// output bit for bit; deleting the adapter restores the base.
#[test]
fn ejected_prefix_round_trips_and_deletes() {
    let device = Device::flex();
    let g = golden("tiny-bert/prefix/prefix.json");
    let mut model = bert(&device);
    let base = bert_out(&model);
    add_from_fixture(&mut model, &g, &device);
    ok(eject_prefix(&mut model, "p"));
    let want = bert_out(&model);
    let tmp = ok(tempfile::tempdir());
    let file = AdapterFile::new(
        AdapterMethod::HeadOnly,
        model.base_info(),
        &Trainable::adapter("p"),
    );
    ok(save_adapter(&model, tmp.path(), &file));

    let mut other = bert(&device);
    let flat = config_of(&g).with_flat(true);
    ok(add_adapter(&mut other, "p", &flat, &device));
    ok(set_active(&mut other, Some(Setup::single("p"))));
    assert!(max_diff(bert_out(&other), want.clone()) > 1e-4);
    let report = ok(load_adapter_weights(&mut other, tmp.path(), &file));
    assert_eq!(
        report.loaded,
        vec!["prefix.adapters.p.prefix_flat".to_string()]
    );
    assert_eq!(bert_out(&other).into_data(), want.into_data());

    assert_eq!(ok(delete_adapter(&mut other, "p")), 1);
    assert!(adapters(&other).is_empty());
    assert_eq!(bert_out(&other).into_data(), base.into_data());
}

#[test]
fn prefix_configs_and_setups_are_checked() {
    let device = Device::flex();
    let mut model = bert(&device);
    let bad = PrefixTuningConfig::default().with_prefix_length(0);
    assert!(add_adapter(&mut model, "p", &bad, &device).is_err());
    let all_out = PrefixTuningConfig::default().with_leave_out(vec![0, 1]);
    assert!(add_adapter(&mut model, "p", &all_out, &device).is_err());
    let beyond = PrefixTuningConfig::default().with_leave_out(vec![5]);
    assert!(add_adapter(&mut model, "p", &beyond, &device).is_err());
    assert!(
        adapters(&model).is_empty(),
        "failed adds leave the model as it was"
    );
    let small = PrefixTuningConfig::default()
        .with_prefix_length(2)
        .with_bottleneck_size(4);
    ok(add_adapter(&mut model, "p", &small, &device));
    assert!(add_adapter(&mut model, "p", &small, &device).is_err());
    ok(add_adapter(&mut model, "q", &small, &device));
    let parallel = set_active(
        &mut model,
        Some(Setup::parallel(["p", "q"].map(String::from))),
    );
    assert!(
        matches!(&parallel, Err(peft_core::PeftError::InvalidSetup(m)) if m.contains("prefix_tuning")),
        "prefix tuning composes as a single name or a Stack: {parallel:?}"
    );
    // A Stack prepends both prefixes: it differs from either alone.
    ok(set_active(&mut model, Some(Setup::single("p"))));
    let p = bert_out(&model);
    ok(set_active(&mut model, Some(Setup::single("q"))));
    let q = bert_out(&model);
    ok(set_active(
        &mut model,
        Some(Setup::stack(["p", "q"].map(String::from))),
    ));
    let pq = bert_out(&model);
    assert!(max_diff(pq.clone(), p) > 1e-4 && max_diff(pq, q) > 1e-4);
    assert!(eject_prefix(&mut model, "missing").is_err());
}

/// Add prompt adapter `p` from the fixture and copy AdapterHub's prompt into it.
fn add_prompt_from_fixture(model: &mut BertModel, g: &Golden, device: &Device) {
    let c = g.value("config").unwrap_or_else(|| panic!("no config"));
    let len = c
        .get("prompt_length")
        .and_then(|v| v.as_u64())
        .unwrap_or(10) as usize;
    let combine = match c.get("combine").and_then(|v| v.as_str()) {
        Some("prefix_after_bos") => PromptCombine::PrefixAfterBos,
        _ => PromptCombine::Prefix,
    };
    let config = PromptTuningConfig::default()
        .with_prompt_length(len)
        .with_combine(combine);
    ok(add_adapter(model, "p", &config, device));
    let module = model
        .prefix
        .prompt_mut("p")
        .unwrap_or_else(|| panic!("no prompt p"));
    module.prompt_embedding = Param::from_tensor(ok(g.float::<2>("prompt_embedding", device)));
    ok(set_active(model, Some(Setup::single("p"))));
}

#[test]
fn bert_prompt_tuning_matches_adapterhub() {
    let device = Device::flex();
    let g0 = golden("tiny-bert/golden.json");
    let int = |n: &str| ok(g0.int::<2>(n, &device));
    let input = || {
        BertInput::new(int("input_ids"))
            .with_token_type_ids(int("token_type_ids"))
            .with_attention_mask(int("attention_mask"))
    };
    for case in ["prompt", "after_bos"] {
        let g = golden(&format!("tiny-bert/prompt/{case}.json"));
        let mut model = bert(&device);
        let base = model.forward(input());
        add_prompt_from_fixture(&mut model, &g, &device);
        let info = adapters(&model);
        assert_eq!(info[0].config.kind(), MethodKind::PromptTuning);
        let out = model.forward(input());
        let d = max_diff(
            out.last_hidden_state,
            ok(g.float::<3>("last_hidden_state", &device)),
        );
        assert!(d <= TOL, "{case}: last_hidden_state max |diff| {d:e}");
        let pooled = out.pooler_output.unwrap_or_else(|| panic!("pooler"));
        let d = max_diff(pooled, ok(g.float::<2>("pooler_output", &device)));
        assert!(d <= TOL, "{case}: pooler_output max |diff| {d:e}");
        ok(set_active(&mut model, None));
        assert_eq!(
            model.forward(input()).last_hidden_state.into_data(),
            base.last_hidden_state.into_data(),
            "{case}: inactive"
        );
    }
}

#[test]
fn bert_prompt_training_touches_only_the_prompt_and_round_trips() {
    let device = Device::flex().autodiff();
    device.seed(9);
    let mut model = bert(&device);
    let config = PromptTuningConfig::default().with_prompt_length(3);
    ok(add_adapter(&mut model, "t", &config, &device));
    ok(set_active(&mut model, Some(Setup::single("t"))));
    let trainable = Trainable::adapter("t");
    let mut model = ok(freeze_except(model, &trainable)).train();
    let summary = ok(param_summary(&model, &trainable));
    assert_eq!(summary.trainable_tensors, 1);
    let before = values(&model);
    let mut optim = AdamWConfig::new().init();
    for _ in 0..3 {
        let loss = bert_out(&model).powf_scalar(2.0).mean();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        assert_eq!(grads.len(), 1);
        model = optim.step(1e-2, model, grads);
    }
    for ((path, b), (_, a)) in before.iter().zip(values(&model)) {
        if ok(trainable.matches(path)) {
            assert_eq!(path, "prefix.adapters.t.prompt_embedding");
            assert_ne!(b, &a, "{path} should have changed");
        } else {
            assert_eq!(b, &a, "{path} is frozen and must be bit-identical");
        }
    }
    // Save -> load onto a fresh model: the same output bit for bit.
    let model = model.valid();
    let want = bert_out(&model);
    let tmp = ok(tempfile::tempdir());
    let file = AdapterFile::new(AdapterMethod::HeadOnly, model.base_info(), &trainable);
    ok(save_adapter(&model, tmp.path(), &file));
    let plain = Device::flex();
    let mut other = bert(&plain);
    ok(add_adapter(&mut other, "t", &config, &plain));
    ok(set_active(&mut other, Some(Setup::single("t"))));
    ok(load_adapter_weights(&mut other, tmp.path(), &file));
    assert_eq!(
        bert_out(&other).into_data(),
        want.into_data().convert::<f32>()
    );
    // GPT-2 puts its prompt in front only (PEFT's layout): `prefix_after_bos` is refused,
    // leaving the model as it was.
    let mut g = gpt2(&plain);
    let after = config.clone().with_combine(PromptCombine::PrefixAfterBos);
    let refused = add_adapter(&mut g, "t", &after, &plain);
    assert!(
        matches!(&refused, Err(peft_core::PeftError::NothingMatched(m)) if m.contains("prefix_after_bos")),
        "{refused:?}"
    );
    assert!(adapters(&g).is_empty());
    ok(add_adapter(&mut g, "t", &config, &plain));
}

/// GPT-2 prompt tuning against PEFT 0.21.2 (`PromptTuningConfig`, `CAUSAL_LM`): the logits cover
/// prompt + tokens, right and left padding, the prompt goes in once with the KV cache, and
/// cached generation equals uncached and PEFT's `generate`.
#[test]
fn gpt2_prompt_tuning_matches_peft_and_generates_with_the_cache() {
    let device = Device::flex();
    let g = golden("tiny-gpt2/prompt/prompt.json");
    let int = |g: &Golden, n: &str| ok(g.int::<2>(n, &device));
    let mut model = gpt2(&device);
    let base = gpt2_out(&model);
    let p = 4;
    let config = PromptTuningConfig::default().with_prompt_length(p);
    ok(add_adapter(&mut model, "p", &config, &device));
    model
        .prefix
        .prompt_mut("p")
        .unwrap_or_else(|| panic!("no prompt p"))
        .prompt_embedding = Param::from_tensor(ok(g.float::<2>("prompt_embedding", &device)));
    ok(set_active(&mut model, Some(Setup::single("p"))));
    assert_eq!(model.prompt_len(), p);
    assert_eq!(model.input_limits().max_len, model.n_positions - p);

    let right = gpt2_out(&model);
    assert_eq!(right.dims(), [2, p + 6, 97]);
    let d = max_diff(right.clone(), ok(g.float::<3>("logits", &device)));
    assert!(d <= TOL, "right-padded logits max |diff| {d:e}");
    let left = model.forward(
        int(&g, "left_input_ids"),
        Some(int(&g, "left_attention_mask")),
    );
    let d = max_diff(left, ok(g.float::<3>("left_logits", &device)));
    assert!(d <= TOL, "left-padded logits max |diff| {d:e}");
    assert!(
        max_diff(right.narrow(1, p, 6), base.clone()) > 1e-3,
        "no effect"
    );

    let ints = |n: &str| -> Vec<u32> {
        int(&g, n)
            .into_data()
            .iter::<i64>()
            .map(|v| v as u32)
            .collect()
    };
    let prompt = ints("greedy_prompt");
    let expected = ints("greedy_output");
    for use_cache in [true, false] {
        let config = peft_models::gpt2::GenerationConfig::new()
            .with_max_new_tokens(expected.len() - prompt.len())
            .with_use_cache(use_cache);
        let out = ok(model.generate(std::slice::from_ref(&prompt), &config));
        assert_eq!(out, vec![expected.clone()], "use_cache {use_cache}");
    }

    // Step by step with the cache (and a token mask): the first step puts the prompt in and
    // returns its positions too, later steps feed one token; together they give the full
    // forward's logits.
    let ids: Vec<i64> = expected.iter().map(|&t| i64::from(t)).collect();
    let n = ids.len();
    let full = model.forward(
        Tensor::<2, Int>::from_data(TensorData::new(ids.clone(), [1, n]), &device),
        None,
    );
    let mut cache = KvCache::new();
    let mut steps = Vec::new();
    for (i, &t) in ids.iter().enumerate() {
        let one = Tensor::<2, Int>::from_data(TensorData::new(vec![t], [1, 1]), &device);
        let mask = Tensor::<2, Int>::ones([1, i + 1], &device);
        let logits = ok(model.try_forward_with_cache(one, Some(mask), &mut cache));
        assert_eq!(logits.dims()[1], if i == 0 { p + 1 } else { 1 }, "step {i}");
        steps.push(logits);
        assert_eq!(
            (cache.len(), cache.prompt_len(), cache.tokens()),
            (p + i + 1, p, i + 1)
        );
    }
    let d = max_diff(Tensor::cat(steps, 1), full);
    assert!(d <= TOL, "cached vs full logits {d:e}");
    // A cache built under another prompt is refused, not silently misread.
    ok(set_active(&mut model, None));
    let one = Tensor::<2, Int>::from_data(TensorData::new(vec![5i64], [1, 1]), &device);
    assert!(model.try_forward_with_cache(one, None, &mut cache).is_err());
    // Inactive == base, bit for bit.
    assert_eq!(gpt2_out(&model).into_data(), base.into_data());
}

#[test]
fn a_failed_attach_keeps_the_prefix_adapters() {
    let device = Device::flex();
    let mut model = bert(&device);
    let small = PrefixTuningConfig::default()
        .with_prefix_length(2)
        .with_bottleneck_size(4);
    ok(add_adapter(&mut model, "p", &small, &device));
    let mut none = peft_core::AdapterConfig::pfeiffer(4.0);
    none.placement = none.placement.with_leave_out(vec![0, 1]);
    assert!(peft_core::attach_adapters(&mut model, &none, &device).is_err());
    let names: Vec<String> = adapters(&model).into_iter().map(|a| a.name).collect();
    assert_eq!(names, vec!["p".to_string()]);
}
