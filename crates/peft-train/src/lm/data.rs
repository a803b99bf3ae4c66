//! The data pipeline of causal language modelling: [`read_documents`] (plain text, blank-line
//! paragraphs or JSON Lines) → [`tokenize_documents`] (ids, the EOS token between documents) →
//! [`chunk_tokens`] (blocks of `block_size` tokens; the remainder is dropped or padded) →
//! [`LmBatcher`] → [`LmBatch`] tensors. [`load_lm_blocks`] runs the first three steps.

use std::path::Path;

use burn::data::dataloader::batcher::Batcher;
use burn::tensor::{Device, Int, Tensor, TensorData};
use peft_models::tokenizer::TextTokenizer;

use crate::data::lines_of;
use crate::error::{Result, TrainError};
use crate::run::io_err;

/// How a corpus file is split into documents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TextFormat {
    /// The whole file is one document, kept verbatim (newlines included).
    Plain,
    /// Documents are separated by one or more blank (whitespace-only) lines; the lines of a
    /// document are joined with `\n`.
    Paragraphs,
    /// JSON Lines: one JSON object per line, the document in the string field `field`
    /// (Hugging Face datasets use `text`). Blank lines are skipped.
    JsonLines {
        /// The field holding the text.
        field: String,
    },
}

impl TextFormat {
    /// JSON Lines with the text in `field`.
    pub fn json_lines(field: impl Into<String>) -> Self {
        Self::JsonLines {
            field: field.into(),
        }
    }

    /// The format a file name suggests: `.jsonl` / `.ndjson` are JSON Lines with the field
    /// `text`, anything else is [`TextFormat::Plain`].
    pub fn from_path(path: impl AsRef<Path>) -> Self {
        let ext = path
            .as_ref()
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("jsonl") | Some("ndjson") => Self::json_lines("text"),
            _ => Self::Plain,
        }
    }
}

fn malformed(path: &Path, line: usize, message: String) -> TrainError {
    TrainError::MalformedRow {
        path: path.to_path_buf(),
        line,
        message,
    }
}

/// Read the documents of a corpus file. Empty documents are left out.
///
/// # Errors
/// - [`TrainError::Io`]: the file cannot be read.
/// - [`TrainError::EmptyData`]: no non-empty document.
/// - [`TrainError::MalformedRow`] (1-based line number): invalid UTF-8; for JSON Lines a line
///   that is not JSON, not an object, or lacks the string field.
pub fn read_documents(path: impl AsRef<Path>, format: &TextFormat) -> Result<Vec<String>> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    parse_documents(&bytes, path, format)
}

/// [`read_documents`] on bytes already read; `path` is only used in errors.
///
/// # Errors
/// As [`read_documents`], without [`TrainError::Io`].
pub fn parse_documents(bytes: &[u8], path: &Path, format: &TextFormat) -> Result<Vec<String>> {
    let mut docs = Vec::new();
    match format {
        TextFormat::Plain => {
            let text = std::str::from_utf8(bytes).map_err(|e| {
                let line = 1 + bytes[..e.valid_up_to()]
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count();
                malformed(path, line, format!("not valid UTF-8: {e}"))
            })?;
            docs.push(text.to_string());
        }
        TextFormat::Paragraphs => {
            let mut current: Vec<&str> = Vec::new();
            for line in lines_of(bytes, path) {
                let (_, text) = line?;
                if text.trim().is_empty() {
                    if !current.is_empty() {
                        docs.push(current.join("\n"));
                        current.clear();
                    }
                } else {
                    current.push(text);
                }
            }
            if !current.is_empty() {
                docs.push(current.join("\n"));
            }
        }
        TextFormat::JsonLines { field } => {
            for line in lines_of(bytes, path) {
                let (n, text) = line?;
                if text.trim().is_empty() {
                    continue;
                }
                let value: serde_json::Value = serde_json::from_str(text)
                    .map_err(|e| malformed(path, n, format!("invalid JSON: {e}")))?;
                let object = value.as_object().ok_or_else(|| {
                    malformed(path, n, "expected a JSON object per line".to_string())
                })?;
                let doc = match object.get(field) {
                    Some(serde_json::Value::String(s)) => s.clone(),
                    Some(other) => {
                        return Err(malformed(
                            path,
                            n,
                            format!("field `{field}` is not a string: {other}"),
                        ));
                    }
                    None => {
                        return Err(malformed(path, n, format!("missing field `{field}`")));
                    }
                };
                docs.push(doc);
            }
        }
    }
    docs.retain(|d| !d.is_empty());
    if docs.is_empty() {
        return Err(TrainError::EmptyData {
            path: path.to_path_buf(),
        });
    }
    Ok(docs)
}

