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
mod tests;
