//! GPT-2 parity with Hugging Face transformers and AdapterHub on the committed tiny fixtures,
//! KV-cached generation, and a short adapter-training run.

use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{Device, Int, Tensor, TensorData, Tolerance};
use peft_core::{AdapterConfig, Trainable, attach_adapters, freeze_except, param_paths};
use peft_models::ModelError;
use peft_models::adapterhub::load_adapterhub_weights;
use peft_models::golden::Golden;
use peft_models::gpt2::{GenerationConfig, Gpt2Config, Gpt2Model, KvCache, causal_lm_loss};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tiny-gpt2")
}

fn device() -> Device {
    Device::flex()
}

fn golden() -> Golden {
    Golden::from_file(fixtures().join("golden.json")).unwrap_or_else(|e| panic!("{e}"))
}

fn ids(g: &Golden, name: &str, device: &Device) -> Tensor<2, Int> {
    g.int::<2>(name, device).unwrap_or_else(|e| panic!("{e}"))
}

fn ints(g: &Golden, name: &str) -> Vec<u32> {
    let (_, data) = g.raw(name).unwrap_or_else(|e| panic!("{e}"));
    data.into_iter().map(|v| v as u32).collect()
}

fn assert_close<const D: usize>(got: Tensor<D>, expected: Tensor<D>, tol: f64, what: &str) {
    assert_eq!(got.dims(), expected.dims(), "{what}: shape");
    let diff = (got.clone() - expected.clone())
        .abs()
        .max()
        .into_scalar::<f64>();
    assert!(diff <= tol, "{what}: max abs diff {diff} > {tol}");
    got.into_data()
        .assert_approx_eq::<f32>(&expected.into_data(), Tolerance::absolute(tol));
}

fn load_on(file: &str, device: &Device) -> Gpt2Model {
    let (model, report) = Gpt2Model::from_pretrained_file(
        fixtures().join("config.json"),
        fixtures().join(file),
        device,
    )
    .unwrap_or_else(|e| panic!("{file}: {e}"));
    assert!(report.not_in_checkpoint.is_empty(), "{report}");
    model
}

fn load(file: &str) -> Gpt2Model {
    load_on(file, &device()).valid()
}

fn padded_logits(model: &Gpt2Model) -> Tensor<3> {
    let device = device();
    let g = golden();
    model.forward(
        ids(&g, "input_ids", &device),
        Some(ids(&g, "attention_mask", &device)),
    )
}

#[test]
fn safetensors_with_prefix_matches_transformers() {
    let device = device();
    let g = golden();
    let model = load("model.safetensors");
    let expected = g
        .float::<3>("logits", &device)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_close(
        padded_logits(&model),
        expected,
        1e-5,
        "logits (safetensors)",
    );
    // Row 1 alone, without its padding: the same logits as the padded row's real positions.
    let row1 = Tensor::<2, Int>::from_data(TensorData::new(vec![11i64, 23, 64], [1, 3]), &device);
    let expected = g
        .float::<3>("logits_row1_unpadded", &device)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_close(
        model.forward(row1, None),
        expected,
        1e-5,
        "logits_row1_unpadded",
    );
}

