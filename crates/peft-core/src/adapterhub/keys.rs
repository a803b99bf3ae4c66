//! AdapterHub state-dict names <-> our module paths, for adapters, fusion layers and heads.
//!
//! AdapterHub names adapter `NAME` at a site `S` of block `i` `[prefix.]S(i).adapters.NAME.X`
//! and a fusion layer `F` (the fused names joined by `,`) `[prefix.]S(i).adapter_fusion_layer.F.Y`,
//! where `X` is `adapter_down.0.{weight,bias}` (the down-projection; with `ln_before` the
//! adapter LayerNorm is `adapter_down.0` and the projection `adapter_down.1`, and the LayerNorm
//! is stored a second time as `adapter_norm_before`), `adapter_up.{weight,bias}`, `scaling`,
//! `adapter_norm_after.{weight,bias}`; `Y` is `{query,key}.{weight,bias}`, `value.weight`
//! (`dense.*` when query, key and value are all off). The model family supplies `prefix` and
//! `S` ([`HubKeys`], from its `weights.rs`); everything else is here.
//!
//! Leaves stay PyTorch's (`weight`, `bias`): burn-store's PyTorch adapters turn LayerNorm
//! `weight`/`bias` into `gamma`/`beta` and transpose `Linear` weights on the way in and out.

use crate::config::AdapterSite;
use crate::lora::LinearTarget;

/// How one model family names its adapter sites, in AdapterHub files and in our modules.
/// `{i}` in a template is the block index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HubKeys {
    /// Prefixes AdapterHub puts before every key for this family's model classes (e.g. `bert.`
    /// for `BertAdapterModel`, none for `adapters.init(BertModel)`). Reading strips any one of
    /// them (or none); writing uses the first.
    pub prefixes: &'static [&'static str],
    /// Per site: AdapterHub's module path of the site's adapter layer and ours, e.g. for
    /// GPT-2's attention site `("h.{i}.attention_adapters", "h.{i}.attn")`.
    pub sites: &'static [(AdapterSite, &'static str, &'static str)],
    /// Our module path of the site's named adapters inside the site's module path (the
    /// `AdapterLayer` field), e.g. `adapters`.
    pub our_adapters: &'static str,
    /// Our container of fusion layers inside the site module, e.g. `fusions`.
    pub our_fusions: &'static str,
    /// The module path of the model these keys are used on, inside the module that is
    /// loaded or saved: empty for the bare model, `bert.` for a classifier wrapping it.
    pub our_prefix: &'static str,
    /// AdapterHub's module path of each projection its LoRA / IA³ wraps (`LoRALinear`,
    /// `LoRAMergedLinear`), e.g. BERT's `(Query, "encoder.layer.{i}.attention.self.query")`;
    /// GPT-2's fused `h.{i}.attn.c_attn` is [`LinearTarget::QueryKeyValue`].
    pub linear: &'static [(LinearTarget, &'static str)],
    /// AdapterHub's module path of a block's self-attention, whose `prefix_tuning.pool` holds a
    /// copy of every prefix-tuning tensor, e.g. `encoder.layer.{i}.attention.self`.
    pub self_attention: &'static str,
}

/// Where a file key lands in our model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Landing {
    /// At this module path.
    Path(String),
    /// A second copy of a tensor that lands at this path (AdapterHub stores an `ln_before`
    /// LayerNorm twice); the loader checks it equals the first.
    Copy(String),
}

/// AdapterHub renamed these module names in adapter-transformers 3; its loader still reads
/// them (`loading.py` `legacy_weights_mapping`).
const LEGACY: [(&str, &str); 4] = [
    ("attention_text_task_adapters", "adapters"),
    ("attention_text_lang_adapters", "adapters"),
    ("layer_text_task_adapters", "adapters"),
    ("layer_text_lang_adapters", "adapters"),
];

/// Parse `key` against `template` (one `{i}`): the layer index and the rest after the site.
pub(crate) fn match_site<'k>(key: &'k str, template: &str) -> Option<(usize, &'k str)> {
    let (before, after) = template.split_once("{i}")?;
    let rest = key.strip_prefix(before)?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || (digits > 1 && rest.starts_with('0')) {
        return None;
    }
    let layer = rest[..digits].parse().ok()?;
    let rest = rest[digits..].strip_prefix(after)?.strip_prefix('.')?;
    Some((layer, rest))
}

pub(crate) fn fill(template: &str, layer: usize) -> String {
    template.replacen("{i}", &layer.to_string(), 1)
}

impl HubKeys {
    /// The same keys for a module that holds this model at `our_prefix` (e.g. `bert.`).
    pub const fn under(self, our_prefix: &'static str) -> Self {
        Self { our_prefix, ..self }
    }

