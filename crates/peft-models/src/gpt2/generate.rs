//! Autoregressive generation: a KV cache, greedy and sampled decoding.
//!
//! Adapters need nothing special here: they are part of the forward pass. Run generation on a
//! model in evaluation mode (`model.valid()`, or a model on a non-autodiff device), or dropout
//! makes every step random.
//!
//! Sampling draws on the host with [`SplitMix64`] seeded from [`GenerationConfig::seed`], so a
//! given seed repeats exactly (for the same logits), independently of the backend's RNG.

use burn::config::Config;
use burn::tensor::{Int, Tensor, TensorData};

use super::attention::LayerKv;
use super::model::Gpt2Model;
use crate::error::{ModelError, Result};

/// How [`Gpt2Model::generate`] decodes.
#[derive(Config, Debug, PartialEq)]
pub struct GenerationConfig {
    /// Largest number of tokens to generate after the prompt. Default: 20.
    #[config(default = 20)]
    pub max_new_tokens: usize,
    /// Sample from the distribution (true) or take the most likely token, ties to the lowest id
    /// (false, greedy). Default: false.
    #[config(default = false)]
    pub do_sample: bool,
    /// Divide the logits by this before sampling (must be positive). Default: 1.0.
    #[config(default = 1.0)]
    pub temperature: f64,
    /// When sampling, keep only the `k` most likely tokens (ties at the k-th value kept).
    /// Default: None (all tokens).
    pub top_k: Option<usize>,
    /// When sampling, keep the smallest set of most likely tokens whose probability reaches `p`
    /// (nucleus sampling, `0 < p <= 1`). Default: None (all tokens).
    pub top_p: Option<f64>,
    /// Seed of the sampler. Default: 0.
    #[config(default = 0)]
    pub seed: u64,
    /// Stop after generating this token (it is included in the output). Default: None (only
    /// `max_new_tokens` or the position table stop generation).
    pub eos_token_id: Option<u32>,
    /// Reuse keys and values of earlier positions (true) or recompute the whole sequence at
    /// every step (false); both give the same tokens. Default: true.
    #[config(default = true)]
    pub use_cache: bool,
}

impl GenerationConfig {
    /// Check the sampling parameters.
    pub fn validate(&self) -> Result<()> {
        let invalid = |m: String| Err(ModelError::InvalidConfig(m));
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return invalid(format!(
                "temperature must be positive, got {}",
                self.temperature
            ));
        }
        if self.top_k == Some(0) {
            return invalid("top_k must be at least 1".into());
        }
        if let Some(p) = self.top_p
            && !(p > 0.0 && p <= 1.0)
        {
            return invalid(format!("top_p must be in (0, 1], got {p}"));
        }
        Ok(())
    }
}

/// SplitMix64 (Steele, Lea & Flood 2014): a tiny, fast, seedable PRNG for the host-side
/// categorical draw. Not cryptographic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform number in `[0, 1)` with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// Keys and values of every block for the positions seen so far (one [`LayerKv`] per block,
/// each `[batch, n_head, len, head_dim]`), grown by [`Gpt2Model::forward_with_cache`].
///
/// With prompt tuning the first [`KvCache::prompt_len`] positions are the soft prompt, put in
/// by the first step; [`KvCache::tokens`] counts the rest.
#[derive(Clone, Debug, Default)]
pub struct KvCache {
    layers: Vec<LayerKv>,
    prompt: usize,
}

impl KvCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of cached positions (a soft prompt included).
    pub fn len(&self) -> usize {
        self.layers.first().map_or(0, LayerKv::len)
    }

    /// Number of cached soft-prompt positions (0 without prompt tuning).
    pub fn prompt_len(&self) -> usize {
        self.prompt
    }

    /// Number of cached token positions: [`KvCache::len`] less the prompt.
    pub fn tokens(&self) -> usize {
        self.len().saturating_sub(self.prompt)
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The per-block entries (empty before the first step).
    pub fn layers(&self) -> &[LayerKv] {
        &self.layers
    }

    /// Forget everything.
    pub fn clear(&mut self) {
        self.layers.clear();
        self.prompt = 0;
    }
}

impl Gpt2Model {
    /// Incremental forward: logits `[batch, seq, vocab_size]` for `input_ids` `[batch, seq]` at
    /// positions `cache.len()..cache.len() + seq`, attending to the cached positions too; the
    /// cache then holds all of them.
    ///
    /// With an active prompt-tuning adapter of `p` tokens, the first step (empty cache) puts
    /// the prompt in front and returns `[batch, p + seq, vocab_size]`; the cache then holds the
    /// prompt, and later steps reuse it (PEFT's `generate`: the prompt goes in once, positions
    /// count it).
    ///
    /// `attention_mask`, if given, is `[batch, cache.tokens() + seq]`: it covers the cached
    /// tokens as well, not the prompt (always attended). Requires `cache.len() + seq <=
    /// n_positions` and a cache built by this model with the same batch size and prompt (see
    /// [`Gpt2Model::try_forward_with_cache`]).
    pub fn forward_with_cache(
        &self,
        input_ids: Tensor<2, Int>,
        attention_mask: Option<Tensor<2, Int>>,
        cache: &mut KvCache,
    ) -> Tensor<3> {
        let past = std::mem::take(&mut cache.layers);
        let (hidden, present, prompt) =
            self.forward_blocks(input_ids, attention_mask, past, cache.prompt);
        cache.layers = present;
        cache.prompt = prompt;
        self.logits(hidden)
    }

