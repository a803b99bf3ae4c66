//! AdapterHub LoRA, IA³ and prefix-tuning directories in (written by adapters 1.3.0:
//! `fixtures/*/hub-methods/`) and out (written here, checked by Python:
//! `fixtures/*/hub-methods-from-rust/`). Goldens are AdapterHub's outputs.

use std::path::PathBuf;

use burn::module::{ModuleMapper, Param};
use burn::tensor::{Int, Tensor};
use peft_core::{AdapterHost, LinearTarget, MethodKind, PeftError, Setup, adapters};
use peft_models::ModelError;
use peft_models::adapterhub::{
    load_adapterhub, load_adapterhub_classifier, save_adapterhub, save_adapterhub_classifier,
};
use peft_models::gpt2::Gpt2Model;

mod hub_common;
use hub_common::*;

fn hub(model: &str, dir: &str) -> PathBuf {
    fixtures().join(model).join("hub-methods").join(dir)
}

fn gpt2() -> Gpt2Model {
    let (m, _) = Gpt2Model::from_pretrained(fixtures().join("tiny-gpt2"), &device())
        .unwrap_or_else(|e| panic!("{e}"));
    burn::module::Module::valid(&m)
}

fn gpt2_logits(m: &Gpt2Model, g: &peft_models::golden::Golden) -> Tensor<3> {
    let d = device();
    let ids: Tensor<2, Int> = g.int("input_ids", &d).unwrap_or_else(|e| panic!("{e}"));
    let mask: Tensor<2, Int> = g
        .int("attention_mask", &d)
        .unwrap_or_else(|e| panic!("{e}"));
    m.forward(ids, Some(mask))
}

const BERT_DIRS: [(&str, MethodKind); 3] = [
    ("lora", MethodKind::Lora),
    ("ia3", MethodKind::Ia3),
    ("prefix", MethodKind::PrefixTuning),
];

const GPT2_DIRS: [(&str, MethodKind); 5] = [
    ("lora", MethodKind::Lora),
    ("lora_mlp", MethodKind::Lora),
    ("ia3", MethodKind::Ia3),
    ("prefix", MethodKind::PrefixTuning),
    ("flat", MethodKind::PrefixTuning),
];

