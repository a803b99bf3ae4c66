//! BERT parity with Hugging Face transformers and AdapterHub on the committed tiny fixtures.

use std::path::PathBuf;

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor, TensorData, Tolerance};
use peft_core::{AdapterConfig, BottleneckWidth, attach_adapters};
use peft_models::ModelError;
use peft_models::adapterhub::load_adapterhub_weights;
use peft_models::bert::{BertConfig, BertInput, BertModel};
use peft_models::golden::Golden;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tiny-bert")
}

fn device() -> Device {
    Device::flex()
}

fn golden() -> Golden {
    Golden::from_file(fixtures().join("golden.json")).unwrap_or_else(|e| panic!("{e}"))
}

fn input(g: &Golden, device: &Device) -> BertInput {
    let ids = g
        .int::<2>("input_ids", device)
        .unwrap_or_else(|e| panic!("{e}"));
    let types = g
        .int::<2>("token_type_ids", device)
        .unwrap_or_else(|e| panic!("{e}"));
    let mask = g
        .int::<2>("attention_mask", device)
        .unwrap_or_else(|e| panic!("{e}"));
    BertInput::new(ids)
        .with_token_type_ids(types)
        .with_attention_mask(mask)
}

fn assert_close<const D: usize>(got: Tensor<D>, expected: Tensor<D>, tol: f64, what: &str) {
    let diff = (got.clone() - expected.clone())
        .abs()
        .max()
        .into_scalar::<f64>();
    assert!(diff <= tol, "{what}: max abs diff {diff} > {tol}");
    got.into_data()
        .assert_approx_eq::<f32>(&expected.into_data(), Tolerance::absolute(tol));
}

fn load(file: &str) -> BertModel {
    let device = device();
    let config =
        BertConfig::from_hf_file(fixtures().join("config.json")).unwrap_or_else(|e| panic!("{e}"));
    let mut model = config.init(&device).unwrap_or_else(|e| panic!("{e}"));
    let report = model
        .load_checkpoint(fixtures().join(file))
        .unwrap_or_else(|e| panic!("{file}: {e}"));
    assert!(report.not_in_checkpoint.is_empty(), "{report}");
    model.valid()
}

#[test]
fn safetensors_matches_transformers() {
    let device = device();
    let g = golden();
    let model = load("model.safetensors");
    let out = model.forward(input(&g, &device));
    let expected = g
        .float::<3>("last_hidden_state", &device)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_close(out.last_hidden_state, expected, 1e-5, "last_hidden_state");
    let pooled = g
        .float::<2>("pooler_output", &device)
        .unwrap_or_else(|e| panic!("{e}"));
    let got = out
        .pooler_output
        .unwrap_or_else(|| panic!("pooler expected"));
    assert_close(got, pooled, 1e-5, "pooler_output");
}

#[test]
fn pytorch_bin_with_prefix_and_buffers_matches_transformers() {
    let device = device();
    let g = golden();
    let (model, report) = BertModel::from_pretrained_file(
        fixtures().join("config.json"),
        fixtures().join("pytorch_model.bin"),
        &device,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        report.unused.iter().any(|k| k.contains("position_ids")),
        "the position_ids buffer is reported as unused: {report}"
    );
    let out = model.valid().forward(input(&g, &device));
    let expected = g
        .float::<3>("last_hidden_state", &device)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_close(
        out.last_hidden_state,
        expected,
        1e-5,
        "last_hidden_state (.bin)",
    );
}

#[test]
fn f16_checkpoint_is_cast_to_f32() {
    let device = device();
    let g = golden();
    let model = load("model-f16.safetensors");
    let out = model.forward(input(&g, &device));
    let expected = g
        .float::<3>("f16_last_hidden_state", &device)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_close(
        out.last_hidden_state,
        expected,
        1e-5,
        "f16 last_hidden_state",
    );
}

