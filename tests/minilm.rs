//! The real pre-trained all-MiniLM-L6-v2 (needs the model directory: set `PEFT_ASSETS_DIR`
//! to the folder holding `models/all-MiniLM-L6-v2`; `.ci/run` does), and adapter parameter
//! counts / file sizes on MiniLM- and BERT-base-shaped models (no assets needed).

use std::path::PathBuf;

use burn::tensor::{Device, Int, Tensor, TensorData};
use burn_peft::core::{
    AdapterConfig, AdapterFile, AdapterMethod, Trainable, attach_adapters, param_summary,
    randomize_matching, save_adapter,
};
use burn_peft::models::bert::{BertConfig, BertInput, BertModel, cls};
use burn_peft::models::tokenizer::TextTokenizer;
use serde_json::Value;

/// The asset directory, or a panic that says how to provide it: never a silent pass.
fn assets() -> PathBuf {
    let dir = std::env::var("PEFT_ASSETS_DIR").unwrap_or_else(|_| {
        panic!("PEFT_ASSETS_DIR is not set: point it at the folder holding models/all-MiniLM-L6-v2")
    });
    let model = PathBuf::from(dir).join("models/all-MiniLM-L6-v2");
    assert!(model.is_dir(), "asset {} does not exist", model.display());
    model
}

fn minilm_config() -> BertConfig {
    BertConfig::new()
        .with_hidden_size(384)
        .with_num_hidden_layers(6)
        .with_num_attention_heads(12)
        .with_intermediate_size(1536)
}

fn floats(v: &Value) -> Vec<f32> {
    fn walk(v: &Value, out: &mut Vec<f32>) {
        match v {
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            Value::Number(n) => out.push(n.as_f64().unwrap_or(f64::NAN) as f32),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, &mut out);
    out
}

#[test]
#[ignore = "needs the all-MiniLM-L6-v2 assets: set PEFT_ASSETS_DIR"]
fn minilm_reproduces_pytorch_reference_outputs() {
    let dir = assets();
    let device = Device::flex();
    let reference: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("reference_outputs.json")).unwrap_or_default(),
    )
    .unwrap_or_else(|e| panic!("reference_outputs.json: {e}"));

    // Our tokenizer produces the same ids, padded to the longest (not the file's fixed 128).
    let tok = TextTokenizer::from_pretrained_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
    let sentences: Vec<&str> = reference["sentences"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let batch = tok
        .encode_batch(&sentences)
        .unwrap_or_else(|e| panic!("{e}"));
    let expected_ids: Vec<i64> = floats(&reference["input_ids"])
        .iter()
        .map(|&v| v as i64)
        .collect();
    assert_eq!(batch.input_ids, expected_ids, "token ids");
    let (b, s) = (batch.batch_size, batch.seq_len);

    let (model, report) =
        BertModel::from_pretrained(&dir, &device).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.loaded, 101 + 2, "{report}");
    let input = BertInput::new(Tensor::<2, Int>::from_data(
        TensorData::new(batch.input_ids.clone(), [b, s]),
        &device,
    ))
    .with_attention_mask(Tensor::<2, Int>::from_data(
        TensorData::new(batch.attention_mask.clone(), [b, s]),
        &device,
    ));
    let out = model.try_forward(input).unwrap_or_else(|e| panic!("{e}"));

    let got_cls = cls(out.last_hidden_state.clone())
        .into_data()
        .try_to_vec::<f32>()
        .unwrap_or_default();
    let want_cls = floats(&reference["cls"]);
    assert_eq!(got_cls.len(), want_cls.len());
    let max_cls = got_cls
        .iter()
        .zip(&want_cls)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(max_cls <= 1e-4, "CLS vectors differ by {max_cls}");

    let first8 = out
        .last_hidden_state
        .slice([0..b, 0..s, 0..8])
        .into_data()
        .try_to_vec::<f32>()
        .unwrap_or_default();
    let want8 = floats(&reference["last_hidden_state_first8"]);
    assert_eq!(first8.len(), want8.len());
    let max8 = first8
        .iter()
        .zip(&want8)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(max8 <= 1e-4, "last hidden state differs by {max8}");

    let pooled = out
        .pooler_output
        .unwrap_or_else(|| panic!("pooler"))
        .slice([0..b, 0..8]);
    let pooled = pooled.into_data().try_to_vec::<f32>().unwrap_or_default();
    let want = floats(&reference["pooler_first8"]);
    let maxp = pooled
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(maxp <= 1e-4, "pooler differs by {maxp}");
}

/// AdapterHub's counts: MiniLM seq_bn rf 16 = 113,040, double_seq_bn = 226,080; BERT-base
/// 894,528 and 1,789,056.
#[test]
fn adapter_parameter_counts_equal_adapterhub() {
    let device = Device::flex();
    for (config, seq, double) in [
        (minilm_config(), 113_040, 226_080),
        (BertConfig::new(), 894_528, 1_789_056),
    ] {
        let mut model = config.init(&device).unwrap_or_else(|e| panic!("{e}"));
        let report = attach_adapters(&mut model, &AdapterConfig::pfeiffer(16.0), &device)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            report.params(),
            seq,
            "seq_bn on hidden {}",
            config.hidden_size
        );
        let summary =
            param_summary(&model, &Trainable::adapters()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(summary.selected, seq);
        let report = attach_adapters(&mut model, &AdapterConfig::houlsby(16.0), &device)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            report.params(),
            double,
            "double_seq_bn on hidden {}",
            config.hidden_size
        );
    }
}

/// A MiniLM Pfeiffer adapter file is a few hundred KB, not the 90 MB model.
#[test]
fn minilm_adapter_file_is_a_few_hundred_kilobytes() {
    let device = Device::flex();
    let mut model = minilm_config()
        .init(&device)
        .unwrap_or_else(|e| panic!("{e}"));
    let config = AdapterConfig::pfeiffer(16.0);
    attach_adapters(&mut model, &config, &device).unwrap_or_else(|e| panic!("{e}"));
    let model = randomize_matching(model, burn_peft::core::ADAPTER_PATTERN, 0.1)
        .unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = AdapterFile::new(
        AdapterMethod::Bottleneck(config),
        model.base_info(),
        &Trainable::adapters(),
    );
    save_adapter(&model, dir.path(), &file).unwrap_or_else(|e| panic!("{e}"));
    let bytes = std::fs::metadata(dir.path().join(burn_peft::core::file::WEIGHTS_FILE))
        .map(|m| m.len())
        .unwrap_or(0);
    // 113,040 f32 values = 452,160 bytes, plus the safetensors header.
    assert!(
        (452_160..470_000).contains(&bytes),
        "adapter file is {bytes} bytes"
    );
}
