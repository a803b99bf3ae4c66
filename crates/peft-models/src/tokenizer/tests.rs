//! Tests of the tokenizer wrapper (`super`).

use super::*;
use std::path::PathBuf;
use tokenizers::models::wordlevel::WordLevel;
use tokenizers::pre_tokenizers::whitespace::Whitespace;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{PaddingDirection, PaddingParams, PaddingStrategy};

const VOCAB: &[(&str, u32)] = &[
    ("[PAD]", 0),
    ("[UNK]", 1),
    ("[CLS]", 2),
    ("[SEP]", 3),
    ("hello", 4),
    ("world", 5),
    ("the", 6),
    ("cat", 7),
    ("sat", 8),
    ("on", 9),
    ("mat", 10),
    ("a", 11),
    ("<pad>", 12),
];

/// A BERT-like word-level tokenizer: whitespace pre-tokenizer, `[CLS] A [SEP] B [SEP]`.
pub(crate) fn tiny_tokenizer() -> Tokenizer {
    let model = WordLevel::builder()
        .vocab(VOCAB.iter().map(|&(t, i)| (t.to_string(), i)).collect())
        .unk_token("[UNK]".to_string())
        .build()
        .expect("word-level model");
    let post = TemplateProcessing::builder()
        .try_single("[CLS] $A [SEP]")
        .expect("single template")
        .try_pair("[CLS] $A:0 [SEP]:0 $B:1 [SEP]:1")
        .expect("pair template")
        .special_tokens(vec![("[CLS]", 2), ("[SEP]", 3)])
        .build()
        .expect("template");
    let mut tokenizer = Tokenizer::new(model);
    tokenizer.with_pre_tokenizer(Some(Whitespace));
    tokenizer.with_post_processor(Some(post));
    tokenizer
}

fn tiny() -> TextTokenizer {
    TextTokenizer::from_tokenizer(tiny_tokenizer()).expect("tiny tokenizer")
}

#[test]
fn single_text_exact_ids() {
    let tok = tiny();
    assert_eq!(tok.pad_id(), 0);
    assert_eq!(tok.pad_token(), "[PAD]");
    assert_eq!(tok.max_len(), None);
    let e = tok.encode_one("hello world").expect("encode");
    assert_eq!(e.input_ids, vec![2, 4, 5, 3]);
    assert_eq!(e.token_type_ids, vec![0, 0, 0, 0]);
    // Unknown word maps to [UNK].
    let e = tok.encode_one("hello dog").expect("encode");
    assert_eq!(e.input_ids, vec![2, 4, 1, 3]);
}

#[test]
fn batch_padded_to_longest() {
    let tok = tiny();
    let b = tok
        .encode_batch(&["hello world", "the cat sat on the mat"])
        .expect("encode");
    assert_eq!((b.batch_size, b.seq_len), (2, 8));
    assert_eq!(
        b.input_ids,
        vec![2, 4, 5, 3, 0, 0, 0, 0, 2, 6, 7, 8, 9, 6, 10, 3]
    );
    assert_eq!(
        b.attention_mask,
        vec![1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1]
    );
    assert_eq!(b.token_type_ids, vec![0; 16]);
    assert_eq!(b.row_ids(0), Some(&[2, 4, 5, 3, 0, 0, 0, 0][..]));
    assert_eq!(b.row_ids(2), None);

    // Another batch gets its own length.
    let b = tok.encode_batch(&["a", "hello"]).expect("encode");
    assert_eq!(b.seq_len, 3);
    assert_eq!(b.input_ids, vec![2, 11, 3, 2, 4, 3]);

    let empty = tok.encode_batch(&[]).expect("encode");
    assert_eq!((empty.batch_size, empty.seq_len), (0, 0));
}

#[test]
fn truncation_to_max_len() {
    let tok = tiny().with_max_len(5).expect("max len");
    assert_eq!(tok.max_len(), Some(5));
    let b = tok
        .encode_batch(&["hello world", "the cat sat on the mat"])
        .expect("encode");
    assert_eq!(b.seq_len, 5);
    assert_eq!(b.input_ids, vec![2, 4, 5, 3, 0, 2, 6, 7, 8, 3]);
    assert_eq!(b.attention_mask, vec![1, 1, 1, 1, 0, 1, 1, 1, 1, 1]);
    // encode_plain ignores truncation.
    assert_eq!(
        tok.encode_plain("the cat sat on the mat").expect("plain"),
        vec![6, 7, 8, 9, 6, 10]
    );
    // Too small to hold the special tokens of a pair.
    assert!(matches!(
        tiny().with_max_len(3),
        Err(ModelError::Tokenizer { .. })
    ));
    assert!(tiny().with_max_len(4).is_ok());
}