#[test]
fn pytorch_bin_without_prefix_and_with_buffers_matches_transformers() {
    let device = device();
    let g = golden();
    let (model, report) = Gpt2Model::from_pretrained_file(
        fixtures().join("config.json"),
        fixtures().join("pytorch_model.bin"),
        &device,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // The bool causal-mask buffers and the masked_bias scalars are read and reported unused.
    for k in [
        "h.0.attn.bias",
        "h.1.attn.bias",
        "h.0.attn.masked_bias",
        "h.1.attn.masked_bias",
    ] {
        assert!(
            report.unused.iter().any(|u| u == k),
            "{k} should be unused: {report}"
        );
    }
    assert_eq!(report.unused.len(), 4, "{report}");
    assert!(report.not_in_checkpoint.is_empty(), "{report}");
    let expected = g
        .float::<3>("logits", &device)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_close(
        padded_logits(&model.valid()),
        expected,
        1e-5,
        "logits (.bin)",
    );
}

#[test]
fn from_pretrained_directory_and_parameter_count() {
    let (model, report) =
        Gpt2Model::from_pretrained(fixtures(), &device()).unwrap_or_else(|e| panic!("{e}"));
    assert!(report.path.ends_with("model.safetensors"), "{report}");
    assert!(report.unused.is_empty(), "{report}");
    // wte 97*16 + wpe 32*16 + 2 blocks * (4*16 + 16*48+48 + 16*16+16 + 16*64+64 + 64*16+16)
    // + ln_f 2*16; no lm_head parameter (tied to wte).
    let per_block = 4 * 16 + (16 * 48 + 48) + (16 * 16 + 16) + (16 * 64 + 64) + (64 * 16 + 16);
    assert_eq!(
        model.num_params(),
        97 * 16 + 32 * 16 + 2 * per_block + 2 * 16
    );
    assert!(
        param_paths(&model)
            .iter()
            .all(|(p, _)| !p.contains("lm_head"))
    );
    assert_eq!(report.loaded, param_paths(&model).len(), "{report}");
}

/// Read one f32 tensor straight from a safetensors file (independently of burn-store).
fn read_safetensors_f32(path: &Path, name: &str) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{e}"));
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap_or_else(|e| panic!("{e}"))) as usize;
    let header: serde_json::Value =
        serde_json::from_slice(&bytes[8..8 + n]).unwrap_or_else(|e| panic!("{e}"));
    let entry = &header[name];
    assert_eq!(entry["dtype"], "F32", "{name}");
    let shape: Vec<usize> = entry["shape"]
        .as_array()
        .unwrap_or_else(|| panic!("{name}: no shape"))
        .iter()
        .map(|v| v.as_u64().unwrap_or(0) as usize)
        .collect();
    let off: Vec<usize> = entry["data_offsets"]
        .as_array()
        .unwrap_or_else(|| panic!("{name}: no offsets"))
        .iter()
        .map(|v| v.as_u64().unwrap_or(0) as usize)
        .collect();
    let data = bytes[8 + n + off[0]..8 + n + off[1]]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    (shape, data)
}

/// HF Conv1D weights are `[in, out]`, burn's layout: they must be loaded as they are. A square
/// `c_proj` loaded transposed would have the right shape and wrong values.
#[test]
fn conv1d_weights_are_not_transposed() {
    let model = load("model.safetensors");
    let path = fixtures().join("model.safetensors");
    for (key, got) in [
        (
            "transformer.h.0.attn.c_proj.weight",
            model.h[0].attn.c_proj.weight.val(),
        ),
        (
            "transformer.h.1.attn.c_attn.weight",
            model.h[1].attn.c_attn.weight.val(),
        ),
        (
            "transformer.h.0.mlp.c_fc.weight",
            model.h[0].mlp.c_fc.weight.val(),
        ),
    ] {
        let (shape, data) = read_safetensors_f32(&path, key);
        assert_eq!(got.dims().to_vec(), shape, "{key}");
        if shape[0] == shape[1] {
            assert_ne!(
                data[1], data[shape[1]],
                "{key}: [0,1] vs [1,0] must differ for this check"
            );
        }
        got.into_data()
            .assert_eq(&TensorData::new(data, shape), true);
    }
}

