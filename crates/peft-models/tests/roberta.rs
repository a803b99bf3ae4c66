//! RoBERTa parity with Hugging Face transformers and the `tokenizers` library on the committed
//! tiny fixture (`fixtures/tiny-roberta`: RobertaModel, hidden 32, 2 layers, byte-level BPE).

use std::path::PathBuf;

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor, TensorData, Tolerance};
use peft_models::ModelError;
use peft_models::bert::{BertConfig, BertInput, BertModel, PositionScheme};
use peft_models::golden::Golden;
use peft_models::tokenizer::TextTokenizer;
use serde_json::Value;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tiny-roberta")
}

fn device() -> Device {
    Device::flex()
}

fn golden() -> Golden {
    Golden::from_file(fixtures().join("golden.json")).unwrap_or_else(|e| panic!("{e}"))
}

fn model() -> BertModel {
    let (model, report) =
        BertModel::from_pretrained(fixtures(), &device()).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        report.unused.is_empty(),
        "every roberta.* key lands: {report}"
    );
    assert!(report.not_in_checkpoint.is_empty(), "{report}");
    model.valid()
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

fn strings(g: &Golden, key: &str) -> Vec<String> {
    serde_json::from_value(g.value(key).cloned().unwrap_or(Value::Null))
        .unwrap_or_else(|e| panic!("{key}: {e}"))
}

fn id_rows(g: &Golden, key: &str) -> Vec<Vec<u32>> {
    serde_json::from_value(g.value(key).cloned().unwrap_or(Value::Null))
        .unwrap_or_else(|e| panic!("{key}: {e}"))
}

#[test]
fn config_selects_the_padding_offset_scheme() {
    let c =
        BertConfig::from_hf_file(fixtures().join("config.json")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.position_scheme, PositionScheme::PaddingOffset);
    assert_eq!(c.pad_token_id, 1);
    // max_position_embeddings 34 - pad 1 - 1.
    assert_eq!(c.max_sequence_len(), 32);
    let m = model();
    assert_eq!(m.base_info().architecture, "roberta");
    let limits = m.input_limits();
    assert_eq!(
        (limits.vocab_size, limits.max_len, limits.type_vocab_size),
        (300, 32, 1)
    );
}

/// Right-padded, left-padded and mid-row-padded rows: positions follow the ids, so the
/// hidden states of every position (pads included) match transformers.
#[test]
fn hidden_states_match_transformers_with_padding_anywhere() {
    let device = device();
    let g = golden();
    let model = model();
    let ids = g
        .int::<2>("input_ids", &device)
        .unwrap_or_else(|e| panic!("{e}"));
    let mask = g
        .int::<2>("attention_mask", &device)
        .unwrap_or_else(|e| panic!("{e}"));
    let positions = g
        .int::<2>("position_ids", &device)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        model.embeddings.position_ids(&ids).into_data(),
        positions.into_data(),
        "position ids = HF create_position_ids_from_input_ids"
    );
    let out = model
        .try_forward(BertInput::new(ids).with_attention_mask(mask))
        .unwrap_or_else(|e| panic!("{e}"));
    let expected = g
        .float::<3>("last_hidden_state", &device)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_close(out.last_hidden_state, expected, 1e-5, "last_hidden_state");
    let pooled = g
        .float::<2>("pooler_output", &device)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_close(
        out.pooler_output.unwrap_or_else(|| panic!("pooler")),
        pooled,
        1e-5,
        "pooler_output",
    );
}