#[test]
fn pairs_with_type_ids_and_longest_first_truncation() {
    let tok = tiny();
    let b = tok
        .encode_pairs(&[("hello world", "the cat"), ("a", "mat")])
        .expect("pairs");
    assert_eq!(b.seq_len, 7);
    assert_eq!(
        b.input_ids,
        vec![2, 4, 5, 3, 6, 7, 3, 2, 11, 3, 10, 3, 0, 0]
    );
    assert_eq!(
        b.token_type_ids,
        vec![0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 0, 0]
    );
    assert_eq!(
        b.attention_mask,
        vec![1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0]
    );

    // Longest first: the 6-word second text loses 3 words, the first keeps its 2.
    let tok = tiny().with_max_len(8).expect("max len");
    let e = tok
        .encode_pair_one("hello world", "the cat sat on the mat")
        .expect("pair");
    assert_eq!(e.input_ids, vec![2, 4, 5, 3, 6, 7, 8, 3]);
    assert_eq!(e.token_type_ids, vec![0, 0, 0, 0, 1, 1, 1, 1]);
}

#[test]
fn fixed_padding_in_file_is_overridden() {
    let mut raw = tiny_tokenizer();
    raw.with_padding(Some(PaddingParams {
        strategy: PaddingStrategy::Fixed(16),
        direction: PaddingDirection::Left,
        pad_to_multiple_of: None,
        pad_id: 12,
        pad_type_id: 0,
        pad_token: "<pad>".to_string(),
    }));
    raw.with_truncation(Some(TruncationParams {
        max_length: 6,
        ..TruncationParams::default()
    }))
    .expect("truncation");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tokenizer.json");
    raw.save(&path, false).expect("save");

    let tok = TextTokenizer::from_pretrained_dir(dir.path()).expect("load");
    assert_eq!(tok.pad_id(), 12);
    assert_eq!(tok.pad_token(), "<pad>");
    assert_eq!(tok.max_len(), Some(6));
    let b = tok
        .encode_batch(&["hello", "the cat sat on the mat"])
        .expect("encode");
    assert_eq!(b.seq_len, 6, "padded to longest (truncated to 6), not 16");
    assert_eq!(b.input_ids, vec![2, 4, 3, 12, 12, 12, 2, 6, 7, 8, 9, 3]);
    assert_eq!(b.attention_mask, vec![1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1]);
}

#[test]
fn pad_token_override_and_validation() {
    let tok = tiny().with_pad_token(12, "<pad>").expect("pad");
    assert_eq!(tok.pad_id(), 12);
    let b = tok.encode_batch(&["a", "hello world"]).expect("encode");
    assert_eq!(b.input_ids, vec![2, 11, 3, 12, 2, 4, 5, 3]);
    assert!(tiny().with_pad_token(99, "<x>").is_err());
    assert!(tiny().with_pad_token(12, "[PAD]").is_err());
}

#[test]
fn fit_to_model_sets_missing_truncation_and_rejects_other_models() {
    let limits = InputLimits {
        vocab_size: 13,
        max_len: 6,
        type_vocab_size: 2,
    };
    let tok = tiny().fit_to_model(&limits).expect("fits");
    assert_eq!(
        tok.max_len(),
        Some(6),
        "no truncation in the tokenizer: the model's"
    );
    let e = tok.encode_one("the cat sat on the mat").expect("encode");
    assert_eq!(e.input_ids, vec![2, 6, 7, 8, 9, 3]);
    let kept = tiny().with_max_len(5).expect("max len");
    assert_eq!(kept.fit_to_model(&limits).expect("fits").max_len(), Some(5));
    let longer = tiny().with_max_len(7).expect("max len");
    assert!(matches!(
        longer.fit_to_model(&limits),
        Err(ModelError::MaxLenTooLarge {
            requested: 7,
            max: 6
        })
    ));
    let smaller = InputLimits {
        vocab_size: 12,
        ..limits
    };
    assert!(matches!(
        tiny().fit_to_model(&smaller),
        Err(ModelError::TokenizerMismatch {
            value: 13,
            limit: 12,
            limit_name: "vocab_size",
            ..
        })
    ));
}

#[test]
fn pad_batch_of_pre_encoded_rows() {
    let tok = tiny();
    let a = [2_u32, 4, 3];
    let b = [2_u32, 4, 5, 3, 6, 3];
    let tb = [0_u32, 0, 0, 0, 1, 1];
    let batch = tok.pad_batch([(&a[..], &[][..]), (&b[..], &tb[..])]);
    assert_eq!(batch.input_ids, vec![2, 4, 3, 0, 0, 0, 2, 4, 5, 3, 6, 3]);
    assert_eq!(
        batch.token_type_ids,
        vec![0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1]
    );
    assert_eq!(
        batch.attention_mask,
        vec![1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1]
    );
}