/// Feeding the tokens one chunk at a time through the KV cache gives the full forward's logits
/// at every position (positions continue from the cache), with and without adapters.
#[test]
fn cached_incremental_decoding_matches_full_forward() {
    let device = device();
    let base = load("model.safetensors");
    let mut with_adapters = base.clone();
    attach_adapters(&mut with_adapters, &AdapterConfig::houlsby(4.0), &device)
        .unwrap_or_else(|e| panic!("{e}"));
    let with_adapters =
        peft_core::randomize_matching(with_adapters, peft_core::ADAPTER_PATTERN, 0.2)
            .unwrap_or_else(|e| panic!("{e}"));
    let tokens: Vec<i64> = vec![5, 17, 42, 8, 77, 3, 11, 23, 64, 90, 1, 0, 45];
    let n = tokens.len();
    for (name, model) in [("base", base), ("adapters", with_adapters)] {
        let all = Tensor::<2, Int>::from_data(TensorData::new(tokens.clone(), [1, n]), &device);
        let full = model.forward(all.clone(), None);
        let mut cache = KvCache::new();
        // A 3-token prompt, then one token per step.
        let mut start = 0;
        for len in std::iter::once(3).chain(std::iter::repeat_n(1, n - 3)) {
            let chunk = all.clone().narrow(1, start, len);
            let step = model
                .try_forward_with_cache(chunk, None, &mut cache)
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(cache.len(), start + len);
            let expected = full.clone().narrow(1, start, len);
            assert_close(
                step,
                expected,
                1e-5,
                &format!("{name}: positions {start}..{}", start + len),
            );
            start += len;
        }
        // The cache is full: one more token past n_positions is an error, not a panic.
        let mut long = KvCache::new();
        let ids32 = Tensor::<2, Int>::zeros([1, 32], &device);
        model
            .try_forward_with_cache(ids32, None, &mut long)
            .unwrap_or_else(|e| panic!("{e}"));
        let one = Tensor::<2, Int>::zeros([1, 1], &device);
        assert!(matches!(
            model.try_forward_with_cache(one, None, &mut long),
            Err(ModelError::SequenceTooLong { len: 33, max: 32 })
        ));
    }
}

#[test]
fn greedy_generation_reproduces_transformers() {
    let g = golden();
    let model = load("model.safetensors");
    let prompt = ints(&g, "greedy_prompt");
    let expected = ints(&g, "greedy_output");
    for use_cache in [true, false] {
        let config = GenerationConfig::new()
            .with_max_new_tokens(10)
            .with_eos_token_id(Some(model.eos_token_id))
            .with_use_cache(use_cache);
        let out = model
            .generate(std::slice::from_ref(&prompt), &config)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out, vec![expected.clone()], "use_cache {use_cache}");
    }
    // Generation stops at EOS (included) and at max_new_tokens.
    let eos = expected[4];
    let config = GenerationConfig::new()
        .with_max_new_tokens(10)
        .with_eos_token_id(Some(eos));
    let out = model
        .generate(std::slice::from_ref(&prompt), &config)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        out[0],
        expected[..4].to_vec(),
        "stops after the first {eos}"
    );
    let out = model
        .generate(
            std::slice::from_ref(&prompt),
            &GenerationConfig::new().with_max_new_tokens(2),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out[0], expected[..5].to_vec());
}

#[test]
fn generation_stops_at_the_position_table_and_checks_prompts() {
    let model = load("model.safetensors");
    let config = GenerationConfig::new().with_max_new_tokens(100);
    let out = model
        .generate(&[vec![5, 17, 42]], &config)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out[0].len(), 32, "n_positions is 32");
    let bad: [&[Vec<u32>]; 4] = [&[], &[vec![]], &[vec![1; 33]], &[vec![5, 97]]];
    for prompts in bad {
        assert!(
            matches!(
                model.generate(prompts, &config),
                Err(ModelError::InvalidInput(_))
            ),
            "{prompts:?}"
        );
    }
    let bad_sampling = GenerationConfig::new()
        .with_do_sample(true)
        .with_temperature(-1.0);
    assert!(matches!(
        model.generate(&[vec![5]], &bad_sampling),
        Err(ModelError::InvalidConfig(_))
    ));
}