    /// [`Gpt2Model::forward_with_cache`] with the inputs and the cache checked first.
    pub fn try_forward_with_cache(
        &self,
        input_ids: Tensor<2, Int>,
        attention_mask: Option<Tensor<2, Int>>,
        cache: &mut KvCache,
    ) -> Result<Tensor<3>> {
        if !cache.layers.is_empty() {
            if cache.layers.len() != self.h.len() {
                return Err(ModelError::InvalidInput(format!(
                    "the KV cache has {} layers, the model {}",
                    cache.layers.len(),
                    self.h.len()
                )));
            }
            let cached_batch = cache.layers[0].key.dims()[0];
            if cached_batch != input_ids.dims()[0] {
                return Err(ModelError::InvalidInput(format!(
                    "the KV cache holds a batch of {cached_batch}, the input {}",
                    input_ids.dims()[0]
                )));
            }
            if cache.prompt != self.prompt_len() {
                return Err(ModelError::InvalidInput(format!(
                    "the KV cache holds a prompt of {} positions, the active prompt has {}",
                    cache.prompt,
                    self.prompt_len()
                )));
            }
        }
        self.check_input(&input_ids, attention_mask.as_ref(), cache.tokens())?;
        Ok(self.forward_with_cache(input_ids, attention_mask, cache))
    }

    /// Generate a continuation of each prompt (token ids), one prompt at a time (no padding).
    ///
    /// Returns, per prompt, the prompt followed by the generated tokens. Generation stops after
    /// `max_new_tokens`, after `eos_token_id` (included), or when the sequence fills the
    /// position table (`n_positions`, an active prompt-tuning prompt included). Errors on an
    /// empty list, an empty prompt, a prompt longer than that, a token id outside the
    /// vocabulary or invalid sampling parameters.
    ///
    /// With prompt tuning the soft prompt goes in once, at the first step (it is not part of
    /// the returned tokens); later steps reuse the cache, as PEFT's `generate` does.
    pub fn generate(
        &self,
        prompts: &[Vec<u32>],
        config: &GenerationConfig,
    ) -> Result<Vec<Vec<u32>>> {
        config.validate()?;
        if prompts.is_empty() {
            return Err(ModelError::InvalidInput("no prompt to continue".into()));
        }
        for (i, prompt) in prompts.iter().enumerate() {
            if prompt.is_empty() {
                return Err(ModelError::InvalidInput(format!("prompt {i} is empty")));
            }
            let max_len = self.input_limits().max_len;
            if prompt.len() > max_len {
                return Err(ModelError::InvalidInput(format!(
                    "prompt {i} has {} tokens, more than the {max_len} the model takes \
                     (n_positions {}, soft prompt {})",
                    prompt.len(),
                    self.n_positions,
                    self.prompt_len()
                )));
            }
            if let Some(bad) = prompt.iter().find(|&&t| t as usize >= self.vocab_size) {
                return Err(ModelError::InvalidInput(format!(
                    "prompt {i}: token id {bad} is outside the vocabulary ({})",
                    self.vocab_size
                )));
            }
        }
        let mut rng = SplitMix64::new(config.seed);
        prompts
            .iter()
            .map(|p| self.generate_one(p, config, &mut rng))
            .collect()
    }

    fn ids_tensor(&self, ids: &[u32]) -> Tensor<2, Int> {
        let data: Vec<i64> = ids.iter().map(|&t| i64::from(t)).collect();
        Tensor::from_data(TensorData::new(data, [1, ids.len()]), &self.device())
    }

    fn generate_one(
        &self,
        prompt: &[u32],
        config: &GenerationConfig,
        rng: &mut SplitMix64,
    ) -> Result<Vec<u32>> {
        let mut tokens = prompt.to_vec();
        let mut cache = KvCache::new();
        let mut fresh = prompt.to_vec();
        let max_len = self.input_limits().max_len;
        for _ in 0..config.max_new_tokens {
            if tokens.len() >= max_len {
                break;
            }
            let logits = if config.use_cache {
                self.forward_with_cache(self.ids_tensor(&fresh), None, &mut cache)
            } else {
                self.forward(self.ids_tensor(&tokens), None)
            };
            let last = last_row(logits);
            let next = if config.do_sample {
                sample(&last, config, rng)
            } else {
                argmax(&last)
            };
            tokens.push(next);
            fresh = vec![next];
            if config.eos_token_id == Some(next) {
                break;
            }
        }
        Ok(tokens)
    }
}

