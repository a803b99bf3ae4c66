//! The BERT encoder, pooler and full model.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Int, Tensor, activation};
use peft_core::{
    AdapterHost, AdapterLayer, AdapterSite, BaseModelInfo, LinearSite, LinearTarget, PrefixPool,
};

use super::config::BertConfig;
use super::embeddings::BertEmbeddings;
use super::layer::BertLayer;
use crate::error::{ModelError, Result};
use crate::limits::InputLimits;

/// The stack of encoder layers (HF `encoder`).
#[derive(Module, Debug)]
pub struct BertEncoder {
    /// HF `encoder.layer.N`.
    pub layer: Vec<BertLayer>,
}

/// Dense + tanh on the `[CLS]` vector (HF `pooler`).
#[derive(Module, Debug)]
pub struct BertPooler {
    /// `hidden -> hidden`.
    pub dense: Linear,
}

impl BertPooler {
    /// `[batch, seq, hidden]` -> `[batch, hidden]` from the first token.
    pub fn forward(&self, hidden: Tensor<3>) -> Tensor<2> {
        activation::tanh(self.dense.forward(cls(hidden)))
    }
}

/// The first (`[CLS]`) token of each sequence: `[batch, seq, hidden]` -> `[batch, hidden]`.
pub fn cls(hidden: Tensor<3>) -> Tensor<2> {
    let [b, _, h] = hidden.dims();
    hidden.slice([0..b, 0..1]).reshape([b, h])
}

/// Inputs of a BERT forward pass, all `[batch, seq]`.
#[derive(Clone, Debug)]
pub struct BertInput {
    /// Token ids.
    pub input_ids: Tensor<2, Int>,
    /// Segment ids (0 for the first sentence, 1 for the second); zeros when absent.
    pub token_type_ids: Option<Tensor<2, Int>>,
    /// 1 for real tokens, 0 for padding; all ones when absent.
    pub attention_mask: Option<Tensor<2, Int>>,
}

impl BertInput {
    /// Inputs from token ids alone (no padding, one segment).
    pub fn new(input_ids: Tensor<2, Int>) -> Self {
        Self {
            input_ids,
            token_type_ids: None,
            attention_mask: None,
        }
    }

    /// With token types.
    pub fn with_token_type_ids(mut self, ids: Tensor<2, Int>) -> Self {
        self.token_type_ids = Some(ids);
        self
    }

    /// With a padding mask.
    pub fn with_attention_mask(mut self, mask: Tensor<2, Int>) -> Self {
        self.attention_mask = Some(mask);
        self
    }
}

/// Outputs of [`BertModel::forward`].
#[derive(Clone, Debug)]
pub struct BertModelOutput {
    /// `[batch, seq, hidden]`.
    pub last_hidden_state: Tensor<3>,
    /// `[batch, hidden]`, when the model has a pooler.
    pub pooler_output: Option<Tensor<2>>,
}

/// A BERT encoder with adapter sites (HF `BertModel`).
#[derive(Module, Debug)]
pub struct BertModel {
    /// HF `embeddings`.
    pub embeddings: BertEmbeddings,
    /// HF `encoder`.
    pub encoder: BertEncoder,
    /// HF `pooler`, if the model has one.
    pub pooler: Option<BertPooler>,
    /// Size of the position table.
    pub max_position_embeddings: usize,
    /// Model width.
    pub hidden_size: usize,
    /// Number of token types.
    pub type_vocab_size: usize,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Longest accepted sequence ([`BertConfig::max_sequence_len`]).
    pub max_sequence_len: usize,
    /// Attention heads per layer.
    pub num_attention_heads: usize,
    /// The prefix-tuning adapters (`prefix.adapters.<name>.…`).
    pub prefix: PrefixPool,
}