#[test]
fn sampling_repeats_for_a_seed_and_differs_across_seeds() {
    let model = load("model.safetensors");
    let prompt = [vec![5u32, 17, 42]];
    let config = |seed| {
        GenerationConfig::new()
            .with_max_new_tokens(12)
            .with_do_sample(true)
            .with_temperature(5.0)
            .with_seed(seed)
    };
    let a = model
        .generate(&prompt, &config(1))
        .unwrap_or_else(|e| panic!("{e}"));
    let b = model
        .generate(&prompt, &config(1))
        .unwrap_or_else(|e| panic!("{e}"));
    let c = model
        .generate(&prompt, &config(2))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(a, b, "same seed, same tokens");
    assert_ne!(a, c, "another seed at temperature 5 samples other tokens");
    assert_eq!(a[0].len(), 15);
    // Without the cache the logits are the same, so are the samples.
    let d = model
        .generate(&prompt, &config(1).with_use_cache(false))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(a, d);
    // top_k = 1 is greedy whatever the temperature.
    let greedy = model
        .generate(&prompt, &GenerationConfig::new().with_max_new_tokens(10))
        .unwrap_or_else(|e| panic!("{e}"));
    let k1 = model
        .generate(
            &prompt,
            &config(3).with_max_new_tokens(10).with_top_k(Some(1)),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(greedy, k1);
}

#[test]
fn identity_adapters_leave_logits_unchanged() {
    let device = device();
    let base = load("model.safetensors");
    let expected = padded_logits(&base);
    for config in [
        AdapterConfig::houlsby(4.0),
        AdapterConfig::pfeiffer(4.0),
        AdapterConfig::parallel(),
    ] {
        let mut model = base.clone();
        attach_adapters(&mut model, &config, &device).unwrap_or_else(|e| panic!("{e}"));
        padded_logits(&model)
            .into_data()
            .assert_eq(&expected.clone().into_data(), true);
    }
}

/// AdapterHub `seq_bn` and `double_seq_bn` on GPT-2 with non-zero random adapter weights.
#[test]
fn adapterhub_presets_match_with_nonzero_weights() {
    let device = device();
    let base = load("model.safetensors");
    for (name, config) in [
        ("seq_bn", AdapterConfig::pfeiffer(4.0)),
        ("double_seq_bn", AdapterConfig::houlsby(4.0)),
    ] {
        let g = Golden::from_file(fixtures().join(format!("adapters/{name}.json")))
            .unwrap_or_else(|e| panic!("{e}"));
        let expected = g
            .float::<3>("logits", &device)
            .unwrap_or_else(|e| panic!("{e}"));
        for file in [
            format!("adapters/{name}.safetensors"),
            format!("adapters/{name}-hub/adapter.safetensors"),
        ] {
            let mut model = base.clone();
            let report =
                attach_adapters(&mut model, &config, &device).unwrap_or_else(|e| panic!("{e}"));
            let count = g
                .value("adapter_param_count")
                .and_then(|v| v.as_u64())
                .unwrap_or(0) as usize;
            assert_eq!(
                report.params(),
                count,
                "{name}: parameter count vs AdapterHub"
            );
            let loaded = load_adapterhub_weights(&mut model, fixtures().join(&file))
                .unwrap_or_else(|e| panic!("{file}: {e}"));
            assert!(loaded.unused.is_empty(), "{file}: {loaded}");
            assert_eq!(loaded.loaded, 4 * report.attached.len(), "{file}: {loaded}");
            assert_close(padded_logits(&model), expected.clone(), 1e-5, &file);
        }
    }
}

fn copy_fixture_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(fixtures().join(f), dir.path().join(f)).unwrap_or_else(|e| panic!("{e}"));
    }
    dir
}

