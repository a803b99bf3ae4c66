//! Hugging Face PEFT 0.21.2 LoRA and IA³ directories, both directions, on the committed tiny fixtures:
//! - golden: we load what `PeftModel.save_pretrained` wrote (`fixtures/<model>/peft/`, step
//!   `peft-lora` of `scripts/make_fixtures.py`, every `lora_B` non-zero) and reproduce PEFT's
//!   outputs within 1e-5, unmerged and merged; unmerging restores the base bit for bit;
//! - round trip: `fixtures/<model>/peft-from-rust/` holds directories this test wrote
//!   (`PEFT_WRITE_FIXTURES=1`) that Python's `PeftModel.from_pretrained` reproduced within 1e-5
//!   (step `peft-roundtrip`, `python_check.json`); the test guards that what we load from them
//!   gives the recorded outputs and that saving them again is byte-identical.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData, Tolerance};
use peft_core::peft::{PeftKeys, load_peft, save_peft};
use peft_core::{
    Ia3Config, Ia3Init, LinearTarget, LoraConfig, LoraInit, MethodConfig, PeftError, Setup,
    add_adapter, linear_sites, merge_adapter, set_active, unmerge_adapter,
};
use peft_models::bert::weights::BERT_PEFT_KEYS;
use peft_models::bert::{BertConfig, BertInput, BertModel};
use peft_models::golden::Golden;
use peft_models::gpt2::Gpt2Model;
use peft_models::gpt2::weights::GPT2_PEFT_KEYS;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn device() -> Device {
    Device::flex()
}

fn golden(path: impl AsRef<Path>) -> Golden {
    Golden::from_file(path).unwrap_or_else(|e| panic!("{e}"))
}

fn max_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f64 {
    assert_eq!(a.dims(), b.dims());
    (a - b).abs().max().into_scalar::<f64>()
}

fn assert_close<const D: usize>(got: Tensor<D>, expected: Tensor<D>, tol: f64, what: &str) {
    let diff = max_diff(got.clone(), expected.clone());
    assert!(diff <= tol, "{what}: max abs diff {diff} > {tol}");
    got.into_data()
        .assert_approx_eq::<f32>(&expected.into_data(), Tolerance::absolute(tol));
}