impl BertConfig {
    /// Build a BERT with random weights (use [`BertModel::from_pretrained`] for real ones).
    pub fn init(&self, device: &Device) -> Result<BertModel> {
        self.validate()?;
        Ok(BertModel {
            embeddings: BertEmbeddings::new(self, device),
            encoder: BertEncoder {
                layer: (0..self.num_hidden_layers)
                    .map(|_| BertLayer::new(self, device))
                    .collect(),
            },
            pooler: self.add_pooling_layer.then(|| BertPooler {
                dense: LinearConfig::new(self.hidden_size, self.hidden_size).init(device),
            }),
            max_position_embeddings: self.max_position_embeddings,
            hidden_size: self.hidden_size,
            type_vocab_size: self.type_vocab_size,
            vocab_size: self.vocab_size,
            max_sequence_len: self.max_sequence_len(),
            num_attention_heads: self.num_attention_heads,
            prefix: PrefixPool::new(),
        })
    }
}

/// The additive attention bias `[batch, 1, 1, seq]`: 0 for tokens, `f32::MIN` for padding
/// (what transformers adds), built once per forward and shared by all layers.
pub fn mask_bias(attention_mask: Tensor<2, Int>) -> Tensor<4> {
    let [b, s] = attention_mask.dims();
    let keep = attention_mask.float();
    ((keep.ones_like() - keep) * f64::from(f32::MIN)).reshape([b, 1, 1, s])
}

impl BertModel {
    /// The ids and lengths this model accepts (see [`InputLimits`]).
    pub fn input_limits(&self) -> InputLimits {
        InputLimits {
            vocab_size: self.vocab_size,
            max_len: self.max_sequence_len,
            type_vocab_size: self.type_vocab_size,
        }
    }

    /// Check that `input` fits the model before any tensor op: non-empty, matching shapes,
    /// `seq` within the usable positions, token ids in `0..vocab_size` and segment ids in
    /// `0..type_vocab_size` (this reads the id ranges back from the device).
    pub fn check_input(&self, input: &BertInput) -> Result<()> {
        let [b, s] = input.input_ids.dims();
        if s == 0 || b == 0 {
            return Err(ModelError::InvalidInput("empty batch or sequence".into()));
        }
        let limits = self.input_limits();
        limits.check_len(s)?;
        peft_core::check_active_batch(self, b)?;
        for (name, t) in [
            ("token_type_ids", &input.token_type_ids),
            ("attention_mask", &input.attention_mask),
        ] {
            if let Some(t) = t
                && t.dims() != [b, s]
            {
                return Err(ModelError::InvalidInput(format!(
                    "{name} has shape {:?}, input_ids {:?}",
                    t.dims(),
                    [b, s]
                )));
            }
        }
        let ids = &input.input_ids;
        limits.check_token_id_range(
            ids.clone().min().into_scalar::<i64>(),
            ids.clone().max().into_scalar::<i64>(),
        )?;
        if let Some(types) = &input.token_type_ids {
            limits.check_token_type_range(
                types.clone().min().into_scalar::<i64>(),
                types.clone().max().into_scalar::<i64>(),
            )?;
        }
        Ok(())
    }

    /// [`BertModel::forward`] after [`BertModel::check_input`].
    pub fn try_forward(&self, input: BertInput) -> Result<BertModelOutput> {
        self.check_input(&input)?;
        Ok(self.forward(input))
    }

    /// Encode a batch. Inputs are `[batch, seq]` with `seq <= max_sequence_len` and ids in range
    /// (see [`BertModel::try_forward`] for a checked call).
    ///
    /// With an active prompt-tuning adapter the outputs are `prompt_length` positions longer
    /// (`[batch, prompt_length + seq, hidden]`, AdapterHub's layout).
    pub fn forward(&self, input: BertInput) -> BertModelOutput {
        let device = input.input_ids.device();
        let dims = input.input_ids.dims();
        let token_type_ids = input
            .token_type_ids
            .unwrap_or_else(|| Tensor::zeros(dims, &device));
        let attention_mask = input
            .attention_mask
            .unwrap_or_else(|| Tensor::ones(dims, &device));
        let x = self.embeddings.forward(input.input_ids, token_type_ids);
        // Prompt tuning: the prompt goes after the embedding layer, always attended.
        let (x, attention_mask) = match self.prefix.active_prompt() {
            Some(prompt) => {
                let ones = Tensor::ones([dims[0], prompt.len()], &device);
                (
                    prompt.combine(x),
                    Tensor::cat(vec![ones, attention_mask], 1),
                )
            }
            None => (x, attention_mask),
        };
        // A `Parallel` adapter setup runs every adapter on its own copy of the batch.
        let channels = peft_core::parallel_channels(self);
        let bias = peft_core::replicate_batch(mask_bias(attention_mask), channels);
        let mut x = peft_core::replicate_batch(x, channels);
        let prefixes = self
            .prefix
            .layer_prefixes(self.encoder.layer.len(), x.dims()[0]);
        for (layer, prefix) in self.encoder.layer.iter().zip(&prefixes) {
            x = layer.forward_with_prefix(x, bias.clone(), prefix.as_ref());
        }
        let pooler_output = self.pooler.as_ref().map(|p| p.forward(x.clone()));
        BertModelOutput {
            last_hidden_state: x,
            pooler_output,
        }
    }

