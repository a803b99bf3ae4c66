//! Text tokenization for the models of this crate, on top of Hugging Face `tokenizers`.
//!
//! [`TextTokenizer`] loads a `tokenizer.json` (BERT WordPiece, GPT-2 byte-level BPE, ...) and
//! produces batches padded to the longest item of the batch, whatever fixed padding the file
//! asks for. Padding is done here, not by the `tokenizers` crate, so that pre-tokenized items
//! (see [`TextTokenizer::encode_unpadded`]) can be padded later, batch by batch, with the same
//! rules ([`TextTokenizer::pad_batch`]).

use std::path::Path;

use burn::tensor::{Device, Int, Tensor, TensorData};
use tokenizers::{
    EncodeInput, Encoding, PostProcessor, Tokenizer, TruncationDirection, TruncationParams,
    TruncationStrategy,
};

use crate::error::{ModelError, Result};
use crate::limits::InputLimits;

mod check;

use check::check_tokenizer_json;

/// Context string used in errors for tokenizers not loaded from a file.
const IN_MEMORY: &str = "<in-memory tokenizer>";

/// A tokenizer with truncation to a maximum length and dynamic (longest-in-batch) right padding.
///
/// Padding: the pad id, pad token and pad type id come from the `padding` section of the
/// `tokenizer.json` when there is one (its strategy, e.g. all-MiniLM-L6-v2's fixed 128, is
/// ignored: batches are always padded to their longest item, on the right). Without such a
/// section the pad token is `[PAD]` (BERT) or `<pad>` (RoBERTa) when the vocabulary has it,
/// otherwise id 0 (GPT-2 has no pad token: id 0 is then only a filler, masked out by the
/// attention mask). Override it with [`TextTokenizer::with_pad_token`].
///
/// Truncation: the `truncation` section of the file (its `max_length`) is kept unless
/// [`TextTokenizer::with_max_len`] sets another limit; sentence pairs are truncated
/// longest-first. [`TextTokenizer::encode_plain`] never truncates.
///
/// Model fit: [`TextTokenizer::fit_to_model`] checks the tokenizer against a model's
/// [`InputLimits`] (vocabulary, pad and special ids, truncation length) and, when the file has
/// no truncation (roberta-base's has none), truncates to the model's usable length rather than
/// rejecting the file: every encoded sequence then fits the model.
#[derive(Debug, Clone)]
pub struct TextTokenizer {
    /// Tokenizer with truncation configured and padding disabled.
    truncating: Tokenizer,
    /// Tokenizer with neither truncation nor padding (for corpora and decoding).
    plain: Tokenizer,
    pad_id: u32,
    pad_type_id: u32,
    pad_token: String,
    max_len: Option<usize>,
    /// Where the tokenizer came from, for error messages.
    source: String,
}

/// The ids of one encoded text (or text pair), with special tokens, truncated, not padded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EncodedText {
    /// Token ids.
    pub input_ids: Vec<u32>,
    /// Segment ids: 0 for the first text (and its special tokens), 1 for the second of a pair.
    pub token_type_ids: Vec<u32>,
}

impl EncodedText {
    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.input_ids.len()
    }

    /// Whether the encoding holds no token.
    pub fn is_empty(&self) -> bool {
        self.input_ids.is_empty()
    }
}

impl From<&Encoding> for EncodedText {
    fn from(encoding: &Encoding) -> Self {
        Self {
            input_ids: encoding.get_ids().to_vec(),
            token_type_ids: encoding.get_type_ids().to_vec(),
        }
    }
}

/// A padded batch, row-major `[batch_size, seq_len]`.
///
/// Padding positions hold the tokenizer's pad id, the pad type id and attention mask 0.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EncodedBatch {
    /// Token ids, `batch_size * seq_len` values.
    pub input_ids: Vec<i64>,
    /// Segment (token type) ids, same layout.
    pub token_type_ids: Vec<i64>,
    /// 1 for real tokens, 0 for padding, same layout.
    pub attention_mask: Vec<i64>,
    /// Number of rows.
    pub batch_size: usize,
    /// Length of every row: the longest item of the batch.
    pub seq_len: usize,
}

impl EncodedBatch {
    /// Tensors `(input_ids, token_type_ids, attention_mask)`, each `[batch_size, seq_len]`, on
    /// `device`. Copies the vectors; see [`EncodedBatch::into_tensors`] to avoid that.
    pub fn to_tensors(&self, device: &Device) -> (Tensor<2, Int>, Tensor<2, Int>, Tensor<2, Int>) {
        self.clone().into_tensors(device)
    }