    pub(crate) fn strip_prefix<'k>(&self, key: &'k str) -> &'k str {
        self.prefixes
            .iter()
            .find_map(|p| key.strip_prefix(p))
            .unwrap_or(key)
    }

    fn site_of<'k>(&self, key: &'k str) -> Option<(AdapterSite, usize, &'k str, &'static str)> {
        self.sites.iter().find_map(|(site, hub, ours)| {
            match_site(key, hub).map(|(layer, rest)| (*site, layer, rest, *ours))
        })
    }

    /// Where AdapterHub key `key` of adapter `name` lands, loading it as `load_as`; `None` if
    /// it is not a tensor of that adapter we can place (another adapter's, a gate, a PHM
    /// weight, an invertible adapter, …: the loader reports it).
    pub fn adapter_landing(
        &self,
        key: &str,
        name: &str,
        load_as: &str,
        ln_before: bool,
    ) -> Option<Landing> {
        let mut key = self.strip_prefix(key).to_string();
        for (old, new) in LEGACY {
            key = key.replace(old, new);
        }
        let (_, layer, rest, ours) = self.site_of(&key)?;
        let inner = rest
            .strip_prefix("adapters.")?
            .strip_prefix(name)?
            .strip_prefix('.')?;
        let base = format!(
            "{}{}.{}.{load_as}",
            self.our_prefix,
            fill(ours, layer),
            self.our_adapters
        );
        let leaf = |module: &str, leaf: &str| match leaf {
            "weight" | "bias" => Some(format!("{base}.{module}.{leaf}")),
            _ => None,
        };
        if inner == "scaling" {
            return Some(Landing::Path(format!("{base}.scaling")));
        }
        let (module, last) = inner.rsplit_once('.')?;
        let path = match (module, ln_before) {
            ("adapter_down.0", false) | ("adapter_down.1", true) => leaf("adapter_down", last),
            ("adapter_down.0", true) => {
                return leaf("adapter_norm_before", last).map(Landing::Copy);
            }
            ("adapter_up", _) | ("adapter_norm_before", true) | ("adapter_norm_after", _) => {
                leaf(module, last)
            }
            _ => None,
        }?;
        Some(Landing::Path(path))
    }

    /// The AdapterHub keys of our module path `path` (an adapter tensor of adapter `name`
    /// at a site), saved as `save_as`; empty if `path` is not one. Two keys for an `ln_before`
    /// LayerNorm tensor.
    pub fn adapter_keys(
        &self,
        path: &str,
        name: &str,
        save_as: &str,
        ln_before: bool,
    ) -> Vec<String> {
        let prefix = self.prefixes.first().copied().unwrap_or("");
        let Some(path) = path.strip_prefix(self.our_prefix) else {
            return Vec::new();
        };
        for (_, hub, ours) in self.sites {
            let Some((layer, rest)) = match_site(path, ours) else {
                continue;
            };
            let Some(inner) = rest
                .strip_prefix(self.our_adapters)
                .and_then(|r| r.strip_prefix('.'))
                .and_then(|r| r.strip_prefix(name))
                .and_then(|r| r.strip_prefix('.'))
            else {
                continue;
            };
            let base = format!("{prefix}{}.adapters.{save_as}", fill(hub, layer));
            if inner == "scaling" {
                return vec![format!("{base}.scaling")];
            }
            let Some((module, last)) = inner.rsplit_once('.') else {
                return Vec::new();
            };
            return match module {
                "adapter_down" if ln_before => vec![format!("{base}.adapter_down.1.{last}")],
                "adapter_down" => vec![format!("{base}.adapter_down.0.{last}")],
                "adapter_norm_before" => vec![
                    format!("{base}.adapter_norm_before.{last}"),
                    format!("{base}.adapter_down.0.{last}"),
                ],
                "adapter_up" | "adapter_norm_after" => vec![format!("{base}.{module}.{last}")],
                _ => Vec::new(),
            };
        }
        Vec::new()
    }

    /// Where AdapterHub key `key` of fusion layer `fusion` (e.g. `a,d`) lands, as our fusion
    /// `ours` (the fused names joined by `,`); `None` if it is not one of that fusion's tensors.
    pub fn fusion_landing(&self, key: &str, fusion: &str, ours_name: &str) -> Option<String> {
        let key = self.strip_prefix(key);
        let (_, layer, rest, ours) = self.site_of(key)?;
        let inner = rest
            .strip_prefix("adapter_fusion_layer.")?
            .strip_prefix(fusion)?
            .strip_prefix('.')?;
        match inner {
            "query.weight" | "query.bias" | "key.weight" | "key.bias" | "value.weight"
            | "dense.weight" | "dense.bias" => Some(format!(
                "{}{}.{}.{ours_name}.{inner}",
                self.our_prefix,
                fill(ours, layer),
                self.our_fusions
            )),
            _ => None,
        }
    }

    /// The AdapterHub key of our fusion tensor `path`, or `None` if it is not one of `fusion`'s.
    pub fn fusion_key(&self, path: &str, fusion: &str) -> Option<String> {
        let prefix = self.prefixes.first().copied().unwrap_or("");
        let path = path.strip_prefix(self.our_prefix)?;
        self.sites.iter().find_map(|(_, hub, ours)| {
            let (layer, rest) = match_site(path, ours)?;
            let inner = rest
                .strip_prefix(self.our_fusions)?
                .strip_prefix('.')?
                .strip_prefix(fusion)?
                .strip_prefix('.')?;
            Some(format!(
                "{prefix}{}.adapter_fusion_layer.{fusion}.{inner}",
                fill(hub, layer)
            ))
        })
    }
}

