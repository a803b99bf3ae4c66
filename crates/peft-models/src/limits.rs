//! What token ids a model accepts, checked before any tensor op: the one place for the input
//! checks of BERT/RoBERTa ([`crate::bert::BertModel::input_limits`]) and GPT-2
//! ([`crate::gpt2::Gpt2Model::input_limits`]), used by their `check_input` and by the training
//! data paths of `peft-train`.

use crate::error::{ModelError, Result};
use crate::tokenizer::TextTokenizer;

/// The ids and lengths a model can embed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InputLimits {
    /// Token ids must be in `0..vocab_size`.
    pub vocab_size: usize,
    /// Longest usable sequence, special tokens included (BERT: `max_position_embeddings`;
    /// RoBERTa: `max_position_embeddings - pad_token_id - 1`; GPT-2: `n_positions`).
    pub max_len: usize,
    /// Segment (token type) ids must be in `0..type_vocab_size` (1 for RoBERTa and GPT-2).
    pub type_vocab_size: usize,
}

impl InputLimits {
    /// Error unless a sequence of `len` tokens fits (`1..=max_len`).
    ///
    /// # Errors
    /// [`ModelError::SequenceTooLong`] or [`ModelError::InvalidInput`] for an empty sequence.
    pub fn check_len(&self, len: usize) -> Result<()> {
        if len == 0 {
            return Err(ModelError::InvalidInput("empty sequence".into()));
        }
        if len > self.max_len {
            return Err(ModelError::SequenceTooLong {
                len,
                max: self.max_len,
            });
        }
        Ok(())
    }

    /// Error unless a requested truncation length (e.g. a `--max-len` option) fits the model.
    ///
    /// # Errors
    /// [`ModelError::MaxLenTooLarge`].
    pub fn check_max_len(&self, requested: usize) -> Result<()> {
        if requested > self.max_len {
            return Err(ModelError::MaxLenTooLarge {
                requested,
                max: self.max_len,
            });
        }
        Ok(())
    }

    /// Error unless the ids in `min..=max` are token ids of the model.
    ///
    /// # Errors
    /// [`ModelError::TokenIdOutOfRange`] naming the offending id.
    pub fn check_token_id_range(&self, min: i64, max: i64) -> Result<()> {
        for id in [min, max] {
            if id < 0 || id as u64 >= self.vocab_size as u64 {
                return Err(ModelError::TokenIdOutOfRange {
                    id,
                    vocab_size: self.vocab_size,
                });
            }
        }
        Ok(())
    }

    /// Error unless the segment ids in `min..=max` are below `type_vocab_size`.
    ///
    /// # Errors
    /// [`ModelError::TokenTypeOutOfRange`] naming the offending id.
    pub fn check_token_type_range(&self, min: i64, max: i64) -> Result<()> {
        for id in [min, max] {
            if id < 0 || id as u64 >= self.type_vocab_size as u64 {
                return Err(ModelError::TokenTypeOutOfRange {
                    id,
                    type_vocab_size: self.type_vocab_size,
                });
            }
        }
        Ok(())
    }

    /// Error unless one encoded sequence fits: its length, every token id and every segment
    /// id (`token_type_ids` may be shorter or empty: missing ones count as 0).
    ///
    /// # Errors
    /// As [`InputLimits::check_len`], [`InputLimits::check_token_id_range`] and
    /// [`InputLimits::check_token_type_range`].
    pub fn check_ids(&self, input_ids: &[u32], token_type_ids: &[u32]) -> Result<()> {
        self.check_len(input_ids.len())?;
        if let Some(&id) = input_ids.iter().max() {
            self.check_token_id_range(0, i64::from(id))?;
        }
        if let Some(&id) = token_type_ids.iter().max() {
            self.check_token_type_range(0, i64::from(id))?;
        }
        Ok(())
    }

    /// [`InputLimits::check_ids`] on every row; the error names the first bad row.
    ///
    /// # Errors
    /// [`ModelError::InvalidRow`] wrapping the row's error.
    pub fn check_rows<'a, I>(&self, rows: I) -> Result<()>
    where
        I: IntoIterator<Item = (&'a [u32], &'a [u32])>,
    {
        for (row, (ids, types)) in rows.into_iter().enumerate() {
            self.check_ids(ids, types)
                .map_err(|source| ModelError::InvalidRow {
                    row,
                    source: Box::new(source),
                })?;
        }
        Ok(())
    }