/// Token ids of `docs` concatenated, with `eos_id` between consecutive documents (GPT-2's
/// `<|endoftext|>` is 50256). No special tokens are added otherwise
/// ([`TextTokenizer::encode_plain`]).
///
/// # Errors
/// [`TrainError::Model`] when the tokenizer fails.
pub fn tokenize_documents(
    docs: &[String],
    tokenizer: &TextTokenizer,
    eos_id: u32,
) -> Result<Vec<u32>> {
    let mut tokens = Vec::new();
    for (i, doc) in docs.iter().enumerate() {
        if i > 0 {
            tokens.push(eos_id);
        }
        tokens.extend(tokenizer.encode_plain(doc)?);
    }
    Ok(tokens)
}

/// What happens to the tokens after the last full block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Remainder {
    /// Leave them out (Hugging Face `run_clm`'s `group_texts`).
    Drop,
    /// Keep them in a last block filled up with `pad_id` and attention mask 0: the padding is
    /// neither attended to nor predicted. A remainder of a single token is still dropped (it
    /// predicts nothing).
    Pad {
        /// The id written at padding positions (any id in the vocabulary; GPT-2 has no pad
        /// token, its EOS is the usual choice).
        pad_id: u32,
    },
}

/// One training sequence: `block_size` token ids and their attention mask (1 = token,
/// 0 = padding).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LmBlock {
    /// Token ids.
    pub input_ids: Vec<u32>,
    /// 1 for tokens, 0 for padding; as long as `input_ids`.
    pub attention_mask: Vec<u32>,
}

impl LmBlock {
    /// A block of real tokens only (mask all ones).
    pub fn new(input_ids: Vec<u32>) -> Self {
        let attention_mask = vec![1; input_ids.len()];
        Self {
            input_ids,
            attention_mask,
        }
    }

    /// Number of tokens (padding included).
    pub fn len(&self) -> usize {
        self.input_ids.len()
    }

    /// Whether the block holds no position at all.
    pub fn is_empty(&self) -> bool {
        self.input_ids.is_empty()
    }

    /// Number of next-token targets: real tokens after the first position.
    pub fn targets(&self) -> usize {
        self.attention_mask
            .iter()
            .skip(1)
            .filter(|&&m| m != 0)
            .count()
    }
}

/// Cut `tokens` into blocks of `block_size` tokens; see [`Remainder`] for the rest.
///
/// # Errors
/// [`TrainError::InvalidConfig`] when `block_size < 2` (a block needs a token to predict).
pub fn chunk_tokens(
    tokens: &[u32],
    block_size: usize,
    remainder: Remainder,
) -> Result<Vec<LmBlock>> {
    if block_size < 2 {
        return Err(TrainError::InvalidConfig(format!(
            "block_size must be at least 2, got {block_size}"
        )));
    }
    let mut blocks: Vec<LmBlock> = tokens
        .chunks_exact(block_size)
        .map(|c| LmBlock::new(c.to_vec()))
        .collect();
    let rest = tokens.chunks_exact(block_size).remainder();
    if let Remainder::Pad { pad_id } = remainder
        && rest.len() >= 2
    {
        let mut input_ids = rest.to_vec();
        let mut attention_mask = vec![1; rest.len()];
        input_ids.resize(block_size, pad_id);
        attention_mask.resize(block_size, 0);
        blocks.push(LmBlock {
            input_ids,
            attention_mask,
        });
    }
    Ok(blocks)
}