/// The BPE `tokenizer.json` (no truncation in the file, `<pad>` = 1, `<s> A </s></s> B </s>`)
/// gives the Python tokenizer's ids, and fitting it to the model truncates to 32 tokens.
#[test]
fn bpe_tokenizer_ids_match_the_python_tokenizer() {
    let g = golden();
    let model = model();
    let tok = TextTokenizer::from_pretrained_dir(fixtures()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(tok.max_len(), None, "the file has no truncation");
    assert_eq!((tok.pad_id(), tok.pad_token()), (1, "<pad>"));
    let tok = tok
        .fit_to_model(&model.input_limits())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        tok.max_len(),
        Some(32),
        "truncation set to the model's limit"
    );

    let texts = strings(&g, "texts");
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let batch = tok.encode_batch(&refs).unwrap_or_else(|e| panic!("{e}"));
    let want = id_rows(&g, "text_ids");
    let want_mask = id_rows(&g, "text_attention_mask");
    for (row, (ids, mask)) in want.iter().zip(&want_mask).enumerate() {
        let got = batch.row_ids(row).unwrap_or_else(|| panic!("row {row}"));
        let ids: Vec<i64> = ids.iter().map(|&i| i64::from(i)).collect();
        assert_eq!(got, &ids[..], "row {row}: {:?}", texts[row]);
        let start = row * batch.seq_len;
        let mask: Vec<i64> = mask.iter().map(|&i| i64::from(i)).collect();
        assert_eq!(
            &batch.attention_mask[start..start + batch.seq_len],
            &mask[..]
        );
    }
    assert!(batch.token_type_ids.iter().all(|&t| t == 0));
    for (text, ids) in texts.iter().zip(id_rows(&g, "plain_ids")) {
        assert_eq!(
            tok.encode_plain(text).unwrap_or_else(|e| panic!("{e}")),
            ids
        );
    }
    let pairs: Vec<Vec<String>> =
        serde_json::from_value(g.value("pairs").cloned().unwrap_or(Value::Null))
            .unwrap_or_else(|e| panic!("{e}"));
    for ((pair, ids), types) in pairs
        .iter()
        .zip(id_rows(&g, "pair_ids"))
        .zip(id_rows(&g, "pair_type_ids"))
    {
        let e = tok
            .encode_pair_one(&pair[0], &pair[1])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(e.input_ids, ids, "{pair:?}");
        assert_eq!(e.token_type_ids, types, "{pair:?}");
    }
    // Truncated to the model's limit, ending with </s>.
    let long = "the quick brown fox ".repeat(20);
    let e = tok.encode_one(&long).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(e.len(), 32);
    assert_eq!((e.input_ids[0], e.input_ids[31]), (0, 2));
    model
        .input_limits()
        .check_ids(&e.input_ids, &e.token_type_ids)
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn inputs_beyond_the_usable_positions_are_typed_errors() {
    let device = device();
    let model = model();
    // 32 tokens fit (positions 2..=33 < 34); 33 would index past the table.
    let ids =
        |n: usize| Tensor::<2, Int>::from_data(TensorData::new(vec![5_i64; n], [1, n]), &device);
    assert!(model.try_forward(BertInput::new(ids(32))).is_ok());
    let err = model.try_forward(BertInput::new(ids(33)));
    assert!(
        matches!(err, Err(ModelError::SequenceTooLong { len: 33, max: 32 })),
        "{err:?}"
    );
    // One token type only.
    let types = Tensor::<2, Int>::from_data(TensorData::new(vec![0_i64, 1], [1, 2]), &device);
    let err = model.try_forward(BertInput::new(ids(2)).with_token_type_ids(types));
    assert!(
        matches!(
            err,
            Err(ModelError::TokenTypeOutOfRange {
                id: 1,
                type_vocab_size: 1
            })
        ),
        "{err:?}"
    );
    // A max_len above the model's limit is rejected when the tokenizer is fitted.
    let tok = TextTokenizer::from_pretrained_dir(fixtures())
        .and_then(|t| t.with_max_len(40))
        .unwrap_or_else(|e| panic!("{e}"));
    let err = tok.fit_to_model(&model.input_limits());
    assert!(
        matches!(
            err,
            Err(ModelError::MaxLenTooLarge {
                requested: 40,
                max: 32
            })
        ),
        "{err:?}"
    );
}

/// The tiny BERT's tokenizer-sized vocabulary (99) is smaller than this BPE's 300: fitting the
/// RoBERTa tokenizer to the BERT model is a typed error naming both sizes.
#[test]
fn wrong_tokenizer_for_the_model_is_a_typed_error() {
    let bert = BertConfig::from_hf_file(fixtures().join("../tiny-bert/config.json"))
        .unwrap_or_else(|e| panic!("{e}"));
    let tok = TextTokenizer::from_pretrained_dir(fixtures()).unwrap_or_else(|e| panic!("{e}"));
    let err = tok.fit_to_model(&bert.input_limits());
    match &err {
        Err(e @ ModelError::TokenizerMismatch { value, limit, .. }) => {
            assert_eq!((*value, *limit), (300, 99));
            assert!(e.to_string().contains("vocabulary size is 300"), "{e}");
        }
        other => panic!("expected TokenizerMismatch, got {other:?}"),
    }
}