fn bert() -> BertModel {
    let dir = root().join("tiny-bert");
    let config =
        BertConfig::from_hf_file(dir.join("config.json")).unwrap_or_else(|e| panic!("{e}"));
    let mut model = config.init(&device()).unwrap_or_else(|e| panic!("{e}"));
    let report = model
        .load_checkpoint(dir.join("model.safetensors"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(report.not_in_checkpoint.is_empty(), "{report}");
    model.valid()
}

fn gpt2() -> Gpt2Model {
    let dir = root().join("tiny-gpt2");
    let (model, report) = Gpt2Model::from_pretrained_file(
        dir.join("config.json"),
        dir.join("model.safetensors"),
        &device(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(report.not_in_checkpoint.is_empty(), "{report}");
    model.valid()
}

fn bert_out(model: &BertModel) -> Tensor<3> {
    let g = golden(root().join("tiny-bert/golden.json"));
    let d = device();
    let int = |n: &str| g.int::<2>(n, &d).unwrap_or_else(|e| panic!("{e}"));
    let input = BertInput::new(int("input_ids"))
        .with_token_type_ids(int("token_type_ids"))
        .with_attention_mask(int("attention_mask"));
    model.forward(input).last_hidden_state
}

fn gpt2_out(model: &Gpt2Model) -> Tensor<3> {
    let g = golden(root().join("tiny-gpt2/golden.json"));
    let d = device();
    let int = |n: &str| g.int::<2>(n, &d).unwrap_or_else(|e| panic!("{e}"));
    model.forward(int("input_ids"), Some(int("attention_mask")))
}

fn weights(sites: Vec<(usize, LinearTarget, &peft_core::LinearSite)>) -> Vec<TensorData> {
    sites
        .into_iter()
        .map(|(_, _, s)| s.weight.val().into_data())
        .collect()
}

/// Load a PEFT directory, match PEFT's outputs unmerged and merged, and unmerge back to the
/// base bit for bit.
fn golden_case<M: peft_core::AdapterHost + Module>(
    mut model: M,
    keys: &PeftKeys,
    dir: &Path,
    key: &str,
    forward: impl Fn(&M) -> Tensor<3>,
) {
    let g = golden(dir.with_extension("json"));
    let d = device();
    let want = g.float::<3>(key, &d).unwrap_or_else(|e| panic!("{e}"));
    let merged_want = g
        .float::<3>(&format!("merged_{key}"), &d)
        .unwrap_or_else(|e| panic!("{e}"));
    let base_out = forward(&model);
    let base_w = weights(linear_sites(&model));
    let load = load_peft(&mut model, dir, "p", keys, &d).unwrap_or_else(|e| panic!("{e}"));
    assert!(load.warnings.is_empty(), "{:?}", load.warnings);
    // Inactive: the base.
    assert_eq!(forward(&model).into_data(), base_out.clone().into_data());
    set_active(&mut model, Some(Setup::single("p"))).unwrap_or_else(|e| panic!("{e}"));
    let what = dir.display().to_string();
    assert_close(forward(&model), want.clone(), 1e-5, &what);
    assert!(
        max_diff(want.clone(), base_out.clone()) > 1e-2,
        "{what}: the fixture must differ from the base"
    );
    merge_adapter(&mut model, "p").unwrap_or_else(|e| panic!("{e}"));
    assert_close(
        forward(&model),
        merged_want,
        1e-5,
        &format!("{what} merged"),
    );
    assert_close(
        forward(&model),
        want,
        1e-5,
        &format!("{what} merged vs unmerged"),
    );
    unmerge_adapter(&mut model, "p").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        weights(linear_sites(&model)),
        base_w,
        "unmerge restores the base"
    );
    set_active(&mut model, None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(forward(&model).into_data(), base_out.into_data());
}

#[test]
fn bert_loads_peft_lora_and_ia3_and_matches_peft() {
    for case in ["lora", "rslora", "ia3"] {
        let dir = root().join("tiny-bert/peft").join(case);
        golden_case(bert(), &BERT_PEFT_KEYS, &dir, "last_hidden_state", bert_out);
    }
}

#[test]
fn gpt2_loads_peft_lora_and_ia3_on_conv1d_and_matches_peft() {
    for case in ["lora", "ia3"] {
        let dir = root().join("tiny-gpt2/peft").join(case);
        golden_case(gpt2(), &GPT2_PEFT_KEYS, &dir, "logits", gpt2_out);
    }
}

/// A change to a config text.
type Edit = Box<dyn Fn(String) -> String>;

/// Copy a fixture directory into a temporary one, changing the config text.
fn edited(dir: &Path, edit: impl Fn(String) -> String) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    for name in ["adapter_config.json", "adapter_model.safetensors"] {
        std::fs::copy(dir.join(name), tmp.path().join(name)).unwrap_or_else(|e| panic!("{e}"));
    }
    let p = tmp.path().join("adapter_config.json");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&p, edit(text)).unwrap_or_else(|e| panic!("{e}"));
    tmp
}

#[test]
fn bad_peft_directories_are_typed_errors_and_leave_the_model_unchanged() {
    let dir = root().join("tiny-bert/peft/lora");
    let mut model = bert();
    let before = weights(linear_sites(&model));
    let d = device();
    let cases: Vec<(&str, Edit)> = vec![
        (
            "use_dora",
            Box::new(|t| t.replace("\"use_dora\": false", "\"use_dora\": true")),
        ),
        (
            "bias",
            Box::new(|t| t.replace("\"bias\": \"none\"", "\"bias\": \"lora_only\"")),
        ),
        (
            "layer_replication",
            Box::new(|t| {
                t.replace(
                    "\"layer_replication\": null",
                    "\"layer_replication\": [[0, 2]]",
                )
            }),
        ),
        (
            "fan_in_fan_out",
            Box::new(|t| t.replace("\"fan_in_fan_out\": false", "\"fan_in_fan_out\": true")),
        ),
    ];
    for (field, edit) in cases {
        let tmp = edited(&dir, edit);
        match load_peft(&mut model, tmp.path(), "p", &BERT_PEFT_KEYS, &d) {
            Err(PeftError::HubUnsupported { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: {other:?}"),
        }
    }
    // A config that targets fewer modules than the file holds: the rest land nowhere.
    let tmp = edited(&dir, |t| {
        t.replace("\"intermediate.dense\"", "\"nothing_here\"")
    });
    assert!(matches!(
        load_peft(&mut model, tmp.path(), "p", &BERT_PEFT_KEYS, &d),
        Err(PeftError::HubUnplaced { keys, .. }) if keys.iter().all(|k| k.contains("intermediate.dense"))
    ));
    // More targets than tensors: missing tensors.
    let tmp = edited(&dir, |t| t.replace("\"query\"", "\"query\", \"key\""));
    assert!(matches!(
        load_peft(&mut model, tmp.path(), "p", &BERT_PEFT_KEYS, &d),
        Err(PeftError::HubMissingTensors { paths, .. }) if paths.iter().all(|k| k.contains(".key."))
    ));
    // GPT-2's directory onto BERT: nothing matches.
    assert!(
        load_peft(
            &mut model,
            root().join("tiny-gpt2/peft/lora"),
            "p",
            &BERT_PEFT_KEYS,
            &d
        )
        .is_err()
    );
    assert!(peft_core::adapters(&model).is_empty());
    assert_eq!(weights(linear_sites(&model)), before);
}

fn write_json(path: &Path, value: &serde_json::Value) {
    let text = serde_json::to_string(value).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(path, text + "\n").unwrap_or_else(|e| panic!("{e}"));
}

fn entry(t: Tensor<3>) -> serde_json::Value {
    let dims = t.dims().to_vec();
    let data = t
        .into_data()
        .try_to_vec::<f32>()
        .unwrap_or_else(|e| panic!("{e:?}"));
    serde_json::json!({ "shape": dims, "data": data })
}

/// One model's round trip: write (with `PEFT_WRITE_FIXTURES=1`) or check the committed files.
fn roundtrip<M: peft_core::AdapterHost + Module>(
    fresh: impl Fn() -> M,
    keys: &PeftKeys,
    model_dir: &str,
    cases: &[(&str, MethodConfig)],
    task_type: Option<&str>,
    forward: impl Fn(&M) -> Tensor<3>,
) {
    let out_root = root().join(model_dir).join("peft-from-rust");
    let d = device();
    let base_name = format!("fixtures/{model_dir}");
    if std::env::var_os("PEFT_WRITE_FIXTURES").is_some() {
        let mut rec = serde_json::Map::new();
        rec.insert(
            "cases".into(),
            serde_json::json!(cases.iter().map(|(c, _)| *c).collect::<Vec<_>>()),
        );
        for (case, config) in cases {
            let mut model = fresh();
            d.seed(13);
            add_adapter(&mut model, "rust", config, &d).unwrap_or_else(|e| panic!("{e}"));
            set_active(&mut model, Some(Setup::single("rust"))).unwrap_or_else(|e| panic!("{e}"));
            let dir = out_root.join(case);
            std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
            save_peft(&model, "rust", &dir, keys, task_type, Some(&base_name))
                .unwrap_or_else(|e| panic!("{e}"));
            rec.insert(case.to_string(), entry(forward(&model)));
        }
        write_json(
            &out_root.join("rust_outputs.json"),
            &serde_json::Value::Object(rec),
        );
        return; // then run step peft-roundtrip, then this test again
    }
    let rec = golden(out_root.join("rust_outputs.json"));
    let check = golden(out_root.join("python_check.json"));
    for (case, config) in cases {
        // Load what we wrote: the recorded outputs, and a byte-identical save.
        let dir = out_root.join(case);
        let what = format!("{model_dir}/{case}");
        let want = rec.float::<3>(case, &d).unwrap_or_else(|e| panic!("{e}"));
        let mut model = fresh();
        let base = forward(&model);
        let load = load_peft(&mut model, &dir, "rust", keys, &d).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            &load.config, config,
            "{what}: the config survives the PEFT file"
        );
        set_active(&mut model, Some(Setup::single("rust"))).unwrap_or_else(|e| panic!("{e}"));
        assert_close(forward(&model), want.clone(), 1e-6, &what);
        assert!(
            max_diff(want, base) > 1e-2,
            "{what}: the adapter must change the output"
        );
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        save_peft(
            &model,
            "rust",
            tmp.path(),
            keys,
            task_type,
            Some(&base_name),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        for name in ["adapter_config.json", "adapter_model.safetensors"] {
            let a = std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{e}"));
            let b = std::fs::read(tmp.path().join(name)).unwrap_or_else(|e| panic!("{e}"));
            assert!(a == b, "{what}/{name}: saving again must be byte-identical");
        }
        // Python's verdict on these files (step peft-roundtrip) is committed beside them.
        let diff = check
            .value("max_abs_diff")
            .and_then(|v| v.get(*case))
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(f64::INFINITY);
        assert!(
            diff <= 1e-5,
            "{what}: PEFT reproduced our outputs within {diff}"
        );
    }
}

#[test]
fn peft_roundtrip() {
    let bert_lora = LoraConfig::new(2, 5.0)
        .with_targets(vec![
            LinearTarget::Key,
            LinearTarget::AttentionOutput,
            LinearTarget::FeedForwardOut,
        ])
        .with_init(LoraInit::Random);
    let bert_ia3 = Ia3Config::liu2022()
        .with_targets(
            vec![
                LinearTarget::Key,
                LinearTarget::Value,
                LinearTarget::FeedForwardIn,
                LinearTarget::FeedForwardOut,
            ],
            vec![LinearTarget::FeedForwardOut],
        )
        .with_init(Ia3Init::Random);
    roundtrip(
        bert,
        &BERT_PEFT_KEYS,
        "tiny-bert",
        &[
            ("rust-lora", bert_lora.into()),
            ("rust-ia3", bert_ia3.into()),
        ],
        None,
        bert_out,
    );
    let gpt2_lora = LoraConfig::new(3, 4.0)
        .with_targets(vec![
            LinearTarget::QueryKeyValue,
            LinearTarget::FeedForwardIn,
        ])
        .with_rslora(true)
        .with_init(LoraInit::Random);
    let gpt2_ia3 = Ia3Config::liu2022_fused_qkv().with_init(Ia3Init::Random);
    roundtrip(
        gpt2,
        &GPT2_PEFT_KEYS,
        "tiny-gpt2",
        &[
            ("rust-lora", gpt2_lora.into()),
            ("rust-ia3", gpt2_ia3.into()),
        ],
        Some("CAUSAL_LM"),
        gpt2_out,
    );
}

/// The fixture model on an autodiff device with every dropout off (PyTorch's eval mode).
fn bert_ad(device: &Device) -> BertModel {
    let dir = root().join("tiny-bert");
    let mut config =
        BertConfig::from_hf_file(dir.join("config.json")).unwrap_or_else(|e| panic!("{e}"));
    config.hidden_dropout_prob = 0.0;
    config.attention_probs_dropout_prob = 0.0;
    let mut model = config.init(device).unwrap_or_else(|e| panic!("{e}"));
    model
        .load_checkpoint(dir.join("model.safetensors"))
        .unwrap_or_else(|e| panic!("{e}"));
    model
}

fn gpt2_ad(device: &Device) -> Gpt2Model {
    let dir = root().join("tiny-gpt2");
    let mut config = peft_models::gpt2::Gpt2Config::from_hf_file(dir.join("config.json"))
        .unwrap_or_else(|e| panic!("{e}"));
    config.attn_pdrop = 0.0;
    config.resid_pdrop = 0.0;
    config.embd_pdrop = 0.0;
    let mut model = config.init(device).unwrap_or_else(|e| panic!("{e}"));
    model
        .load_checkpoint(dir.join("model.safetensors"))
        .unwrap_or_else(|e| panic!("{e}"));
    model
}

/// One backward pass of `mean(out²)` on a PEFT fixture: every adapter tensor's gradient equals
/// PyTorch's (`grad:<file key>`, in the file's layout) within 1e-4.
fn gradient_case<M: peft_core::AdapterHost + Module>(
    mut model: M,
    keys: &PeftKeys,
    dir: &Path,
    forward: impl Fn(&M) -> Tensor<3>,
    device: &Device,
) {
    use burn::optim::GradientsParams;
    let g = golden(dir.with_extension("json"));
    load_peft(&mut model, dir, "p", keys, device).unwrap_or_else(|e| panic!("{e}"));
    set_active(&mut model, Some(Setup::single("p"))).unwrap_or_else(|e| panic!("{e}"));
    let model = peft_core::freeze_except(model, &peft_core::Trainable::adapter("p"))
        .unwrap_or_else(|e| panic!("{e}"));
    let loss = forward(&model).powf_scalar(2.0).mean();
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let prefix = keys.model_prefixes[0];
    let mut checked = 0;
    for (layer, target, site) in linear_sites(&model) {
        let module = keys.module_name(target, layer).unwrap_or_default();
        let key = |suffix: &str| format!("grad:base_model.model.{prefix}{module}.{suffix}");
        let plain = Device::flex();
        let mut pairs: Vec<(String, Tensor<2>)> = Vec::new();
        if let Some(m) = site.lora_module("p") {
            let get = |p: &burn::module::Param<Tensor<2>>| {
                grads
                    .get::<2>(p.id)
                    .map(|t| Tensor::<2>::from_data(t.into_data(), &plain).transpose())
            };
            let (a, b) = (get(&m.lora_a), get(&m.lora_b));
            pairs.push((
                key("lora_A.weight"),
                a.unwrap_or_else(|| panic!("{module}: no grad A")),
            ));
            pairs.push((
                key("lora_B.weight"),
                b.unwrap_or_else(|| panic!("{module}: no grad B")),
            ));
        }
        if let Some(m) = site.ia3_module("p") {
            let t = grads
                .get::<1>(m.ia3_l.id)
                .unwrap_or_else(|| panic!("{module}: no grad"));
            let n = t.dims()[0];
            let shape = if m.feedforward { [1, n] } else { [n, 1] };
            pairs.push((
                key("ia3_l"),
                Tensor::<1>::from_data(t.into_data(), &plain).reshape(shape),
            ));
        }
        for (k, got) in pairs {
            let want = g
                .float::<2>(&k, &plain)
                .unwrap_or_else(|e| panic!("{k}: {e}"));
            assert_close(got, want, 1e-4, &k);
            checked += 1;
        }
    }
    assert!(checked > 0, "{}", dir.display());
}

#[test]
fn one_backward_pass_matches_pytorch_gradients() {
    let device = Device::flex().autodiff();
    for case in ["lora", "rslora", "ia3"] {
        let dir = root().join("tiny-bert/peft").join(case);
        gradient_case(bert_ad(&device), &BERT_PEFT_KEYS, &dir, bert_out, &device);
    }
    for case in ["lora", "ia3"] {
        let dir = root().join("tiny-gpt2/peft").join(case);
        gradient_case(gpt2_ad(&device), &GPT2_PEFT_KEYS, &dir, gpt2_out, &device);
    }
}

fn classifier() -> peft_models::bert::head::BertClassifier {
    use peft_models::bert::head::{BertClassifier, HeadPooling};
    let (model, _) = BertClassifier::from_pretrained(
        root().join("tiny-bert"),
        3,
        HeadPooling::Pooler,
        &device(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    model.valid()
}

fn classifier_logits(model: &peft_models::bert::head::BertClassifier) -> Tensor<3> {
    let g = golden(root().join("tiny-bert/golden.json"));
    let d = device();
    let int = |n: &str| g.int::<2>(n, &d).unwrap_or_else(|e| panic!("{e}"));
    let input = BertInput::new(int("input_ids"))
        .with_token_type_ids(int("token_type_ids"))
        .with_attention_mask(int("attention_mask"));
    model.forward(input).unsqueeze::<3>()
}

/// PEFT's SEQ_CLS directory (LoRA under `bert.` + the `modules_to_save` classifier) gives
/// PEFT's logits; saved again it reloads to the same logits; without a place for the
/// classifier (the bare model loader) it is a typed error naming `modules_to_save`.
#[test]
fn seq_cls_directory_with_modules_to_save_classifier() {
    use peft_models::peft::{load_peft_classifier, save_peft_classifier};
    let dir = root().join("tiny-bert/peft/seq-cls");
    let d = device();
    let want = golden(dir.with_extension("json"))
        .float::<3>("logits", &d)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut model = classifier();
    load_peft_classifier(&mut model, &dir, "sst", &d).unwrap_or_else(|e| panic!("{e}"));
    set_active(&mut model, Some(Setup::single("sst"))).unwrap_or_else(|e| panic!("{e}"));
    let got = classifier_logits(&model);
    assert_close(got.clone(), want, 1e-5, "seq-cls logits");

    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    save_peft_classifier(&model, "sst", tmp.path(), None).unwrap_or_else(|e| panic!("{e}"));
    let mut again = classifier();
    load_peft_classifier(&mut again, tmp.path(), "sst", &d).unwrap_or_else(|e| panic!("{e}"));
    set_active(&mut again, Some(Setup::single("sst"))).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(classifier_logits(&again).into_data(), got.into_data());

    let mut bare = bert();
    assert!(matches!(
        load_peft(&mut bare, &dir, "p", &BERT_PEFT_KEYS, &d),
        Err(PeftError::HubUnsupported { field, .. }) if field == "modules_to_save"
    ));
    assert!(peft_core::adapters(&bare).is_empty());
}

/// Our SEQ_CLS directory, checked by Python (`PeftModel.from_pretrained` on
/// `BertForSequenceClassification`, step `peft-roundtrip`); written with `PEFT_WRITE_FIXTURES=1`.
#[test]
fn seq_cls_roundtrip() {
    use peft_models::bert::head::{ClassificationHeadConfig, HeadPooling};
    use peft_models::peft::{load_peft_classifier, save_peft_classifier};
    let root_dir = root().join("tiny-bert/peft-from-rust");
    let dir = root_dir.join("rust-seq-cls");
    let rec_path = root_dir.join("rust-seq-cls.json");
    let d = device();
    if std::env::var_os("PEFT_WRITE_FIXTURES").is_some() {
        let mut model = classifier();
        d.seed(17);
        let head = ClassificationHeadConfig::new(32, 3).with_pooling(HeadPooling::Pooler);
        model
            .add_head("rust", &head, &d)
            .unwrap_or_else(|e| panic!("{e}"));
        model
            .set_active_head("rust")
            .unwrap_or_else(|e| panic!("{e}"));
        let lora = LoraConfig::new(2, 3.0)
            .with_targets(vec![LinearTarget::Value, LinearTarget::FeedForwardIn])
            .with_init(LoraInit::Random);
        add_adapter(&mut model, "rust", &lora, &d).unwrap_or_else(|e| panic!("{e}"));
        set_active(&mut model, Some(Setup::single("rust"))).unwrap_or_else(|e| panic!("{e}"));
        save_peft_classifier(&model, "rust", &dir, Some("fixtures/tiny-bert"))
            .unwrap_or_else(|e| panic!("{e}"));
        write_json(
            &rec_path,
            &serde_json::json!({ "logits": entry(classifier_logits(&model)) }),
        );
        return;
    }
    let want = golden(&rec_path)
        .float::<3>("logits", &d)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut model = classifier();
    load_peft_classifier(&mut model, &dir, "rust", &d).unwrap_or_else(|e| panic!("{e}"));
    set_active(&mut model, Some(Setup::single("rust"))).unwrap_or_else(|e| panic!("{e}"));
    assert_close(classifier_logits(&model), want, 1e-6, "rust-seq-cls");
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    save_peft_classifier(&model, "rust", tmp.path(), Some("fixtures/tiny-bert"))
        .unwrap_or_else(|e| panic!("{e}"));
    for name in ["adapter_config.json", "adapter_model.safetensors"] {
        let a = std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{e}"));
        let b = std::fs::read(tmp.path().join(name)).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            a == b,
            "rust-seq-cls/{name}: saving again must be byte-identical"
        );
    }
    let diff = golden(root_dir.join("python_check.json"))
        .value("max_abs_diff")
        .and_then(|v| v.get("rust-seq-cls"))
        .and_then(serde_json::Value::as_f64)
        .unwrap_or(f64::INFINITY);
    assert!(
        diff <= 1e-5,
        "PEFT reproduced our SEQ_CLS logits within {diff}"
    );
}