fn with_config(edit: impl Fn(&str) -> String) -> tempfile::TempDir {
    let dir = copy_fixture_dir();
    let path = dir.path().join("config.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&path, edit(&text)).unwrap_or_else(|e| panic!("{e}"));
    dir
}

#[test]
fn config_errors_are_typed() {
    let dir = with_config(|t| t.replace("\"n_embd\": 16", "\"n_embd\": 17"));
    match Gpt2Model::from_pretrained(dir.path(), &device()) {
        Err(ModelError::InvalidConfig(m)) => assert!(m.contains("not divisible"), "{m}"),
        other => panic!("expected InvalidConfig, got {:?}", other.err()),
    }
    let dir = with_config(|t| t[..t.len() / 2].to_string());
    assert!(matches!(
        Gpt2Model::from_pretrained(dir.path(), &device()),
        Err(ModelError::MalformedJson { .. })
    ));
    let dir = with_config(|t| {
        t.replace(
            "\"reorder_and_upcast_attn\": false",
            "\"reorder_and_upcast_attn\": true",
        )
    });
    assert!(matches!(
        Gpt2Model::from_pretrained(dir.path(), &device()),
        Err(ModelError::InvalidConfig(_))
    ));
    let dir = with_config(|t| t.to_string());
    std::fs::remove_file(dir.path().join("model.safetensors")).ok();
    assert!(matches!(
        Gpt2Model::from_pretrained(dir.path(), &device()),
        Err(ModelError::NoCheckpoint { .. })
    ));
    assert!(matches!(
        Gpt2Config::new()
            .with_n_embd(17)
            .with_n_head(2)
            .init(&device()),
        Err(ModelError::InvalidConfig(_))
    ));
}

#[test]
fn checkpoint_mismatches_are_typed_errors() {
    let dir = with_config(|t| t.replace("\"n_layer\": 2", "\"n_layer\": 3"));
    match Gpt2Model::from_pretrained(dir.path(), &device()) {
        Err(ModelError::MissingWeights { keys, .. }) => {
            assert!(keys.iter().all(|k| k.starts_with("h.2.")), "{keys:?}");
            assert!(keys.iter().all(|k| !k.contains("adapter")), "{keys:?}");
        }
        other => panic!("expected MissingWeights, got {:?}", other.err()),
    }
    let dir = with_config(|t| t.replace("\"n_inner\": null", "\"n_inner\": 60"));
    match Gpt2Model::from_pretrained(dir.path(), &device()) {
        Err(ModelError::IncompatibleWeights { problems, .. }) => {
            assert!(
                problems.iter().any(|p| p.contains("mlp.c_fc")),
                "{problems:?}"
            )
        }
        other => panic!("expected IncompatibleWeights, got {:?}", other.err()),
    }
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let device = device();
    let model = load("model.safetensors");
    let too_long = Tensor::<2, Int>::zeros([1, 33], &device);
    assert!(matches!(
        model.try_forward(too_long, None),
        Err(ModelError::SequenceTooLong { len: 33, max: 32 })
    ));
    let out_of_vocab =
        Tensor::<2, Int>::from_data(TensorData::new(vec![3i64, 97], [1, 2]), &device);
    assert!(matches!(
        model.try_forward(out_of_vocab, None),
        Err(ModelError::TokenIdOutOfRange {
            id: 97,
            vocab_size: 97
        })
    ));
    let ok = Tensor::<2, Int>::from_data(TensorData::new(vec![3i64, 96], [1, 2]), &device);
    let bad_mask = Tensor::<2, Int>::ones([1, 3], &device);
    assert!(matches!(
        model.try_forward(ok.clone(), Some(bad_mask)),
        Err(ModelError::InvalidInput(_))
    ));
    let logits = model
        .try_forward(ok, None)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(logits.dims(), [1, 2, 97]);
}

#[test]
fn causal_lm_loss_ignores_padding_and_matches_a_direct_computation() {
    let device = device();
    let g = golden();
    let model = load("model.safetensors");
    let input_ids = ids(&g, "input_ids", &device);
    let mask = ids(&g, "attention_mask", &device);
    let logits = model.forward(input_ids.clone(), Some(mask.clone()));
    let loss = causal_lm_loss(logits.clone(), input_ids.clone(), mask).into_scalar::<f64>();
    // Direct: row 0 predicts 5 targets, row 1 predicts 2 (its last 3 positions are padding).
    let lp: Vec<f32> = burn::tensor::activation::log_softmax(logits, 2)
        .into_data()
        .iter::<f32>()
        .collect();
    let tok = ints(&g, "input_ids");
    let mut sum = 0.0f64;
    let mut n = 0;
    for (row, real) in [(0usize, 6usize), (1, 3)] {
        for t in 0..real - 1 {
            let target = tok[row * 6 + t + 1] as usize;
            sum -= f64::from(lp[(row * 6 + t) * 97 + target]);
            n += 1;
        }
    }
    assert_eq!(n, 7);
    assert!((loss - sum / 7.0).abs() < 1e-5, "{loss} vs {}", sum / 7.0);
    // A single position has no target.
    let one = Tensor::<2, Int>::from_data(TensorData::new(vec![3i64], [1, 1]), &device);
    let l = causal_lm_loss(
        model.forward(one.clone(), None),
        one.clone(),
        one.ones_like(),
    );
    assert_eq!(l.into_scalar::<f64>(), 0.0);
}

/// Every float parameter's path and value, in module order.
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
    let paths: Vec<String> = param_paths(module).into_iter().map(|(p, _)| p).collect();
    let seen: Vec<String> = v.1.iter().map(|(p, _)| p.clone()).collect();
    assert_eq!(
        paths, seen,
        "visitor and param_paths agree on the parameters"
    );
    v.1
}