/// The logits of the last position of the only row, on the host.
fn last_row(logits: Tensor<3>) -> Vec<f32> {
    let [_, s, v] = logits.dims();
    logits
        .narrow(1, s.saturating_sub(1), 1)
        .reshape([v])
        .into_data()
        .iter::<f32>()
        .collect()
}

/// Index of the largest value, the lowest index among ties (as `torch.argmax`).
fn argmax(values: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in values.iter().enumerate() {
        if x > values[best] {
            best = i;
        }
    }
    best as u32
}

/// Temperature, then top-k, then top-p (transformers' order), then a categorical draw.
fn sample(logits: &[f32], config: &GenerationConfig, rng: &mut SplitMix64) -> u32 {
    let scaled: Vec<f64> = logits
        .iter()
        .map(|&l| f64::from(l) / config.temperature)
        .collect();
    let mut order: Vec<usize> = (0..scaled.len()).collect();
    order.sort_by(|&a, &b| scaled[b].total_cmp(&scaled[a]).then(a.cmp(&b)));
    let mut keep = vec![true; scaled.len()];
    if let Some(k) = config.top_k
        && k < order.len()
    {
        let kth = scaled[order[k - 1]];
        for (i, &x) in scaled.iter().enumerate() {
            keep[i] = x >= kth;
        }
    }
    let max = order.first().map_or(0.0, |&i| scaled[i]);
    let weights: Vec<f64> = scaled
        .iter()
        .zip(&keep)
        .map(|(&x, &k)| if k { (x - max).exp() } else { 0.0 })
        .collect();
    if let Some(p) = config.top_p {
        let total: f64 = weights.iter().sum();
        let mut before = 0.0;
        for &i in &order {
            // Keep a token while the mass of the more likely ones is still below p.
            if before / total >= p {
                keep[i] = false;
            }
            before += weights[i];
        }
    }
    let weights: Vec<f64> = weights
        .iter()
        .zip(&keep)
        .map(|(&w, &k)| if k { w } else { 0.0 })
        .collect();
    let total: f64 = weights.iter().sum();
    let mut u = rng.next_f64() * total;
    let mut last_kept = order.first().copied().unwrap_or(0);
    for (i, &w) in weights.iter().enumerate() {
        if w > 0.0 {
            last_kept = i;
            if u < w {
                return i as u32;
            }
            u -= w;
        }
    }
    last_kept as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_matches_the_reference_sequence() {
        // Reference values of SplitMix64 seeded with 0.
        let mut rng = SplitMix64::new(0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        let u = SplitMix64::new(42).next_f64();
        assert!((0.0..1.0).contains(&u));
    }

    #[test]
    fn greedy_takes_the_first_maximum() {
        assert_eq!(argmax(&[0.1, 3.0, -1.0, 3.0]), 1);
    }

    #[test]
    fn top_k_one_and_tiny_top_p_are_greedy() {
        let logits = [0.5f32, 2.0, 1.9, -3.0];
        let mut rng = SplitMix64::new(1);
        let k1 = GenerationConfig::new()
            .with_do_sample(true)
            .with_top_k(Some(1));
        let p = GenerationConfig::new()
            .with_do_sample(true)
            .with_top_p(Some(1e-6));
        for _ in 0..20 {
            assert_eq!(sample(&logits, &k1, &mut rng), 1);
            assert_eq!(sample(&logits, &p, &mut rng), 1);
        }
    }

    #[test]
    fn top_k_and_top_p_restrict_the_support() {
        let logits = [0.0f32, 1.0, 2.0, 3.0];
        let mut rng = SplitMix64::new(9);
        let k2 = GenerationConfig::new()
            .with_do_sample(true)
            .with_top_k(Some(2))
            .with_temperature(10.0);
        let mut seen = [0usize; 4];
        for _ in 0..400 {
            seen[sample(&logits, &k2, &mut rng) as usize] += 1;
        }
        assert_eq!((seen[0], seen[1]), (0, 0), "{seen:?}");
        assert!(seen[2] > 100 && seen[3] > 100, "{seen:?}");
        // probs ~ [0.032, 0.087, 0.237, 0.644]: p = 0.7 keeps tokens 3 and 2.
        let p = GenerationConfig::new()
            .with_do_sample(true)
            .with_top_p(Some(0.7));
        let mut seen = [0usize; 4];
        for _ in 0..400 {
            seen[sample(&logits, &p, &mut rng) as usize] += 1;
        }
        assert_eq!((seen[0], seen[1]), (0, 0), "{seen:?}");
        assert!(seen[2] > 50 && seen[3] > 200, "{seen:?}");
    }

    #[test]
    fn sampling_parameters_are_validated() {
        let bad = [
            GenerationConfig::new().with_temperature(0.0),
            GenerationConfig::new().with_top_k(Some(0)),
            GenerationConfig::new().with_top_p(Some(1.5)),
            GenerationConfig::new().with_top_p(Some(0.0)),
        ];
        for c in bad {
            assert!(
                matches!(c.validate(), Err(ModelError::InvalidConfig(_))),
                "{c:?}"
            );
        }
        assert!(GenerationConfig::new().validate().is_ok());
    }
}