    /// Description of this base model for adapter files.
    pub fn base_info(&self) -> BaseModelInfo {
        BaseModelInfo {
            architecture: self.embeddings.position_scheme.architecture().into(),
            hidden_size: self.hidden_size,
            num_layers: self.encoder.layer.len(),
            name_or_path: None,
        }
    }
}

impl AdapterHost for BertModel {
    fn num_layers(&self) -> usize {
        self.encoder.layer.len()
    }

    fn d_model(&self) -> usize {
        self.hidden_size
    }

    fn prefix_pool(&self) -> Option<&PrefixPool> {
        Some(&self.prefix)
    }

    fn prefix_pool_mut(&mut self) -> Option<&mut PrefixPool> {
        Some(&mut self.prefix)
    }

    fn num_attention_heads(&self) -> usize {
        self.num_attention_heads
    }

    fn takes_prompt(&self, _combine: peft_core::PromptCombine) -> bool {
        true
    }

    fn attention_dropout(&self) -> f64 {
        self.encoder
            .layer
            .first()
            .map_or(0.0, |l| l.attention.self_attn.dropout.prob)
    }

    fn adapter_layer(&self, layer: usize, site: AdapterSite) -> Option<&AdapterLayer> {
        let layer = self.encoder.layer.get(layer)?;
        Some(match site {
            AdapterSite::AttentionOutput => &layer.attention.output.adapters,
            AdapterSite::FeedForwardOutput => &layer.output.adapters,
        })
    }

    fn adapter_layer_mut(&mut self, layer: usize, site: AdapterSite) -> Option<&mut AdapterLayer> {
        let layer = self.encoder.layer.get_mut(layer)?;
        Some(match site {
            AdapterSite::AttentionOutput => &mut layer.attention.output.adapters,
            AdapterSite::FeedForwardOutput => &mut layer.output.adapters,
        })
    }

    fn linear_site(&self, layer: usize, target: LinearTarget) -> Option<&LinearSite> {
        let layer = self.encoder.layer.get(layer)?;
        Some(match target {
            LinearTarget::Query => &layer.attention.self_attn.query,
            LinearTarget::Key => &layer.attention.self_attn.key,
            LinearTarget::Value => &layer.attention.self_attn.value,
            LinearTarget::AttentionOutput => &layer.attention.output.dense,
            LinearTarget::FeedForwardIn => &layer.intermediate.dense,
            LinearTarget::FeedForwardOut => &layer.output.dense,
            LinearTarget::QueryKeyValue => return None,
        })
    }

    fn linear_site_mut(&mut self, layer: usize, target: LinearTarget) -> Option<&mut LinearSite> {
        let layer = self.encoder.layer.get_mut(layer)?;
        Some(match target {
            LinearTarget::Query => &mut layer.attention.self_attn.query,
            LinearTarget::Key => &mut layer.attention.self_attn.key,
            LinearTarget::Value => &mut layer.attention.self_attn.value,
            LinearTarget::AttentionOutput => &mut layer.attention.output.dense,
            LinearTarget::FeedForwardIn => &mut layer.intermediate.dense,
            LinearTarget::FeedForwardOut => &mut layer.output.dense,
            LinearTarget::QueryKeyValue => return None,
        })
    }
}