/// LoRA (q, k, v, FFN in/out, `.safetensors`), IA³ (`alpha` 2, `.bin`) and prefix tuning
/// (MLP, `leave_out`, `.bin` with the per-layer copies), each with its classification head,
/// reproduce AdapterHub's logits.
#[test]
fn bert_methods_from_adapterhub() {
    let g = golden("tiny-bert/hub-methods/golden.json");
    let d = device();
    let mut model = classifier();
    for (name, kind) in BERT_DIRS {
        let loaded = load_adapterhub_classifier(
            &mut model,
            hub("tiny-bert", &format!("{name}-hub")),
            None,
            &d,
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(loaded.adapter.config.kind(), kind, "{name}");
        assert_eq!(loaded.head.as_deref(), Some(name));
        assert!(
            loaded.adapter.warnings.is_empty(),
            "{:?}",
            loaded.adapter.warnings
        );
    }
    for (name, _) in BERT_DIRS {
        active(&mut model, Setup::single(name));
        let want = g
            .float::<2>(&format!("{name}.logits"), &d)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_close(model.forward(bert_input(&g)), want, 1e-5, name);
        let want = g
            .float::<3>(&format!("{name}.last_hidden_state"), &d)
            .unwrap_or_else(|e| panic!("{e}"));
        let hidden = model.bert.forward(bert_input(&g)).last_hidden_state;
        assert_close(hidden, want, 1e-5, name);
    }
}

/// GPT-2: LoRA on q and v of the fused `c_attn` (AdapterHub's grouped `LoRAMergedLinear`),
/// LoRA on `c_fc` / `mlp.c_proj`, IA³ on k, v and `c_fc`, prefix tuning with its MLP and flat.
#[test]
fn gpt2_methods_from_adapterhub() {
    let g = golden("tiny-gpt2/hub-methods/golden.json");
    let d = device();
    let mut model = gpt2();
    for (name, kind) in GPT2_DIRS {
        let loaded = load_adapterhub(
            &mut model,
            hub("tiny-gpt2", &format!("{name}-hub")),
            None,
            &d,
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(loaded.config.kind(), kind, "{name}");
    }
    for (name, _) in GPT2_DIRS {
        active(&mut model, Setup::single(name));
        let want = g
            .float::<3>(&format!("{name}.logits"), &d)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_close(gpt2_logits(&model, &g), want, 1e-5, name);
    }
}

fn config_text(model: &str, dir: &str) -> String {
    String::from_utf8(read(hub(model, dir).join("adapter_config.json"))).unwrap_or_default()
}

/// Every option we cannot reproduce is a typed error naming the field, and the model is left
/// as it was.
#[test]
fn unsupported_options_are_refused() {
    let d = device();
    let mut model = bert();
    let lora = config_text("tiny-bert", "lora-hub");
    let ia3 = config_text("tiny-bert", "ia3-hub");
    let prefix = config_text("tiny-bert", "prefix-hub");
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "lora-hub",
            lora.replace("\"use_gating\": false", "\"use_gating\": true"),
            "config.use_gating",
        ),
        (
            "lora-hub",
            lora.replace("\"use_dora\": false", "\"use_dora\": true"),
            "config.use_dora",
        ),
        (
            "lora-hub",
            lora.replace("\"vera_d\": null", "\"vera_d\": 0.1"),
            "config.vera_d",
        ),
        (
            "lora-hub",
            lora.replace("\"init_weights\": \"lora\"", "\"init_weights\": \"bert\""),
            "config.init_weights",
        ),
        (
            "lora-hub",
            lora.replace(
                "\"composition_mode\": \"add\"",
                "\"composition_mode\": \"mul\"",
            ),
            "config.composition_mode",
        ),
        (
            "lora-hub",
            lora.replace("\"dtype\": null", "\"dtype\": \"bfloat16\""),
            "config.dtype",
        ),
        (
            "lora-hub",
            lora.replace(
                "\"architecture\": \"lora\"",
                "\"architecture\": \"mtl_lora\"",
            ),
            "config.architecture",
        ),
        ("ia3-hub", ia3.replace("\"r\": 1", "\"r\": 2"), "config.r"),
        (
            "ia3-hub",
            ia3.replace("\"dropout\": 0.0", "\"dropout\": 0.1"),
            "config.dropout",
        ),
        (
            "ia3-hub",
            ia3.replace("\"init_weights\": \"ia3\"", "\"init_weights\": \"lora\""),
            "config.init_weights",
        ),
        (
            "prefix-hub",
            prefix.replace("\"use_gating\": false", "\"use_gating\": true"),
            "config.use_gating",
        ),
        (
            "prefix-hub",
            prefix.replace(
                "\"non_linearity\": \"tanh\"",
                "\"non_linearity\": \"softsign\"",
            ),
            "config.non_linearity",
        ),
    ];
    for (dir, text, field) in cases {
        let tmp = doctored(
            &hub("tiny-bert", dir),
            &[("adapter_config.json", text.into_bytes())],
        );
        let err = load_adapterhub(&mut model, tmp.path(), None, &d);
        assert!(
            matches!(&err, Err(ModelError::Peft(PeftError::HubUnsupported { field: f, .. })) if f == field),
            "{dir} {field}: {err:?}"
        );
        assert!(
            adapters(&model).is_empty(),
            "{dir} {field}: the model changed"
        );
    }
    // GPT-2: a fused c_attn LoRA on two matrices beside feed-forward LoRA has two ranks
    let mut g = gpt2();
    let text = config_text("tiny-gpt2", "lora-hub").replace(
        "\"intermediate_lora\": false",
        "\"intermediate_lora\": true",
    );
    let tmp = doctored(
        &hub("tiny-gpt2", "lora-hub"),
        &[("adapter_config.json", text.into_bytes())],
    );
    let err = load_adapterhub(&mut g, tmp.path(), None, &d);
    assert!(
        matches!(&err, Err(ModelError::Peft(PeftError::HubUnsupported { field, .. })) if field == "config.attn_matrices"),
        "{err:?}"
    );
    // a weights file with a tensor of a projection the config does not name lands nowhere
    let text = lora.replace("\"output_lora\": true", "\"output_lora\": false");
    let tmp = doctored(
        &hub("tiny-bert", "lora-hub"),
        &[("adapter_config.json", text.into_bytes())],
    );
    match load_adapterhub(&mut model, tmp.path(), None, &d) {
        Err(ModelError::Peft(PeftError::HubUnplaced { keys, .. })) => {
            assert_eq!(keys.len(), 2, "{keys:?}");
            assert!(
                keys.iter().all(|k| k.contains(".output.dense.loras.lora.")),
                "{keys:?}"
            );
        }
        other => panic!("expected HubUnplaced, got {other:?}"),
    }
    // every block left out: nothing to load is an error, not an empty adapter
    let text = lora.replace(
        "\"leave_out\": [\n      1\n    ]",
        "\"leave_out\": [\n      0,\n      1\n    ]",
    );
    assert_ne!(text, lora);
    let no_tensors: Vec<(String, safetensors::tensor::TensorView<'_>)> = Vec::new();
    let empty = safetensors::tensor::serialize(no_tensors, None).unwrap_or_else(|e| panic!("{e}"));
    let tmp = doctored(
        &hub("tiny-bert", "lora-hub"),
        &[
            ("adapter_config.json", text.clone().into_bytes()),
            ("adapter.safetensors", empty),
        ],
    );
    let err = load_adapterhub(&mut model, tmp.path(), None, &d);
    assert!(
        matches!(&err, Err(ModelError::Peft(PeftError::NothingMatched(_)))),
        "{err:?}"
    );
    // with the weights of block 0 still in the file, those land nowhere
    let tmp = doctored(
        &hub("tiny-bert", "lora-hub"),
        &[("adapter_config.json", text.into_bytes())],
    );
    let err = load_adapterhub(&mut model, tmp.path(), None, &d);
    assert!(
        matches!(&err, Err(ModelError::Peft(PeftError::HubUnplaced { .. }))),
        "{err:?}"
    );
    // a weights file that lacks a tensor the config needs
    let dir = doctored(&hub("tiny-bert", "lora-hub"), &[]);
    let bytes = read(dir.path().join("adapter.safetensors"));
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap_or_else(|e| panic!("{e}"));
    let kept: Vec<(String, safetensors::tensor::TensorView<'_>)> = st
        .tensors()
        .into_iter()
        .filter(|(k, _)| !k.ends_with("layer.0.attention.self.key.loras.lora.lora_B"))
        .collect();
    let fewer = safetensors::tensor::serialize(kept, None).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.path().join("adapter.safetensors"), fewer).ok();
    let err = load_adapterhub(&mut model, dir.path(), None, &d);
    assert!(
        matches!(&err, Err(ModelError::Peft(PeftError::HubMissingTensors { paths, .. }))
            if paths == &["bert.encoder.layer.0.attention.self.key.loras.lora.lora_B".to_string()]),
        "{err:?}"
    );
    // a prefix-tuning per-layer copy that differs from the pool's tensor (our own safetensors
    // save holds the copies too)
    let mut p = bert();
    load_adapterhub(&mut p, hub("tiny-bert", "prefix-hub"), None, &d)
        .unwrap_or_else(|e| panic!("{e}"));
    let saved = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    save_adapterhub(&p, "prefix", saved.path()).unwrap_or_else(|e| panic!("{e}"));
    let bytes = read(saved.path().join("adapter.safetensors"));
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap_or_else(|e| panic!("{e}"));
    let copy = "bert.encoder.layer.1.attention.self.prefix_tuning.pool.prefix_tunings.prefix.self_prefix.wte.weight";
    let mut changed: Vec<u8> = st
        .tensor(copy)
        .map(|t| t.data().to_vec())
        .unwrap_or_default();
    changed[0] ^= 1;
    let shape = st
        .tensor(copy)
        .map(|t| t.shape().to_vec())
        .unwrap_or_default();
    let mut all: Vec<(String, safetensors::tensor::TensorView<'_>)> = st
        .tensors()
        .into_iter()
        .filter(|(k, _)| k != copy)
        .collect();
    all.push((
        copy.to_string(),
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape, &changed)
            .unwrap_or_else(|e| panic!("{e}")),
    ));
    let bad = safetensors::tensor::serialize(all, None).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(saved.path().join("adapter.safetensors"), bad).ok();
    let err = load_adapterhub(&mut model, saved.path(), None, &d);
    assert!(
        matches!(&err, Err(ModelError::Peft(PeftError::Incompatible { message, .. })) if message.contains(copy)),
        "{err:?}"
    );
    assert!(adapters(&model).is_empty() && adapters(&g).is_empty());
}

/// A values change that keeps 0 and 1 (so a fused LoRA's zero blocks and an IA³ vector's
/// unused ones stay what they are): `w -> w (1.5 - 0.5 w)`, exact and platform-independent.
struct Fix01;

impl ModuleMapper for Fix01 {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        param.map(|t| t.clone() * (t.mul_scalar(-0.5).add_scalar(1.5)))
    }
}