/// Read, tokenize and chunk a corpus file: [`read_documents`], [`tokenize_documents`],
/// [`chunk_tokens`].
///
/// # Errors
/// As those functions; [`TrainError::EmptyData`] when the text has no token, and
/// [`TrainError::InvalidConfig`] when it is too short for a single block.
pub fn load_lm_blocks(
    path: impl AsRef<Path>,
    format: &TextFormat,
    tokenizer: &TextTokenizer,
    eos_id: u32,
    block_size: usize,
    remainder: Remainder,
) -> Result<Vec<LmBlock>> {
    let path = path.as_ref();
    let docs = read_documents(path, format)?;
    let tokens = tokenize_documents(&docs, tokenizer, eos_id)?;
    if tokens.is_empty() {
        return Err(TrainError::EmptyData {
            path: path.to_path_buf(),
        });
    }
    let blocks = chunk_tokens(&tokens, block_size, remainder)?;
    if blocks.is_empty() {
        return Err(TrainError::InvalidConfig(format!(
            "{} has {} tokens, fewer than one block of {block_size}: use a smaller block size \
             or pad the remainder",
            path.display(),
            tokens.len()
        )));
    }
    Ok(blocks)
}

/// Training and validation blocks of a language-modelling run.
#[derive(Clone, Debug, Default)]
pub struct LmData {
    /// Training blocks.
    pub train: Vec<LmBlock>,
    /// Validation blocks.
    pub valid: Vec<LmBlock>,
}

impl LmData {
    /// Hold out the last `valid_fraction` of `blocks` (at least one block) for validation.
    ///
    /// # Errors
    /// [`TrainError::InvalidConfig`] for fewer than two blocks or a fraction outside `(0, 1)`.
    pub fn split(mut blocks: Vec<LmBlock>, valid_fraction: f64) -> Result<Self> {
        if !(valid_fraction > 0.0 && valid_fraction < 1.0) {
            return Err(TrainError::InvalidConfig(format!(
                "valid_fraction must be in (0, 1), got {valid_fraction}"
            )));
        }
        let n = blocks.len();
        if n < 2 {
            return Err(TrainError::InvalidConfig(format!(
                "{n} block(s) cannot be split into training and validation data: use more text \
                 or a smaller block size"
            )));
        }
        let valid = ((n as f64 * valid_fraction).round() as usize).clamp(1, n - 1);
        let valid = blocks.split_off(n - valid);
        Ok(Self {
            train: blocks,
            valid,
        })
    }
}

/// A batch of blocks for causal language modelling.
#[derive(Clone, Debug)]
pub struct LmBatch {
    /// Token ids `[batch, seq]`.
    pub input_ids: Tensor<2, Int>,
    /// 1 for tokens, 0 for padding, `[batch, seq]`.
    pub attention_mask: Tensor<2, Int>,
}

/// Stacks [`LmBlock`]s into an [`LmBatch`]. Blocks of one run have the same length; shorter
/// ones would be right-padded with id 0 and mask 0 to the longest of the batch. Never fails.
#[derive(Clone, Copy, Debug, Default)]
pub struct LmBatcher;