/// The `(sequential index, leaf)` of head key `heads.NAME.<index>.<leaf>`; `None` otherwise.
pub fn head_key<'k>(key: &'k str, name: &str) -> Option<(usize, &'k str)> {
    let rest = key
        .strip_prefix("heads.")?
        .strip_prefix(name)?
        .strip_prefix('.')?;
    let (idx, leaf) = rest.split_once('.')?;
    Some((idx.parse().ok()?, leaf))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GPT2: HubKeys = HubKeys {
        prefixes: &["transformer."],
        sites: &[
            (
                AdapterSite::AttentionOutput,
                "h.{i}.attention_adapters",
                "h.{i}.attn",
            ),
            (
                AdapterSite::FeedForwardOutput,
                "h.{i}.output_adapters",
                "h.{i}.mlp",
            ),
        ],
        our_adapters: "adapters",
        our_fusions: "fusions",
        our_prefix: "",
        linear: &[],
        self_attention: "h.{i}.attn",
    };

    // Key names as written by adapters 1.3.0 (fixtures/tiny-gpt2/hub/golden.json `files.keys`).
    #[test]
    fn gpt2_adapter_keys_both_ways() {
        let key = "transformer.h.1.attention_adapters.adapters.b.adapter_down.0.weight";
        let ours = "h.1.attn.adapters.b.adapter_down.weight";
        assert_eq!(
            GPT2.adapter_landing(key, "b", "b", false),
            Some(Landing::Path(ours.into()))
        );
        assert_eq!(
            GPT2.adapter_keys(ours, "b", "b", false),
            vec![key.to_string()]
        );
        // another adapter's tensor, or a gate, lands nowhere
        assert_eq!(GPT2.adapter_landing(key, "bb", "bb", false), None);
        let gate = "transformer.h.1.output_adapters.adapters.b.gate.weight";
        assert_eq!(GPT2.adapter_landing(gate, "b", "b", false), None);
        // renamed on load
        assert_eq!(
            GPT2.adapter_landing(key, "b", "task", false),
            Some(Landing::Path(
                "h.1.attn.adapters.task.adapter_down.weight".into()
            ))
        );
        // a key without the prefix (adapters.init(GPT2Model)) reads the same
        assert!(
            GPT2.adapter_landing(&key["transformer.".len()..], "b", "b", false)
                .is_some()
        );
        // leading zeros are not a layer index
        assert_eq!(
            GPT2.adapter_landing(
                "h.01.attention_adapters.adapters.b.adapter_up.bias",
                "b",
                "b",
                false
            ),
            None
        );
    }

    #[test]
    fn keys_under_a_wrapper() {
        let inner = GPT2.under("lm.");
        let key = "transformer.h.0.output_adapters.adapters.a.adapter_up.weight";
        assert_eq!(
            inner.adapter_landing(key, "a", "a", false),
            Some(Landing::Path(
                "lm.h.0.mlp.adapters.a.adapter_up.weight".into()
            ))
        );
        assert_eq!(
            inner.adapter_keys("lm.h.0.mlp.adapters.a.adapter_up.weight", "a", "a", false),
            vec![key.to_string()]
        );
        assert!(
            inner
                .adapter_keys("h.0.mlp.adapters.a.adapter_up.weight", "a", "a", false)
                .is_empty()
        );
    }

    #[test]
    fn ln_before_is_stored_twice() {
        let down1 = "h.0.output_adapters.adapters.x.adapter_down.1.bias";
        let down0 = "h.0.output_adapters.adapters.x.adapter_down.0.bias";
        assert_eq!(
            GPT2.adapter_landing(down1, "x", "x", true),
            Some(Landing::Path("h.0.mlp.adapters.x.adapter_down.bias".into()))
        );
        assert_eq!(
            GPT2.adapter_landing(down0, "x", "x", true),
            Some(Landing::Copy(
                "h.0.mlp.adapters.x.adapter_norm_before.bias".into()
            ))
        );
        assert_eq!(
            GPT2.adapter_keys(
                "h.0.mlp.adapters.x.adapter_norm_before.bias",
                "x",
                "x",
                true
            ),
            vec![
                "transformer.h.0.output_adapters.adapters.x.adapter_norm_before.bias".to_string(),
                format!("transformer.{down0}"),
            ]
        );
    }

    #[test]
    fn fusion_keys_both_ways() {
        let key = "transformer.h.0.output_adapters.adapter_fusion_layer.a,d.value.weight";
        let ours = "h.0.mlp.fusions.a,d.value.weight";
        assert_eq!(GPT2.fusion_landing(key, "a,d", "a,d"), Some(ours.into()));
        assert_eq!(GPT2.fusion_key(ours, "a,d"), Some(key.into()));
        assert_eq!(GPT2.fusion_landing(key, "a", "a"), None);
        assert_eq!(head_key("heads.a.4.weight", "a"), Some((4, "weight")));
        assert_eq!(head_key("heads.ab.4.weight", "a"), None);
    }
}
