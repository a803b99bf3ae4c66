//! `adapter_config.json` / `head_config.json` of adapters 1.3.0 <-> our configs, against the
//! files AdapterHub itself wrote (`fixtures/*/adapters/*-hub`, `fixtures/*/hub`).

use std::path::{Path, PathBuf};

use peft_core::adapterhub::{HubAdapterFile, HubBnConfig, HubHead, HubHeadFile, HubModelInfo};
use peft_core::{
    Activation, AdapterConfig, AdapterInit, AdapterSite, BottleneckWidth, Composition, PeftError,
    Scaling,
};
use serde_json::Value;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn read(rel: &str) -> (String, PathBuf) {
    let path = fixtures().join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (text, path)
}

fn parse(rel: &str) -> HubAdapterFile {
    let (text, path) = read(rel);
    HubAdapterFile::from_json(&text, &path).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn with_init(mut c: AdapterConfig, init: AdapterInit) -> AdapterConfig {
    c.bottleneck.init = init;
    c
}

/// The presets as AdapterHub defines them (`configuration/adapter_config.py`, see
/// scripts/ADAPTERHUB_MATHS.md §3), with the reduction factors the fixtures used.
#[test]
fn adapterhub_presets_map_to_ours() {
    let cases = [
        (
            "tiny-bert/adapters/seq_bn-hub/adapter_config.json",
            with_init(AdapterConfig::pfeiffer(4.0), AdapterInit::Bert),
        ),
        (
            "tiny-bert/adapters/double_seq_bn-hub/adapter_config.json",
            with_init(AdapterConfig::houlsby(4.0), AdapterInit::Bert),
        ),
        (
            "tiny-gpt2/hub/b-hub/adapter_config.json",
            with_init(AdapterConfig::houlsby(8.0), AdapterInit::Bert),
        ),
        (
            "tiny-bert/hub/c-hub/adapter_config.json",
            with_init(AdapterConfig::parallel(), AdapterInit::MamAdapter),
        ),
    ];
    for (rel, want) in cases {
        let file = parse(rel);
        let got = file
            .config
            .adapter_config(2, Path::new(rel))
            .unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert_eq!(got, want, "{rel}");
        assert!(file.warnings().is_empty(), "{rel}: {:?}", file.warnings());
    }
    let scaled = parse("tiny-bert/adapters/scaled_par_bn-hub/adapter_config.json");
    let got = scaled
        .config
        .adapter_config(2, Path::new("x"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got.bottleneck.scaling, Scaling::Learned);
    assert_eq!(got.bottleneck.width, BottleneckWidth::ReductionFactor(4.0));
    assert_eq!(got.placement.composition, Composition::Parallel);
    assert_eq!(scaled.hidden_size, Some(32));
    assert_eq!(scaled.model_type.as_deref(), Some("bert"));
}

/// A per-layer `reduction_factor` and a non-default activation (`d` in the fixtures).
#[test]
fn per_layer_reduction_factor_and_activation() {
    let file = parse("tiny-bert/hub/d-hub/adapter_config.json");
    let got = file
        .config
        .adapter_config(2, Path::new("d"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got.bottleneck.activation, Activation::Gelu);
    assert_eq!(got.bottleneck.width, BottleneckWidth::ReductionFactor(16.0));
    assert_eq!(
        got.layer_widths.get(&0),
        Some(&BottleneckWidth::ReductionFactor(4.0))
    );
    assert_eq!(got.layer_widths.len(), 1);
    // AdapterHub's int(32 // 4) = 8 in layer 0 and int(32 // 16) = 2 in layer 1
    // (fixtures/tiny-bert/hub/golden.json files.keys, shapes in d-hub/pytorch_adapter.bin).
    assert_eq!(got.width_for_layer(0, 32).ok(), Some(8));
    assert_eq!(got.width_for_layer(1, 32).ok(), Some(2));
    // Without `default`, every layer must be listed.
    let (text, path) = read("tiny-bert/hub/d-hub/adapter_config.json");
    let no_default = text.replace("\"default\": 16", "\"1\": 16");
    let file = HubAdapterFile::from_json(&no_default, &path).unwrap_or_else(|e| panic!("{e}"));
    assert!(file.config.adapter_config(2, &path).is_ok());
    assert!(matches!(
        file.config.adapter_config(3, &path),
        Err(PeftError::MalformedJson { message, .. }) if message.contains("layer 2")
    ));
}

/// Options we cannot reproduce are typed errors naming the field.
#[test]
fn unsupported_options_name_the_field() {
    let (text, path) = read("tiny-bert/adapters/seq_bn-hub/adapter_config.json");
    let cases = [
        (
            "\"phm_layer\": false",
            "\"phm_layer\": true",
            "config.phm_layer",
        ),
        (
            "\"use_gating\": false",
            "\"use_gating\": true",
            "config.use_gating",
        ),
        (
            "\"residual_before_ln\": true",
            "\"residual_before_ln\": \"post_add\"",
            "config.residual_before_ln",
        ),
        (
            "\"stochastic_depth\": 0.0",
            "\"stochastic_depth\": 0.1",
            "config.stochastic_depth",
        ),
        (
            "\"cross_adapter\": false",
            "\"cross_adapter\": true",
            "config.cross_adapter",
        ),
        (
            "\"non_linearity\": \"relu\"",
            "\"non_linearity\": \"mish\"",
            "config.non_linearity",
        ),
        (
            "\"init_weights\": \"bert\"",
            "\"init_weights\": \"xavier\"",
            "config.init_weights",
        ),
        (
            "\"scaling\": 1.0",
            "\"scaling\": \"per_token\"",
            "config.scaling",
        ),
        (
            "\"adapter_residual_before_ln\"",
            "\"architecture\": \"lora\", \"adapter_residual_before_ln\"",
            "config.architecture",
        ),
    ];
    for (from, to, field) in cases {
        assert!(text.contains(from), "{from}");
        let err = HubAdapterFile::from_json(&text.replace(from, to), &path);
        assert!(
            matches!(&err, Err(PeftError::HubUnsupported { field: f, .. }) if f == field),
            "{to}: {err:?}"
        );
    }
    // a required field missing or mistyped
    let err = HubAdapterFile::from_json(&text.replace("\"mh_adapter\": false,", ""), &path);
    assert!(
        matches!(&err, Err(PeftError::MalformedJson { message, .. }) if message.contains("mh_adapter")),
        "{err:?}"
    );
    let err = HubAdapterFile::from_json(
        &text.replace("\"dropout\": 0.0", "\"dropout\": \"none\""),
        &path,
    );
    assert!(
        matches!(err, Err(PeftError::MalformedJson { .. })),
        "{err:?}"
    );
}

/// Unknown keys are kept and listed, never dropped silently.
#[test]
fn unknown_keys_are_kept_and_warned_about() {
    let (text, path) = read("tiny-bert/adapters/seq_bn-hub/adapter_config.json");
    let text = text
        .replace(
            "\"use_gating\": false",
            "\"use_gating\": false, \"future_option\": 7",
        )
        .replace("\"version\":", "\"trained_by\": \"someone\", \"version\":");
    let file = HubAdapterFile::from_json(&text, &path).unwrap_or_else(|e| panic!("{e}"));
    let w = file.warnings();
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(
        w.iter().any(|l| l.contains("config.future_option")),
        "{w:?}"
    );
    assert!(w.iter().any(|l| l.contains("trained_by")), "{w:?}");
    assert_eq!(file.config.rest.get("future_option"), Some(&Value::from(7)));
    let out: Value = serde_json::from_str(&file.to_json().unwrap_or_default()).unwrap_or_default();
    assert_eq!(out["trained_by"], Value::from("someone"));
    assert_eq!(out["config"]["future_option"], Value::from(7));
}

/// What we write is what adapters 1.3.0 writes for the same adapter: the JSON of AdapterHub's
/// own `seq_bn`, `double_seq_bn`, `par_bn` files, field for field.
#[test]
fn written_config_equals_adapterhubs() {
    let cases = [
        (
            "tiny-bert/adapters/seq_bn-hub/adapter_config.json",
            "seq_bn",
            with_init(AdapterConfig::pfeiffer(4.0), AdapterInit::Bert),
        ),
        (
            "tiny-bert/adapters/double_seq_bn-hub/adapter_config.json",
            "double_seq_bn",
            with_init(AdapterConfig::houlsby(4.0), AdapterInit::Bert),
        ),
        (
            "tiny-bert/adapters/par_bn-hub/adapter_config.json",
            "par_bn",
            {
                let mut c = with_init(AdapterConfig::parallel(), AdapterInit::MamAdapter);
                c.bottleneck.width = BottleneckWidth::ReductionFactor(4.0);
                c
            },
        ),
    ];
    for (rel, name, config) in cases {
        let (text, _) = read(rel);
        let theirs: Value = serde_json::from_str(&text).unwrap_or_default();
        let model = HubModelInfo {
            model_type: "bert".into(),
            hidden_size: 32,
            model_class: "BertModel".into(),
            model_name: String::new(),
        };
        let ours = HubAdapterFile::new(name, &config, &model)
            .and_then(|f| f.to_json())
            .unwrap_or_else(|e| panic!("{e}"));
        let ours: Value = serde_json::from_str(&ours).unwrap_or_default();
        assert_eq!(ours, theirs, "{rel}");
    }
    // the per-layer mapping too
    let (text, path) = read("tiny-bert/hub/d-hub/adapter_config.json");
    let theirs: Value = serde_json::from_str(&text).unwrap_or_default();
    let file = HubAdapterFile::from_json(&text, &path).unwrap_or_else(|e| panic!("{e}"));
    let config = file
        .config
        .adapter_config(2, &path)
        .unwrap_or_else(|e| panic!("{e}"));
    let back = HubBnConfig::from_adapter_config(&config, &path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(back.to_value().unwrap_or_default(), theirs["config"]);
    // an explicit bottleneck width has no AdapterHub spelling
    let explicit = AdapterConfig::pfeiffer(4.0).with_bottleneck(
        peft_core::BottleneckConfig::pfeiffer().with_width(BottleneckWidth::BottleneckDim(3)),
    );
    assert!(matches!(
        HubBnConfig::from_adapter_config(&explicit, &path),
        Err(PeftError::HubUnsupported { field, .. }) if field == "bottleneck.width"
    ));
}

#[test]
fn head_configs() {
    let (text, path) = read("tiny-bert/hub/a-hub/head_config.json");
    let a = HubHeadFile::from_json(&text, &path).unwrap_or_else(|e| panic!("{e}"));
    let HubHead::Classification(h) = &a.head else {
        panic!("classification head expected: {a:?}");
    };
    assert_eq!(
        (h.num_labels, h.layers, h.use_pooler, h.bias),
        (2, 2, false, true)
    );
    assert_eq!(h.activation_function.as_deref(), Some("tanh"));
    let labels = h.label2id.clone().unwrap_or_default();
    assert_eq!(labels.get("neg"), Some(&0));
    assert_eq!(labels.get("pos"), Some(&1));
    assert_eq!(a.name.as_deref(), Some("a"));
    assert!(a.warnings().is_empty(), "{:?}", a.warnings());
    // what we write parses back to the same thing and matches AdapterHub's JSON
    let theirs: Value = serde_json::from_str(&text).unwrap_or_default();
    let ours: Value = serde_json::from_str(&a.to_json().unwrap_or_default()).unwrap_or_default();
    assert_eq!(ours, theirs);

    let (text, path) = read("tiny-bert/hub/c-hub/head_config.json");
    let c = HubHeadFile::from_json(&text, &path).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        matches!(&c.head, HubHead::Classification(h) if h.layers == 1 && h.use_pooler && h.activation_function.is_none() && h.num_labels == 3)
    );

    let (text, path) = read("tiny-gpt2/hub/b-hub/head_config.json");
    let s = HubHeadFile::from_json(&text, &path).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        matches!(
            s.head,
            HubHead::Static {
                num_labels: Some(2)
            }
        ),
        "{s:?}"
    );
    assert_eq!(s.model_class.as_deref(), Some("GPT2LMHeadModel"));

    let tagging = text.replace(
        "\"config\": null",
        "\"config\": {\"head_type\": \"tagging\"}",
    );
    assert!(matches!(
        HubHeadFile::from_json(&tagging, &path),
        Err(PeftError::HubUnsupported { field, .. }) if field == "config.head_type"
    ));
}

#[test]
fn sites_follow_mh_and_output_adapter() {
    let file = parse("tiny-bert/adapters/double_seq_bn-hub/adapter_config.json");
    let c = file
        .config
        .adapter_config(2, Path::new("x"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        c.placement.sites,
        vec![AdapterSite::AttentionOutput, AdapterSite::FeedForwardOutput]
    );
    assert_eq!(c.bottleneck.activation, Activation::Silu);
}