    /// Error unless `tokenizer` is one for this model: its vocabulary (added tokens included)
    /// is not larger than the model's, its special tokens, pad id and pad type id are in range,
    /// and its truncation length (if any) fits. See [`TextTokenizer::fit_to_model`], which also
    /// sets the truncation when the file has none.
    ///
    /// # Errors
    /// [`ModelError::TokenizerMismatch`] or [`ModelError::MaxLenTooLarge`].
    pub fn check_tokenizer(&self, tokenizer: &TextTokenizer) -> Result<()> {
        let vocab = |what: String, value: usize| {
            Err(ModelError::TokenizerMismatch {
                what,
                value,
                limit_name: "vocab_size",
                limit: self.vocab_size,
            })
        };
        let size = tokenizer.vocab_size();
        if size > self.vocab_size {
            return vocab("vocabulary size".into(), size);
        }
        let pad = tokenizer.pad_id() as usize;
        if pad >= self.vocab_size {
            return vocab(format!("pad id (`{}`)", tokenizer.pad_token()), pad);
        }
        for (id, token) in tokenizer.special_tokens() {
            if id as usize >= self.vocab_size {
                return vocab(format!("id of special token `{token}`"), id as usize);
            }
        }
        let pad_type = tokenizer.pad_type_id() as usize;
        if pad_type >= self.type_vocab_size {
            return Err(ModelError::TokenizerMismatch {
                what: "pad type id".into(),
                value: pad_type,
                limit_name: "type_vocab_size",
                limit: self.type_vocab_size,
            });
        }
        if let Some(max_len) = tokenizer.max_len() {
            self.check_max_len(max_len)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: InputLimits = InputLimits {
        vocab_size: 10,
        max_len: 4,
        type_vocab_size: 2,
    };

    #[test]
    fn ids_and_lengths_are_checked_with_values_and_limits() {
        assert!(LIMITS.check_ids(&[0, 9, 3, 1], &[0, 1, 1, 0]).is_ok());
        assert!(LIMITS.check_ids(&[1], &[]).is_ok());
        let e = LIMITS.check_ids(&[0, 1, 2, 3, 4], &[]);
        assert!(
            matches!(e, Err(ModelError::SequenceTooLong { len: 5, max: 4 })),
            "{e:?}"
        );
        let e = LIMITS.check_ids(&[0, 10], &[]);
        assert!(
            matches!(
                e,
                Err(ModelError::TokenIdOutOfRange {
                    id: 10,
                    vocab_size: 10
                })
            ),
            "{e:?}"
        );
        let e = LIMITS.check_ids(&[0, 1], &[0, 2]);
        assert!(
            matches!(
                e,
                Err(ModelError::TokenTypeOutOfRange {
                    id: 2,
                    type_vocab_size: 2
                })
            ),
            "{e:?}"
        );
        assert!(matches!(
            LIMITS.check_ids(&[], &[]),
            Err(ModelError::InvalidInput(_))
        ));
        let e = LIMITS.check_rows([(&[1_u32, 2][..], &[][..]), (&[1, 2, 3, 4, 5][..], &[][..])]);
        let msg = e.as_ref().map_err(|e| e.to_string()).err();
        assert!(
            matches!(&e, Err(ModelError::InvalidRow { row: 1, source }) if matches!(**source, ModelError::SequenceTooLong { len: 5, max: 4 })),
            "{e:?}"
        );
        assert_eq!(
            msg.as_deref(),
            Some(
                "row 1: sequence of 5 tokens exceeds the model's limit of 4: truncate it (max_len)"
            )
        );
        assert!(matches!(
            LIMITS.check_max_len(5),
            Err(ModelError::MaxLenTooLarge {
                requested: 5,
                max: 4
            })
        ));
        assert!(LIMITS.check_max_len(4).is_ok());
        assert!(LIMITS.check_token_id_range(-1, 3).is_err());
    }
}