/// An f16 `pytorch_model.bin` (with the `bert.` prefix) is cast to f32 like f16 safetensors:
/// the same outputs as PyTorch on the f16-rounded weights, and the f32 golden within f16
/// rounding (max |diff| 1.6e-3 in PyTorch).
#[test]
fn f16_pytorch_bin_is_cast_to_f32() {
    let device = device();
    let g = golden();
    let model = load("pytorch_model-f16.bin");
    let word = model.embeddings.word_embeddings.weight.val();
    assert_eq!(word.dtype(), burn::tensor::DType::F32);
    let out = model.forward(input(&g, &device));
    let f16 = g
        .float::<3>("f16_last_hidden_state", &device)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_close(
        out.last_hidden_state.clone(),
        f16,
        1e-5,
        "f16 .bin last_hidden_state",
    );
    let f32 = g
        .float::<3>("last_hidden_state", &device)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_close(out.last_hidden_state, f32, 5e-3, "f16 .bin vs f32 golden");
}

#[test]
fn identity_adapters_leave_outputs_unchanged() {
    let device = device();
    let g = golden();
    let base = load("model.safetensors");
    let expected = base.forward(input(&g, &device)).last_hidden_state;
    for config in [
        AdapterConfig::houlsby(4.0),
        AdapterConfig::pfeiffer(4.0),
        AdapterConfig::parallel(),
    ] {
        let mut model = base.clone();
        attach_adapters(&mut model, &config, &device).unwrap_or_else(|e| panic!("{e}"));
        let got = model.forward(input(&g, &device)).last_hidden_state;
        got.into_data()
            .assert_eq(&expected.clone().into_data(), true);
    }
}

/// AdapterHub `seq_bn`, `double_seq_bn`, `par_bn`, `scaled_par_bn` with non-zero random weights.
#[test]
fn adapterhub_presets_match_with_nonzero_weights() {
    let device = device();
    let base = load("model.safetensors");
    // The fixtures use reduction factor 4 for every preset (the parallel presets default to 2).
    let rf4 = |mut c: AdapterConfig| {
        c.bottleneck.width = BottleneckWidth::ReductionFactor(4.0);
        c
    };
    let cases = [
        ("seq_bn", AdapterConfig::pfeiffer(4.0)),
        ("double_seq_bn", AdapterConfig::houlsby(4.0)),
        ("par_bn", rf4(AdapterConfig::parallel())),
        ("scaled_par_bn", rf4(AdapterConfig::scaled_parallel())),
    ];
    for (name, config) in cases {
        let g = Golden::from_file(fixtures().join(format!("adapters/{name}.json")))
            .unwrap_or_else(|e| panic!("{e}"));
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
        let loaded = load_adapterhub_weights(
            &mut model,
            fixtures().join(format!("adapters/{name}.safetensors")),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(loaded.unused.is_empty(), "{name}: {loaded}");
        let out = model.forward(input(&golden(), &device));
        let expected = g
            .float::<3>("last_hidden_state", &device)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_close(out.last_hidden_state, expected, 1e-5, name);
        let pooled = g
            .float::<2>("pooler_output", &device)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_close(
            out.pooler_output.unwrap_or_else(|| panic!("pooler")),
            pooled,
            1e-5,
            name,
        );
    }
}

/// An AdapterHub file whose tensors do not all land in the model (its config differs from
/// the attached one) is an error naming them, and the model is left untouched.
#[test]
fn adapterhub_file_with_unmatched_tensors_is_an_error_and_loads_nothing() {
    let device = device();
    let base = load("model.safetensors");
    let x = input(&golden(), &device);
    // Model: seq_bn (output site only); file: double_seq_bn (attention and output sites).
    let mut model = base.clone();
    attach_adapters(&mut model, &AdapterConfig::pfeiffer(4.0), &device)
        .unwrap_or_else(|e| panic!("{e}"));
    let before = model.forward(x.clone()).last_hidden_state;
    let file = fixtures().join("adapters/double_seq_bn-hub/adapter.safetensors");
    let err = load_adapterhub_weights(&mut model, &file);
    match &err {
        Err(ModelError::UnmatchedWeights { keys, .. }) => {
            assert_eq!(
                keys.len(),
                2 * 4,
                "4 attention-site tensors per layer: {keys:?}"
            );
            assert!(
                keys.iter()
                    .all(|k| k.contains(".attention.output.adapters.default.")),
                "{keys:?}"
            );
        }
        other => panic!("expected UnmatchedWeights, got {other:?}"),
    }
    // No half-applied load: the output-site adapters, which do fit, kept their identity init.
    let after = model.forward(x.clone()).last_hidden_state;
    assert_close(after, before.clone(), 0.0, "model untouched");
    let plain = base.forward(x).last_hidden_state;
    assert_close(before, plain, 1e-6, "fresh adapters are the identity");

    // The other way round: the model has adapters the file lacks (a missing-weights error).
    let mut model = base.clone();
    attach_adapters(&mut model, &AdapterConfig::houlsby(4.0), &device)
        .unwrap_or_else(|e| panic!("{e}"));
    let err = load_adapterhub_weights(
        &mut model,
        fixtures().join("adapters/seq_bn-hub/adapter.safetensors"),
    );
    assert!(
        matches!(&err, Err(ModelError::MissingWeights { keys, .. }) if keys.len() == 8),
        "{err:?}"
    );
}

fn copy_fixture_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(fixtures().join(f), dir.path().join(f)).unwrap_or_else(|e| panic!("{e}"));
    }
    dir
}

