//! BERT embeddings: word + position + token type, then LayerNorm and dropout.

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig};
use burn::tensor::{Device, Int, Tensor};
use peft_core::dropout::dropout;

use super::config::{BertConfig, PositionScheme};

/// Word, position and token-type embeddings (field names mirror the HF checkpoint;
/// `layer_norm` is HF's `LayerNorm`).
#[derive(Module, Debug)]
pub struct BertEmbeddings {
    /// How position ids are formed from the input.
    #[module(skip)]
    pub position_scheme: PositionScheme,
    /// The pad token id (the position offset of [`PositionScheme::PaddingOffset`]).
    #[module(skip)]
    pub pad_token_id: usize,
    /// `[vocab_size, hidden]`.
    pub word_embeddings: Embedding,
    /// `[max_position_embeddings, hidden]`.
    pub position_embeddings: Embedding,
    /// `[type_vocab_size, hidden]`.
    pub token_type_embeddings: Embedding,
    /// LayerNorm with the config's epsilon.
    pub layer_norm: LayerNorm,
    /// Dropout (training only).
    pub dropout: Dropout,
}

impl BertEmbeddings {
    /// Build with random weights (load a checkpoint to make them useful).
    pub fn new(config: &BertConfig, device: &Device) -> Self {
        let h = config.hidden_size;
        Self {
            position_scheme: config.position_scheme,
            pad_token_id: config.pad_token_id,
            word_embeddings: EmbeddingConfig::new(config.vocab_size, h).init(device),
            position_embeddings: EmbeddingConfig::new(config.max_position_embeddings, h)
                .init(device),
            token_type_embeddings: EmbeddingConfig::new(config.type_vocab_size, h).init(device),
            layer_norm: LayerNormConfig::new(h)
                .with_epsilon(config.layer_norm_eps)
                .init(device),
            dropout: DropoutConfig::new(config.hidden_dropout_prob).init(),
        }
    }

    /// Embed token ids `[batch, seq]` with token types `[batch, seq]` into `[batch, seq, hidden]`.
    ///
    /// Positions follow [`BertEmbeddings::position_scheme`]; they must stay inside the position
    /// table (checked by [`super::BertModel::try_forward`]).
    pub fn forward(&self, input_ids: Tensor<2, Int>, token_type_ids: Tensor<2, Int>) -> Tensor<3> {
        let positions = self.position_ids(&input_ids);
        let x = self.word_embeddings.forward(input_ids)
            + self.token_type_embeddings.forward(token_type_ids)
            + self.position_embeddings.forward(positions);
        dropout(
            &self.dropout,
            peft_core::kernels::layer_norm(&self.layer_norm, x),
        )
    }

    /// Position ids `[batch, seq]` for token ids `[batch, seq]`.
    pub fn position_ids(&self, input_ids: &Tensor<2, Int>) -> Tensor<2, Int> {
        let [batch, seq] = input_ids.dims();
        match self.position_scheme {
            PositionScheme::Sequential => {
                Tensor::<1, Int>::arange(0..seq as i64, &input_ids.device())
                    .unsqueeze::<2>()
                    .expand([batch, seq])
            }
            PositionScheme::PaddingOffset => {
                padding_offset_positions(input_ids.clone(), self.pad_token_id)
            }
        }
    }
}

/// RoBERTa's position ids `[batch, seq]` from token ids `[batch, seq]` (HF
/// `create_position_ids_from_input_ids`): `pad` where the id is `pad`, else `pad` + the number
/// of non-pad tokens up to and including this one.
pub fn padding_offset_positions(input_ids: Tensor<2, Int>, pad: usize) -> Tensor<2, Int> {
    let pad = pad as i64;
    let not_pad = input_ids.not_equal_elem(pad).int();
    (not_pad.clone().cumsum(1) * not_pad).add_scalar(pad)
}