    /// Like [`EncodedBatch::to_tensors`], consuming the batch.
    pub fn into_tensors(self, device: &Device) -> (Tensor<2, Int>, Tensor<2, Int>, Tensor<2, Int>) {
        let shape = [self.batch_size, self.seq_len];
        let ids = Tensor::from_data(TensorData::new(self.input_ids, shape), device);
        let types = Tensor::from_data(TensorData::new(self.token_type_ids, shape), device);
        let mask = Tensor::from_data(TensorData::new(self.attention_mask, shape), device);
        (ids, types, mask)
    }

    /// The ids of row `row` (padding included), or `None` past the last row.
    pub fn row_ids(&self, row: usize) -> Option<&[i64]> {
        let start = row.checked_mul(self.seq_len)?;
        self.input_ids.get(start..start + self.seq_len)
    }
}

fn tokenizer_error(context: &str, err: impl std::fmt::Display) -> ModelError {
    ModelError::Tokenizer {
        context: context.to_string(),
        message: err.to_string(),
    }
}

impl TextTokenizer {
    /// Loads a `tokenizer.json` file.
    ///
    /// # Errors
    /// [`ModelError::Io`] when the file cannot be read, [`ModelError::Tokenizer`] when it is not
    /// a valid tokenizer definition.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes_named(&bytes, path.display().to_string())
    }

    /// Loads a tokenizer from the bytes of a `tokenizer.json` (errors name it
    /// `<in-memory tokenizer>`).
    ///
    /// # Errors
    /// [`ModelError::Tokenizer`] when the bytes are not a valid tokenizer definition.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        Self::from_bytes_named(bytes, IN_MEMORY.to_string())
    }

    fn from_bytes_named(bytes: &[u8], context: String) -> Result<Self> {
        check_tokenizer_json(bytes).map_err(|e| tokenizer_error(&context, e))?;
        let tokenizer = Tokenizer::from_bytes(bytes).map_err(|e| tokenizer_error(&context, e))?;
        Self::build(tokenizer, context)
    }

    /// Loads `tokenizer.json` from a model directory (a Hugging Face model folder).
    ///
    /// # Errors
    /// As [`TextTokenizer::from_file`].
    pub fn from_pretrained_dir(dir: impl AsRef<Path>) -> Result<Self> {
        Self::from_file(dir.as_ref().join("tokenizer.json"))
    }

    /// Wraps an already built `tokenizers::Tokenizer` (its padding settings are read as in
    /// [`TextTokenizer::from_file`], then switched off).
    ///
    /// # Errors
    /// [`ModelError::Tokenizer`] when the tokenizer's own truncation settings are invalid.
    pub fn from_tokenizer(tokenizer: Tokenizer) -> Result<Self> {
        Self::build(tokenizer, IN_MEMORY.to_string())
    }

    fn build(mut tokenizer: Tokenizer, source: String) -> Result<Self> {
        let (pad_id, pad_type_id, pad_token) = match tokenizer.get_padding() {
            Some(p) => (p.pad_id, p.pad_type_id, p.pad_token.clone()),
            None => match ["[PAD]", "<pad>"]
                .into_iter()
                .find_map(|t| tokenizer.token_to_id(t).map(|id| (id, t)))
            {
                Some((id, token)) => (id, 0, token.to_string()),
                None => {
                    let token = tokenizer
                        .id_to_token(0)
                        .unwrap_or_else(|| "[PAD]".to_string());
                    (0, 0, token)
                }
            },
        };
        let max_len = tokenizer.get_truncation().map(|t| t.max_length);
        tokenizer.with_padding(None);
        let mut plain = tokenizer.clone();
        plain
            .with_truncation(None)
            .map_err(|e| tokenizer_error(&source, e))?;
        let mut this = Self {
            truncating: tokenizer,
            plain,
            pad_id,
            pad_type_id,
            pad_token,
            max_len: None,
            source,
        };
        this.set_truncation(max_len)?;
        Ok(this)
    }

    /// Number of special tokens the post-processor adds to a single text and to a pair.
    fn added_tokens(&self) -> usize {
        self.truncating
            .get_post_processor()
            .map(|p| p.added_tokens(false).max(p.added_tokens(true)))
            .unwrap_or(0)
    }

    fn set_truncation(&mut self, max_len: Option<usize>) -> Result<()> {
        let params = match max_len {
            None => None,
            Some(max_len) => {
                let added = self.added_tokens();
                if max_len <= added {
                    return Err(tokenizer_error(
                        &self.source,
                        format!(
                            "max_len {max_len} leaves no room for text: the tokenizer adds up to \
                             {added} special tokens"
                        ),
                    ));
                }
                Some(TruncationParams {
                    direction: TruncationDirection::Right,
                    max_length: max_len,
                    strategy: TruncationStrategy::LongestFirst,
                    stride: 0,
                })
            }
        };
        self.truncating
            .with_truncation(params)
            .map_err(|e| tokenizer_error(&self.source, e))?;
        self.max_len = max_len;
        Ok(())
    }

    /// Truncates every encoded text (or pair, longest first) to `max_len` tokens, special
    /// tokens included.
    ///
    /// # Errors
    /// [`ModelError::Tokenizer`] when `max_len` is not larger than the number of special tokens
    /// the tokenizer adds (3 for a BERT pair).
    pub fn with_max_len(mut self, max_len: usize) -> Result<Self> {
        self.set_truncation(Some(max_len))?;
        Ok(self)
    }

    /// Checks that this tokenizer fits a model with `limits` and makes every encoding fit it:
    /// without a truncation length (a `tokenizer.json` whose `truncation` is null), truncation
    /// is set to `limits.max_len`; an explicit one must not exceed it.
    ///
    /// # Errors
    /// [`ModelError::TokenizerMismatch`] when the vocabulary is larger than the model's, or the
    /// pad id, a special token id or the pad type id is out of the model's range;
    /// [`ModelError::MaxLenTooLarge`] when the truncation length exceeds `limits.max_len`.
    pub fn fit_to_model(mut self, limits: &InputLimits) -> Result<Self> {
        if self.max_len.is_none() {
            self.set_truncation(Some(limits.max_len))?;
        }
        limits.check_tokenizer(&self)?;
        Ok(self)
    }

    /// The special added tokens `(id, content)` (`[CLS]`, `<s>`, `<pad>`, ...), by id.
    pub fn special_tokens(&self) -> Vec<(u32, String)> {
        let mut tokens: Vec<(u32, String)> = self
            .plain
            .get_added_tokens_decoder()
            .into_iter()
            .filter(|(_, t)| t.special)
            .map(|(id, t)| (id, t.content))
            .collect();
        tokens.sort();
        tokens
    }

    /// Uses `id` (whose token is `token`) for padding, e.g. GPT-2's `<|endoftext|>` (50256).
    ///
    /// # Errors
    /// [`ModelError::Tokenizer`] when `id` is not in the vocabulary or `token` is in it with
    /// another id.
    pub fn with_pad_token(mut self, id: u32, token: impl Into<String>) -> Result<Self> {
        let token = token.into();
        if self.plain.id_to_token(id).is_none() {
            return Err(tokenizer_error(
                &self.source,
                format!(
                    "pad id {id} is not in the vocabulary (size {})",
                    self.vocab_size()
                ),
            ));
        }
        if let Some(other) = self.plain.token_to_id(&token)
            && other != id
        {
            return Err(tokenizer_error(
                &self.source,
                format!("pad token {token:?} has id {other}, not {id}"),
            ));
        }
        self.pad_id = id;
        self.pad_token = token;
        Ok(self)
    }

    /// The id written at padding positions.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// The token at padding positions.
    pub fn pad_token(&self) -> &str {
        &self.pad_token
    }

    /// The segment id written at padding positions (0 for all common tokenizers).
    pub fn pad_type_id(&self) -> u32 {
        self.pad_type_id
    }

    /// The truncation length, special tokens included (`None`: no truncation).
    pub fn max_len(&self) -> Option<usize> {
        self.max_len
    }

    /// Vocabulary size, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.plain.get_vocab_size(true)
    }

    /// The id of a token, if it is in the vocabulary.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.plain.token_to_id(token)
    }

    /// The underlying `tokenizers` tokenizer, without truncation and padding.
    pub fn inner(&self) -> &Tokenizer {
        &self.plain
    }

    /// Encodes one text with special tokens, truncated, not padded.
    ///
    /// # Errors
    /// [`ModelError::Tokenizer`] when the tokenizer fails.
    pub fn encode_one(&self, text: &str) -> Result<EncodedText> {
        self.truncating
            .encode(text, true)
            .map(|e| EncodedText::from(&e))
            .map_err(|e| tokenizer_error("encode", e))
    }

    /// Encodes a sentence pair with special tokens (segment ids 0 then 1), truncated longest
    /// first, not padded.
    ///
    /// # Errors
    /// [`ModelError::Tokenizer`] when the tokenizer fails.
    pub fn encode_pair_one(&self, text_a: &str, text_b: &str) -> Result<EncodedText> {
        self.truncating
            .encode((text_a, text_b), true)
            .map(|e| EncodedText::from(&e))
            .map_err(|e| tokenizer_error("encode pair", e))
    }

    /// Encodes many texts or pairs (`(text_a, Some(text_b))`) in parallel, with special tokens,
    /// truncated, not padded. Pad them later with [`TextTokenizer::pad_batch`].
    ///
    /// # Errors
    /// [`ModelError::Tokenizer`] when the tokenizer fails on any input.
    pub fn encode_unpadded(&self, inputs: &[(&str, Option<&str>)]) -> Result<Vec<EncodedText>> {
        let inputs: Vec<EncodeInput<'_>> = inputs
            .iter()
            .map(|&(a, b)| match b {
                Some(b) => EncodeInput::from((a, b)),
                None => EncodeInput::from(a),
            })
            .collect();
        let encodings = self
            .truncating
            .encode_batch(inputs, true)
            .map_err(|e| tokenizer_error("encode batch", e))?;
        Ok(encodings.iter().map(EncodedText::from).collect())
    }

    /// Encodes texts with special tokens, truncated, padded on the right to the longest.
    ///
    /// # Errors
    /// [`ModelError::Tokenizer`] when the tokenizer fails.
    pub fn encode_batch(&self, texts: &[&str]) -> Result<EncodedBatch> {
        let inputs: Vec<(&str, Option<&str>)> = texts.iter().map(|&t| (t, None)).collect();
        let encoded = self.encode_unpadded(&inputs)?;
        Ok(self.pad_encoded(&encoded))
    }

    /// Encodes sentence pairs (segment ids 0/1), truncated longest first, padded on the right
    /// to the longest.
    ///
    /// # Errors
    /// [`ModelError::Tokenizer`] when the tokenizer fails.
    pub fn encode_pairs(&self, pairs: &[(&str, &str)]) -> Result<EncodedBatch> {
        let inputs: Vec<(&str, Option<&str>)> = pairs.iter().map(|&(a, b)| (a, Some(b))).collect();
        let encoded = self.encode_unpadded(&inputs)?;
        Ok(self.pad_encoded(&encoded))
    }

    /// Pads encodings made by this tokenizer to the longest of them.
    pub fn pad_encoded(&self, items: &[EncodedText]) -> EncodedBatch {
        self.pad_batch(
            items
                .iter()
                .map(|e| (e.input_ids.as_slice(), e.token_type_ids.as_slice())),
        )
    }

    /// Pads rows of `(input_ids, token_type_ids)` on the right to the longest row, with this
    /// tokenizer's pad id and pad type id and attention mask 0. A missing type id counts as 0.
    /// No truncation happens here.
    pub fn pad_batch<'a, I>(&self, rows: I) -> EncodedBatch
    where
        I: IntoIterator<Item = (&'a [u32], &'a [u32])>,
    {
        let rows: Vec<(&[u32], &[u32])> = rows.into_iter().collect();
        let batch_size = rows.len();
        let seq_len = rows.iter().map(|(ids, _)| ids.len()).max().unwrap_or(0);
        let total = batch_size * seq_len;
        let mut input_ids = Vec::with_capacity(total);
        let mut token_type_ids = Vec::with_capacity(total);
        let mut attention_mask = Vec::with_capacity(total);
        for (ids, types) in rows {
            let n = ids.len();
            input_ids.extend(ids.iter().map(|&id| i64::from(id)));
            token_type_ids.extend((0..n).map(|j| i64::from(types.get(j).copied().unwrap_or(0))));
            attention_mask.extend(std::iter::repeat_n(1_i64, n));
            let pad = seq_len - n;
            input_ids.extend(std::iter::repeat_n(i64::from(self.pad_id), pad));
            token_type_ids.extend(std::iter::repeat_n(i64::from(self.pad_type_id), pad));
            attention_mask.extend(std::iter::repeat_n(0_i64, pad));
        }
        EncodedBatch {
            input_ids,
            token_type_ids,
            attention_mask,
            batch_size,
            seq_len,
        }
    }

    /// Token ids of a text without special tokens, truncation or padding (for language-model
    /// corpora).
    ///
    /// # Errors
    /// [`ModelError::Tokenizer`] when the tokenizer fails.
    pub fn encode_plain(&self, text: &str) -> Result<Vec<u32>> {
        self.plain
            .encode(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| tokenizer_error("encode plain", e))
    }

    /// Decodes ids back to text (special tokens are kept, as in Hugging Face's default).
    ///
    /// # Errors
    /// [`ModelError::Tokenizer`] when an id is unknown to the decoder or decoding fails.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.plain
            .decode(ids, false)
            .map_err(|e| tokenizer_error("decode", e))
    }
}

#[cfg(test)]
mod tests {
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
            panic!(
                "PEFT_ASSETS_DIR is not set: point it at the shared assets directory (../shared)"
            )
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
}