#[test]
fn plain_encode_and_decode() {
    let tok = tiny();
    assert_eq!(tok.encode_plain("hello world").expect("plain"), vec![4, 5]);
    assert_eq!(tok.decode(&[4, 5]).expect("decode"), "hello world");
    assert_eq!(tok.vocab_size(), VOCAB.len());
}

#[test]
fn tensors_have_batch_shape() {
    let tok = tiny();
    let b = tok.encode_batch(&["hello world", "a"]).expect("encode");
    let device = Device::flex();
    let (ids, types, mask) = b.to_tensors(&device);
    assert_eq!(ids.dims(), [2, 4]);
    assert_eq!(types.dims(), [2, 4]);
    let mask: Vec<i64> = mask.into_data().try_into_vec_as().expect("mask values");
    assert_eq!(mask, vec![1, 1, 1, 1, 1, 1, 1, 0]);
    let ids: Vec<i64> = ids.into_data().try_into_vec_as().expect("ids");
    assert_eq!(ids, vec![2, 4, 5, 3, 2, 11, 3, 0]);
}

#[test]
fn missing_file_is_io_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(matches!(
        TextTokenizer::from_pretrained_dir(dir.path()),
        Err(ModelError::Io { .. })
    ));
    let bad = dir.path().join("tokenizer.json");
    std::fs::write(&bad, "{ not json").expect("write");
    assert!(matches!(
        TextTokenizer::from_file(&bad),
        Err(ModelError::Tokenizer { .. })
    ));
}

/// `$PEFT_ASSETS_DIR/<rel>`; panics (so the test fails) when unset or missing.
fn asset(rel: &str) -> PathBuf {
    let dir = std::env::var_os("PEFT_ASSETS_DIR").unwrap_or_else(|| {
        panic!("PEFT_ASSETS_DIR is not set: point it at the shared assets directory (../shared)")
    });
    let path = PathBuf::from(dir).join(rel);
    assert!(path.is_file(), "asset {} does not exist", path.display());
    path
}

#[test]
#[ignore = "needs ../shared assets: set PEFT_ASSETS_DIR"]
fn minilm_tokenizer_known_ids() {
    let tok = TextTokenizer::from_file(asset("models/all-MiniLM-L6-v2/tokenizer.json"))
        .expect("load MiniLM tokenizer");
    assert_eq!(tok.pad_id(), 0);
    assert_eq!(tok.pad_token(), "[PAD]");
    assert_eq!(tok.max_len(), Some(128));
    assert_eq!(
        tok.encode_one("hello world").expect("encode").input_ids,
        vec![101, 7592, 2088, 102]
    );
    let b = tok.encode_batch(&["hello world", "Hello"]).expect("encode");
    assert_eq!(b.seq_len, 4, "dynamic padding, not the file's fixed 128");
    assert_eq!(b.input_ids, vec![101, 7592, 2088, 102, 101, 7592, 102, 0]);
    assert_eq!(b.attention_mask, vec![1, 1, 1, 1, 1, 1, 1, 0]);
    let p = tok.encode_pairs(&[("hello", "world")]).expect("pair");
    assert_eq!(p.input_ids, vec![101, 7592, 102, 2088, 102]);
    assert_eq!(p.token_type_ids, vec![0, 0, 0, 1, 1]);
    let long = "hello ".repeat(300);
    let tok = tok.with_max_len(64).expect("max len");
    let e = tok.encode_one(&long).expect("encode");
    assert_eq!(e.len(), 64);
    assert_eq!(e.input_ids.last(), Some(&102));
}

#[test]
#[ignore = "needs ../shared assets: set PEFT_ASSETS_DIR"]
fn gpt2_tokenizer_known_ids() {
    let tok = TextTokenizer::from_file(asset("models/gpt2-tokenizer/tokenizer.json"))
        .expect("load GPT-2 tokenizer");
    assert_eq!(tok.vocab_size(), 50257);
    assert_eq!(tok.pad_id(), 0, "no pad token in the file: id 0 filler");
    assert_eq!(
        tok.encode_plain("Hello world").expect("plain"),
        vec![15496, 995]
    );
    assert_eq!(
        tok.encode_plain(" hide new secretions from the parental units")
            .expect("plain"),
        vec![7808, 649, 3200, 507, 422, 262, 21694, 4991]
    );
    assert_eq!(tok.decode(&[15496, 995]).expect("decode"), "Hello world");
    let b = tok.encode_batch(&["Hello world", "Hello"]).expect("encode");
    assert_eq!(b.input_ids, vec![15496, 995, 15496, 0]);
    assert_eq!(b.attention_mask, vec![1, 1, 1, 0]);
    let tok = tok.with_pad_token(50256, "<|endoftext|>").expect("pad");
    let b = tok.encode_batch(&["Hello world", "Hello"]).expect("encode");
    assert_eq!(b.input_ids, vec![15496, 995, 15496, 50256]);
    assert_eq!(b.attention_mask, vec![1, 1, 1, 0]);
}