impl Batcher<LmBlock, LmBatch> for LmBatcher {
    fn batch(&self, items: Vec<LmBlock>, device: &Device) -> LmBatch {
        let batch = items.len();
        let seq = items.iter().map(LmBlock::len).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(batch * seq);
        let mut mask = Vec::with_capacity(batch * seq);
        for item in &items {
            for j in 0..seq {
                ids.push(item.input_ids.get(j).map_or(0, |&t| i64::from(t)));
                mask.push(item.attention_mask.get(j).map_or(0, |&m| i64::from(m)));
            }
        }
        LmBatch {
            input_ids: Tensor::from_data(TensorData::new(ids, [batch, seq]), device),
            attention_mask: Tensor::from_data(TensorData::new(mask, [batch, seq]), device),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path() -> std::path::PathBuf {
        std::path::PathBuf::from("corpus")
    }

    #[test]
    fn jsonl_errors_carry_line_numbers() {
        let format = TextFormat::json_lines("text");
        let ok = b"{\"text\": \"a\"}\n\n{\"text\": \"b\", \"id\": 3}\r\n";
        assert_eq!(
            parse_documents(ok, &path(), &format).ok(),
            Some(vec!["a".to_string(), "b".to_string()])
        );
        let cases: [(&[u8], usize, &str); 4] = [
            (b"{\"text\": \"a\"}\n{\"text\": \n", 2, "invalid JSON"),
            (b"{\"text\": \"a\"}\n\n[1, 2]\n", 3, "object"),
            (b"{\"body\": \"a\"}\n", 1, "missing field `text`"),
            (b"{\"text\": \"a\"}\n{\"text\": 5}\n", 2, "not a string"),
        ];
        for (bytes, want_line, want) in cases {
            match parse_documents(bytes, &path(), &format) {
                Err(TrainError::MalformedRow { line, message, .. }) => {
                    assert_eq!(line, want_line, "{message}");
                    assert!(message.contains(want), "{message}");
                }
                other => panic!("expected MalformedRow, got {other:?}"),
            }
        }
        assert!(matches!(
            parse_documents(b"\n{\"text\": \"\"}\n", &path(), &format),
            Err(TrainError::EmptyData { .. })
        ));
    }

    #[test]
    fn plain_and_paragraph_documents() {
        let text = b"one\ntwo\n\n \nthree\n";
        assert_eq!(
            parse_documents(text, &path(), &TextFormat::Plain).ok(),
            Some(vec!["one\ntwo\n\n \nthree\n".to_string()])
        );
        assert_eq!(
            parse_documents(text, &path(), &TextFormat::Paragraphs).ok(),
            Some(vec!["one\ntwo".to_string(), "three".to_string()])
        );
        match parse_documents(b"ok\n\xff\n", &path(), &TextFormat::Plain) {
            Err(TrainError::MalformedRow { line, .. }) => assert_eq!(line, 2),
            other => panic!("expected MalformedRow, got {other:?}"),
        }
        assert!(matches!(
            parse_documents(b"", &path(), &TextFormat::Plain),
            Err(TrainError::EmptyData { .. })
        ));
        assert_eq!(
            TextFormat::from_path("a/b.JSONL"),
            TextFormat::json_lines("text")
        );
        assert_eq!(TextFormat::from_path("a/b.txt"), TextFormat::Plain);
    }

    #[test]
    fn chunking_drops_or_pads_the_remainder() {
        let tokens: Vec<u32> = (0..11).collect();
        let drop = chunk_tokens(&tokens, 4, Remainder::Drop).unwrap_or_default();
        assert_eq!(drop.len(), 2);
        assert_eq!(drop[1].input_ids, vec![4, 5, 6, 7]);
        assert_eq!(drop[1].targets(), 3);
        let pad = chunk_tokens(&tokens, 4, Remainder::Pad { pad_id: 99 }).unwrap_or_default();
        assert_eq!(pad.len(), 3);
        assert_eq!(pad[2].input_ids, vec![8, 9, 10, 99]);
        assert_eq!(pad[2].attention_mask, vec![1, 1, 1, 0]);
        assert_eq!(pad[2].targets(), 2);
        // A single leftover token predicts nothing and is dropped even with padding.
        let one = chunk_tokens(&tokens[..9], 4, Remainder::Pad { pad_id: 0 }).unwrap_or_default();
        assert_eq!(one.len(), 2);
        assert!(chunk_tokens(&tokens, 1, Remainder::Drop).is_err());
    }

    #[test]
    fn split_holds_out_the_tail() {
        let blocks: Vec<LmBlock> = (0..10).map(|i| LmBlock::new(vec![i, i])).collect();
        let data = LmData::split(blocks.clone(), 0.2).unwrap_or_default();
        assert_eq!((data.train.len(), data.valid.len()), (8, 2));
        assert_eq!(data.valid[0].input_ids, vec![8, 8]);
        assert!(LmData::split(blocks[..1].to_vec(), 0.5).is_err());
        assert!(LmData::split(blocks, 1.0).is_err());
    }
}
