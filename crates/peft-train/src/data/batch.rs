//! Batching tokenized examples: [`ClassificationBatcher`] pads [`EncodedItem`]s to the longest
//! of each batch into [`ClassificationBatch`] tensors.

use std::sync::Arc;

use burn::data::dataloader::batcher::Batcher;
use burn::tensor::{Device, Int, Tensor, TensorData};
use peft_models::InputLimits;
use peft_models::tokenizer::{EncodedBatch, TextTokenizer};

use super::dataset::EncodedItem;
use crate::error::Result;

/// A batch for sequence classification, padded to its longest item.
#[derive(Debug, Clone)]
pub struct ClassificationBatch {
    /// Token ids `[batch, seq]`.
    pub input_ids: Tensor<2, Int>,
    /// Segment ids `[batch, seq]`.
    pub token_type_ids: Tensor<2, Int>,
    /// 1 for tokens, 0 for padding, `[batch, seq]`.
    pub attention_mask: Tensor<2, Int>,
    /// Class indices `[batch]`.
    pub labels: Tensor<1, Int>,
}

/// Pads [`EncodedItem`]s (from a [`TokenizedDataset`](super::TokenizedDataset)) into a
/// [`ClassificationBatch`] with the tokenizer's pad id; the attention mask is 0 on padding.
/// Never fails: tokenization happened before.
#[derive(Debug, Clone)]
pub struct ClassificationBatcher {
    tokenizer: Arc<TextTokenizer>,
}

impl ClassificationBatcher {
    /// A batcher padding with `tokenizer`'s pad id and pad type id.
    pub fn new(tokenizer: Arc<TextTokenizer>) -> Self {
        Self { tokenizer }
    }

    /// The tokenizer whose padding settings are used.
    pub fn tokenizer(&self) -> &Arc<TextTokenizer> {
        &self.tokenizer
    }

    /// Error unless this batcher's tokenizer and every item fit a model with `limits`
    /// (length, token and segment ids, pad ids), before any batch reaches the model.
    ///
    /// # Errors
    /// [`TrainError::Model`](crate::TrainError::Model) with the [`peft_models::ModelError`]
    /// naming the value and the limit (for an item: its index, as
    /// [`peft_models::ModelError::InvalidRow`]).
    pub fn check_fits(&self, limits: &InputLimits, items: &[EncodedItem]) -> Result<()> {
        limits.check_tokenizer(&self.tokenizer)?;
        limits.check_rows(
            items
                .iter()
                .map(|i| (i.input_ids.as_slice(), i.token_type_ids.as_slice())),
        )?;
        Ok(())
    }

    /// The padded ids of `items` without building tensors.
    pub fn pad(&self, items: &[EncodedItem]) -> EncodedBatch {
        self.tokenizer.pad_batch(
            items
                .iter()
                .map(|i| (i.input_ids.as_slice(), i.token_type_ids.as_slice())),
        )
    }
}

impl Batcher<EncodedItem, ClassificationBatch> for ClassificationBatcher {
    fn batch(&self, items: Vec<EncodedItem>, device: &Device) -> ClassificationBatch {
        let labels: Vec<i64> = items
            .iter()
            .map(|i| i64::try_from(i.label).unwrap_or(i64::MAX))
            .collect();
        let n = labels.len();
        let (input_ids, token_type_ids, attention_mask) = self.pad(&items).into_tensors(device);
        ClassificationBatch {
            input_ids,
            token_type_ids,
            attention_mask,
            labels: Tensor::from_data(TensorData::new(labels, [n]), device),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::data::dataset::Dataset;
    use tokenizers::Tokenizer;
    use tokenizers::models::wordlevel::WordLevel;
    use tokenizers::pre_tokenizers::whitespace::Whitespace;
    use tokenizers::processors::template::TemplateProcessing;

    use crate::data::{TextClassificationItem, TokenizedDataset};

    fn tiny_tokenizer() -> TextTokenizer {
        let vocab = [
            ("[PAD]", 0),
            ("[UNK]", 1),
            ("[CLS]", 2),
            ("[SEP]", 3),
            ("good", 4),
            ("bad", 5),
            ("movie", 6),
            ("very", 7),
        ];
        let model = WordLevel::builder()
            .vocab(vocab.iter().map(|&(t, i)| (t.to_string(), i)).collect())
            .unk_token("[UNK]".to_string())
            .build()
            .expect("model");
        let post = TemplateProcessing::builder()
            .try_single("[CLS] $A [SEP]")
            .expect("single")
            .try_pair("[CLS] $A:0 [SEP]:0 $B:1 [SEP]:1")
            .expect("pair")
            .special_tokens(vec![("[CLS]", 2), ("[SEP]", 3)])
            .build()
            .expect("template");
        let mut tok = Tokenizer::new(model);
        tok.with_pre_tokenizer(Some(Whitespace));
        tok.with_post_processor(Some(post));
        TextTokenizer::from_tokenizer(tok).expect("tokenizer")
    }

    fn ints<const D: usize>(t: Tensor<D, Int>) -> Vec<i64> {
        t.into_data().try_into_vec_as().expect("values")
    }

    #[test]
    fn batcher_pads_to_longest() {
        let tok = Arc::new(tiny_tokenizer().with_pad_token(0, "[PAD]").expect("pad"));
        let items = vec![
            TextClassificationItem {
                text_a: "good movie".into(),
                text_b: None,
                label: 1,
            },
            TextClassificationItem {
                text_a: "very very bad movie".into(),
                text_b: None,
                label: 0,
            },
            TextClassificationItem {
                text_a: "good".into(),
                text_b: Some("bad".into()),
                label: 1,
            },
        ];
        let ds = TokenizedDataset::new(&items, &tok).expect("tokenize");
        assert_eq!(ds.len(), 3);
        assert_eq!(ds.max_seq_len(), 6);
        assert_eq!(
            ds.items()[2],
            EncodedItem {
                input_ids: vec![2, 4, 3, 5, 3],
                token_type_ids: vec![0, 0, 0, 1, 1],
                label: 1
            }
        );
        let batcher = ClassificationBatcher::new(tok);
        let device = Device::flex();
        let all: Vec<EncodedItem> = (0..3).map(|i| ds.get(i).expect("item")).collect();
        let b = batcher.batch(all, &device);
        assert_eq!(b.input_ids.dims(), [3, 6]);
        assert_eq!(
            ints(b.input_ids),
            vec![2, 4, 6, 3, 0, 0, 2, 7, 7, 5, 6, 3, 2, 4, 3, 5, 3, 0]
        );
        assert_eq!(
            ints(b.token_type_ids),
            vec![0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0]
        );
        assert_eq!(
            ints(b.attention_mask),
            vec![1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0]
        );
        assert_eq!(ints(b.labels), vec![1, 0, 1]);

        // A batch of short items only is padded to its own longest item.
        let short = ds.select(&[2, 0]).expect("select");
        let b = batcher.batch(short.items().to_vec(), &device);
        assert_eq!(b.input_ids.dims(), [2, 5]);
        assert_eq!(ints(b.input_ids), vec![2, 4, 3, 5, 3, 2, 4, 6, 3, 0]);
        assert!(ds.select(&[3]).is_err());
    }
}