#[test]
fn truncated_safetensors_is_a_typed_error() {
    let dir = copy_fixture_dir();
    let path = dir.path().join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap_or_default();
    for cut in [bytes.len() / 2, 7, 0] {
        std::fs::write(&path, &bytes[..cut]).unwrap_or_else(|e| panic!("{e}"));
        let err = BertModel::from_pretrained(dir.path(), &device()).err();
        assert!(
            matches!(err, Some(ModelError::Checkpoint { .. })),
            "cut at {cut}: {err:?}"
        );
    }
}

#[test]
fn wrong_shape_is_a_typed_error_naming_the_tensor() {
    let dir = copy_fixture_dir();
    // A config whose intermediate size differs from the checkpoint's (37).
    let config = std::fs::read_to_string(dir.path().join("config.json")).unwrap_or_default();
    std::fs::write(
        dir.path().join("config.json"),
        config.replace("\"intermediate_size\": 37", "\"intermediate_size\": 40"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    match BertModel::from_pretrained(dir.path(), &device()) {
        Err(ModelError::IncompatibleWeights { problems, .. }) => {
            assert!(
                problems.iter().any(|p| p.contains("intermediate.dense")),
                "{problems:?}"
            )
        }
        other => panic!("expected IncompatibleWeights, got {:?}", other.err()),
    }
}

#[test]
fn missing_key_is_a_typed_error_naming_it() {
    let dir = copy_fixture_dir();
    // A config with one more layer than the checkpoint holds.
    let config = std::fs::read_to_string(dir.path().join("config.json")).unwrap_or_default();
    std::fs::write(
        dir.path().join("config.json"),
        config.replace("\"num_hidden_layers\": 2", "\"num_hidden_layers\": 3"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    match BertModel::from_pretrained(dir.path(), &device()) {
        Err(ModelError::MissingWeights { keys, .. }) => {
            assert!(
                keys.iter().any(|k| k.starts_with("encoder.layer.2.")),
                "{keys:?}"
            );
            assert!(keys.iter().all(|k| !k.contains("adapter")), "{keys:?}");
        }
        other => panic!("expected MissingWeights, got {:?}", other.err()),
    }
}

#[test]
fn malformed_and_inconsistent_configs_are_typed_errors() {
    let dir = copy_fixture_dir();
    let path = dir.path().join("config.json");
    std::fs::write(&path, "{\"hidden_size\": 32,").unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        BertModel::from_pretrained(dir.path(), &device()),
        Err(ModelError::MalformedJson { .. })
    ));
    std::fs::write(&path, "{\"hidden_size\": 100, \"num_attention_heads\": 12}")
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        BertModel::from_pretrained(dir.path(), &device()),
        Err(ModelError::InvalidConfig(_))
    ));
    std::fs::remove_file(dir.path().join("model.safetensors")).ok();
    std::fs::write(
        &path,
        std::fs::read(fixtures().join("config.json")).unwrap_or_default(),
    )
    .ok();
    assert!(matches!(
        BertModel::from_pretrained(dir.path(), &device()),
        Err(ModelError::NoCheckpoint { .. })
    ));
}