/// Change every LoRA / IA³ / prefix-tuning parameter of adapter `name`.
fn perturb<M: AdapterHost>(m: &mut M, name: &str) {
    use burn::module::Module;
    for layer in 0..m.num_layers() {
        for target in LinearTarget::ALL {
            let Some(site) = m.linear_site_mut(layer, target) else {
                continue;
            };
            if let Some((c, module)) = site.lora().entry(name) {
                let (c, module) = (c.clone(), module.clone().map(&mut Fix01));
                site.insert_lora(name, c, module);
            }
            if let Some((c, module)) = site.ia3().entry(name) {
                let (c, module) = (c.clone(), module.clone().map(&mut Fix01));
                site.insert_ia3(name, c, module);
            }
        }
    }
    if let Some(p) = m.prefix_pool_mut().and_then(|p| p.get_mut(name)) {
        *p = p.clone().map(&mut Fix01);
    }
}

/// What we write has AdapterHub's tensor names and loads back to the same outputs, bit for
/// bit; writes `fixtures/*/hub-methods-from-rust/` with `PEFT_WRITE_FIXTURES=1` (then run
/// `make_fixtures.py --only hub-methods-roundtrip`, which checks them with adapters 1.3.0), else
/// checks what we write is byte-equal to the committed directories.
#[test]
fn hub_methods_roundtrip() {
    let write = std::env::var_os("PEFT_WRITE_FIXTURES").is_some();
    let d = device();
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));

    // BERT: every method with its head, saved as loaded (names must be AdapterHub's), then
    // changed and saved again for Python.
    let g = golden("tiny-bert/hub-methods/golden.json");
    let keys = g
        .value("files")
        .and_then(|f| f.get("keys"))
        .cloned()
        .unwrap_or_default();
    let mut model = classifier();
    let root = tmp.path().join("tiny-bert");
    let mut rec = serde_json::Map::new();
    for k in ["input_ids", "attention_mask", "token_type_ids"] {
        rec.insert(k.into(), g.value(k).cloned().unwrap_or_default());
    }
    let mut cases = Vec::new();
    for (name, _) in BERT_DIRS {
        load_adapterhub_classifier(
            &mut model,
            hub("tiny-bert", &format!("{name}-hub")),
            None,
            &d,
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        let same = tmp.path().join(format!("same-{name}"));
        save_adapterhub_classifier(&model, name, &same).unwrap_or_else(|e| panic!("{name}: {e}"));
        let theirs = ["adapter.safetensors", "pytorch_adapter.bin"]
            .iter()
            .find_map(|f| keys.get(format!("{name}-hub/{f}")))
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            safetensors_names(&same.join("adapter.safetensors")),
            theirs,
            "{name}"
        );
        // back in: bit-identical outputs
        let mut back = classifier();
        load_adapterhub_classifier(&mut back, &same, None, &d).unwrap_or_else(|e| panic!("{e}"));
        active(&mut model, Setup::single(name));
        active(&mut back, Setup::single(name));
        assert_close(
            back.forward(bert_input(&g)),
            model.forward(bert_input(&g)),
            0.0,
            name,
        );

        perturb(&mut model, name);
        save_adapterhub_classifier(&model, name, root.join(format!("{name}-hub")))
            .unwrap_or_else(|e| panic!("{e}"));
        let logits = model.forward(bert_input(&g));
        let orig = g
            .float::<2>(&format!("{name}.logits"), &d)
            .unwrap_or_else(|e| panic!("{e}"));
        let moved = (logits.clone() - orig).abs().max().into_scalar::<f64>();
        assert!(moved > 1e-4, "{name}: the change is invisible ({moved})");
        rec.insert(format!("{name}.logits"), tensor_json(logits));
        cases.push(serde_json::json!({"key": format!("{name}.logits"), "head": name, "adapter_dirs": [format!("{name}-hub")], "fusion_dir": null}));
    }
    rec.insert("cases".into(), serde_json::Value::from(cases));
    rec.insert("notes".into(), serde_json::Value::from(
        "written by crates/peft-models/tests/adapterhub_methods.rs hub_methods_roundtrip: fixtures/tiny-bert/hub-methods/{lora,ia3,prefix}-hub loaded into burn-peft with their heads, every adapter parameter w := w (1.5 - 0.5 w), saved with save_adapterhub_classifier; logits are burn-peft's. scripts/hub_roundtrip.py checks adapters 1.3.0 reproduces them (python_check.json)."));
    write_json(&root.join("rust_outputs.json"), &rec);

    // GPT-2
    let gg = golden("tiny-gpt2/hub-methods/golden.json");
    let gkeys = gg
        .value("files")
        .and_then(|f| f.get("keys"))
        .cloned()
        .unwrap_or_default();
    let mut m = gpt2();
    let groot = tmp.path().join("tiny-gpt2");
    let mut grec = serde_json::Map::new();
    for k in ["input_ids", "attention_mask"] {
        grec.insert(k.into(), gg.value(k).cloned().unwrap_or_default());
    }
    let mut gcases = Vec::new();
    for (name, _) in GPT2_DIRS {
        load_adapterhub(&mut m, hub("tiny-gpt2", &format!("{name}-hub")), None, &d)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let same = tmp.path().join(format!("gpt2-same-{name}"));
        save_adapterhub(&m, name, &same).unwrap_or_else(|e| panic!("{name}: {e}"));
        let theirs = ["adapter.safetensors", "pytorch_adapter.bin"]
            .iter()
            .find_map(|f| gkeys.get(format!("{name}-hub/{f}")))
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            safetensors_names(&same.join("adapter.safetensors")),
            theirs,
            "{name}"
        );
        let saved = String::from_utf8(read(same.join("adapter_config.json"))).unwrap_or_default();
        let theirs = config_text("tiny-gpt2", &format!("{name}-hub"));
        assert_eq!(
            config_json(&saved)["config"],
            config_json(&theirs)["config"],
            "{name}"
        );
        let mut back = gpt2();
        load_adapterhub(&mut back, &same, None, &d).unwrap_or_else(|e| panic!("{e}"));
        active(&mut m, Setup::single(name));
        active(&mut back, Setup::single(name));
        assert_close(gpt2_logits(&back, &gg), gpt2_logits(&m, &gg), 0.0, name);

        perturb(&mut m, name);
        save_adapterhub(&m, name, groot.join(format!("{name}-hub")))
            .unwrap_or_else(|e| panic!("{e}"));
        grec.insert(format!("{name}.logits"), tensor_json(gpt2_logits(&m, &gg)));
        gcases.push(serde_json::json!({"key": format!("{name}.logits"), "adapter_dirs": [format!("{name}-hub")]}));
    }
    grec.insert("cases".into(), serde_json::Value::from(gcases));
    grec.insert("notes".into(), serde_json::Value::from(
        "written by adapterhub_methods.rs hub_methods_roundtrip: fixtures/tiny-gpt2/hub-methods/*-hub loaded, adapter params w := w (1.5 - 0.5 w), saved with save_adapterhub; logits [2,6,97] are burn-peft's."));
    write_json(&groot.join("rust_outputs.json"), &grec);

    for model in ["tiny-bert", "tiny-gpt2"] {
        let committed = fixtures().join(model).join("hub-methods-from-rust");
        let fresh = tmp.path().join(model);
        if write {
            copy_tree(&fresh, &committed);
            continue;
        }
        assert!(
            committed.join("python_check.json").is_file(),
            "{model}: run make_fixtures.py --only hub-methods-roundtrip"
        );
        for file in files(&fresh) {
            let rel = file.strip_prefix(&fresh).unwrap_or(&file).to_path_buf();
            if rel.ends_with("rust_outputs.json") {
                continue;
            }
            assert_eq!(
                read(file.clone()),
                read(committed.join(&rel)),
                "{model}/{}: what we write changed",
                rel.display()
            );
        }
        let old: serde_json::Value =
            serde_json::from_slice(&read(committed.join("rust_outputs.json"))).unwrap_or_default();
        let new: serde_json::Value =
            serde_json::from_slice(&read(fresh.join("rust_outputs.json"))).unwrap_or_default();
        for case in old["cases"].as_array().cloned().unwrap_or_default() {
            let key = case["key"].as_str().unwrap_or_default();
            let a: Vec<f64> = serde_json::from_value(old[key]["data"].clone()).unwrap_or_default();
            let b: Vec<f64> = serde_json::from_value(new[key]["data"].clone()).unwrap_or_default();
            assert!(!a.is_empty() && a.len() == b.len(), "{key}");
            let diff = a
                .iter()
                .zip(&b)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f64::max);
            assert!(diff <= 1e-6, "{model} {key}: our logits moved by {diff}");
        }
    }
}

fn config_json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_default()
}

fn safetensors_names(path: &std::path::Path) -> serde_json::Value {
    let bytes = read(path.to_path_buf());
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap_or_else(|e| panic!("{e}"));
    let mut names: Vec<String> = st.names().into_iter().map(String::from).collect();
    names.sort();
    serde_json::Value::from(names)
}