/// Houlsby adapters on a frozen tiny GPT-2 learn a repeated sequence with AdamW; the base is
/// bit-identical afterwards.
#[test]
fn adapter_training_lowers_the_loss_and_leaves_the_base_untouched() {
    let device = Device::flex().autodiff();
    device.seed(5);
    let mut model = load_on("model.safetensors", &device);
    attach_adapters(&mut model, &AdapterConfig::houlsby(4.0), &device)
        .unwrap_or_else(|e| panic!("{e}"));
    let trainable = Trainable::adapters();
    let mut model = freeze_except(model, &trainable).unwrap_or_else(|e| panic!("{e}"));
    let before = values(&model);

    let pattern = [5i64, 17, 42, 8, 77, 3];
    let tokens: Vec<i64> = pattern.iter().copied().cycle().take(24).collect();
    let input_ids = Tensor::<2, Int>::from_data(TensorData::new(tokens, [1, 24]), &device);
    let mask = input_ids.ones_like();
    let eval_loss = |m: &Gpt2Model| {
        let m = m.valid();
        let (ids, mask) = (input_ids.clone().inner(), mask.clone().inner());
        causal_lm_loss(m.forward(ids.clone(), Some(mask.clone())), ids, mask).into_scalar::<f64>()
    };
    let initial = eval_loss(&model);

    let mut optim = AdamWConfig::new()
        .with_epsilon(1e-8)
        .with_weight_decay(0.0)
        .init();
    for _ in 0..30 {
        let logits = model.forward(input_ids.clone(), Some(mask.clone()));
        let loss = causal_lm_loss(logits, input_ids.clone(), mask.clone());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(5e-2, model, grads);
    }
    let last = eval_loss(&model);
    // The tiny model (width 16, frozen tied head, bottleneck 4) learns slowly: about 4.80 -> 3.78
    // in 30 steps at lr 5e-2. Ask for half a nat.
    assert!(
        last < initial - 0.5,
        "the loss should fall clearly: {initial:.4} -> {last:.4}"
    );

    let after = values(&model);
    assert_eq!(before.len(), after.len());
    let mut changed = 0;
    for ((path, b), (path2, a)) in before.iter().zip(&after) {
        assert_eq!(path, path2);
        if trainable.matches(path).unwrap_or(false) {
            changed += usize::from(b != a);
        } else {
            assert_eq!(b, a, "{path} is frozen and must be bit-identical");
        }
    }
    assert_eq!(
        changed,
        4 * 4,
        "every adapter tensor of the 4 adapters trained"
    );
}

/// `$PEFT_ASSETS_DIR/<rel>`; panics (so the test fails) when unset or missing.
fn asset(rel: &str) -> PathBuf {
    let dir = std::env::var_os("PEFT_ASSETS_DIR").unwrap_or_else(|| {
        panic!("PEFT_ASSETS_DIR is not set: point it at the shared assets directory (../shared)")
    });
    let path = PathBuf::from(dir).join(rel);
    assert!(path.exists(), "asset {} does not exist", path.display());
    path
}