#[test]
fn too_long_input_is_an_error_not_a_panic() {
    let model = load("model.safetensors");
    let ids = Tensor::<2, burn::tensor::Int>::zeros([1, 65], &device());
    let err = model.try_forward(BertInput::new(ids));
    assert!(
        matches!(err, Err(ModelError::SequenceTooLong { len: 65, max: 64 })),
        "{err:?}"
    );
}

/// Token ids >= vocab_size and segment ids >= type_vocab_size are typed errors before any
/// tensor op (they used to reach the embedding gather).
#[test]
fn out_of_range_ids_are_typed_errors() {
    let device = device();
    let model = load("model.safetensors");
    let ids = |v: Vec<i64>| Tensor::<2, Int>::from_data(TensorData::new(v, [1, 3]), &device);
    let err = model.try_forward(BertInput::new(ids(vec![2, 99, 3])));
    assert!(
        matches!(
            err,
            Err(ModelError::TokenIdOutOfRange {
                id: 99,
                vocab_size: 99
            })
        ),
        "{err:?}"
    );
    let err = model
        .try_forward(BertInput::new(ids(vec![2, 98, 3])).with_token_type_ids(ids(vec![0, 1, 2])));
    assert!(
        matches!(
            err,
            Err(ModelError::TokenTypeOutOfRange {
                id: 2,
                type_vocab_size: 2
            })
        ),
        "{err:?}"
    );
    assert!(
        model
            .try_forward(
                BertInput::new(ids(vec![2, 98, 3])).with_token_type_ids(ids(vec![0, 1, 1]))
            )
            .is_ok()
    );
    let limits = model.input_limits();
    assert_eq!(
        (limits.vocab_size, limits.max_len, limits.type_vocab_size),
        (99, 64, 2)
    );
}

#[test]
fn bert_config_validates_in_code_too() {
    let bad = BertConfig::new().with_hidden_size(100);
    assert!(matches!(
        bad.init(&device()),
        Err(ModelError::InvalidConfig(_))
    ));
}

/// The trainable selection names adapter and head parameters only: base parameters whose path
/// merely contains `adapter` or `head` stay frozen.
#[test]
fn trainable_selection_matches_adapter_and_head_paths_only() {
    let t = peft_models::head::BertClassifier::adapter_trainable();
    for (path, expected) in [
        ("heads.default.classifier.weight", true),
        ("heads.sst2.dense.bias", true),
        ("model.heads.default.classifier.weight", true),
        ("head.classifier.weight", false),
        (
            "bert.encoder.layer.0.output.adapters.default.adapter_up.weight",
            true,
        ),
        (
            "bert.encoder.layer.0.output.adapters.a,b.query.weight",
            false,
        ),
        ("bert.encoder.head.weight", false),
        ("bert.encoder.adapter.weight", false),
        ("bert.encoder.layer.0.adapter_gate.weight", false),
        ("bert.heads.classifier.weight", false),
    ] {
        assert_eq!(
            t.matches(path).unwrap_or_else(|e| panic!("{e}")),
            expected,
            "{path}"
        );
    }
}