/// The shared tiny-random-gpt2 (real GPT-2 vocabulary, 50257 tokens) against its
/// `reference_outputs.json` from transformers.
#[test]
#[ignore = "needs ../shared assets: set PEFT_ASSETS_DIR"]
fn shared_tiny_random_gpt2_matches_reference_outputs() {
    let dir = asset("models/tiny-random-gpt2");
    for f in ["config.json", "model.safetensors", "reference_outputs.json"] {
        assert!(
            dir.join(f).is_file(),
            "{} is missing",
            dir.join(f).display()
        );
    }
    let device = device();
    let (model, report) =
        Gpt2Model::from_pretrained(&dir, &device).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        report.not_in_checkpoint.is_empty() && report.unused.is_empty(),
        "{report}"
    );
    let model = model.valid();
    let text = std::fs::read_to_string(dir.join("reference_outputs.json"))
        .unwrap_or_else(|e| panic!("{e}"));
    let reference: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        reference["params"].as_u64(),
        Some(model.num_params() as u64),
        "parameter count"
    );
    let floats = |v: &serde_json::Value| -> Vec<f64> {
        v.as_array()
            .unwrap_or_else(|| panic!("not an array: {v}"))
            .iter()
            .map(|x| x.as_f64().unwrap_or(f64::NAN))
            .collect()
    };
    let cases = reference["cases"]
        .as_array()
        .unwrap_or_else(|| panic!("no cases"));
    assert_eq!(cases.len(), 2);
    for case in cases {
        let tokens: Vec<i64> = case["input_ids"]
            .as_array()
            .unwrap_or_else(|| panic!("no input_ids"))
            .iter()
            .map(|x| x.as_i64().unwrap_or(-1))
            .collect();
        let n = tokens.len();
        let input = Tensor::<2, Int>::from_data(TensorData::new(tokens, [1, n]), &device);
        let hidden = model.hidden_states(input.clone(), None);
        let logits = model
            .try_forward(input, None)
            .unwrap_or_else(|e| panic!("{e}"));
        let [_, s, v] = logits.dims();
        assert_eq!(
            vec![s as u64, v as u64],
            case["logits_shape"]
                .as_array()
                .unwrap_or_else(|| panic!("no shape"))
                .iter()
                .map(|x| x.as_u64().unwrap_or(0))
                .collect::<Vec<_>>()
        );
        let last: Vec<f32> = logits
            .clone()
            .narrow(1, s - 1, 1)
            .reshape([v])
            .into_data()
            .iter::<f32>()
            .collect();
        for (i, (got, want)) in last
            .iter()
            .zip(floats(&case["logits_last_first8"]))
            .enumerate()
        {
            assert!(
                (f64::from(*got) - want).abs() <= 1e-4,
                "logits[-1][{i}]: {got} vs {want}"
            );
        }
        let argmax = last
            .iter()
            .enumerate()
            .fold(0, |best, (i, &x)| if x > last[best] { i } else { best });
        assert_eq!(
            Some(argmax as u64),
            case["logits_last_argmax"].as_u64(),
            "argmax"
        );
        let h0: Vec<f32> = hidden
            .narrow(1, 0, 1)
            .reshape([16])
            .into_data()
            .iter::<f32>()
            .collect();
        for (i, (got, want)) in h0
            .iter()
            .zip(floats(&case["last_hidden_first8_token0"]))
            .enumerate()
        {
            assert!(
                (f64::from(*got) - want).abs() <= 1e-4,
                "hidden[0][{i}]: {got} vs {want}"
            );
        }
        // The sum runs over s * 50257 float32 values and is rounded to 4 decimals in the file:
        // rounding (5e-5) plus summation order move it by ~1e-4 (observed 6e-5 and 1.1e-4).
        let sum = logits.sum().into_scalar::<f64>();
        let want = case["logits_sum"].as_f64().unwrap_or(f64::NAN);
        assert!((sum - want).abs() <= 1e-3, "logits sum {sum} vs {want}");
    }
}
