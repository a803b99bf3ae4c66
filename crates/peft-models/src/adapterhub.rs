//! Reading adapter weights saved by AdapterHub (`adapters` 1.x) for BERT and GPT-2.
//!
//! AdapterHub names a bottleneck adapter `...adapters.<name>.adapter_down.0.weight` and
//! `...adapter_up.weight` (PyTorch `[out, in]` layout), plus `scaling` when learned. Attach
//! adapters with the matching [`peft_core::AdapterConfig`] first, then load.

use std::path::Path;

use burn::module::Module;
use peft_core::Trainable;

use crate::checkpoint::{LoadReport, load_hf_subset};
use crate::error::Result;

/// AdapterHub key -> module path rewrites shared by all families: the file's adapter (whatever
/// its name) becomes the model's adapter [`peft_core::DEFAULT_ADAPTER`].
const ADAPTERHUB_REMAP: [(&str, &str); 5] = [
    (r"^(bert|transformer)\.", ""),
    (
        r"\.adapters\.[^.]+\.adapter_down\.0\.",
        ".adapters.default.adapter_down.",
    ),
    (
        r"\.adapters\.[^.]+\.(adapter_up|adapter_norm_before|adapter_norm_after|scaling)",
        ".adapters.default.$1",
    ),
    // GPT-2 sites live on the block: attention_adapters / output_adapters.
    (
        r"^h\.(\d+)\.attention_adapters\.adapters\.",
        "h.$1.attn.adapters.",
    ),
    (
        r"^h\.(\d+)\.output_adapters\.adapters\.",
        "h.$1.mlp.adapters.",
    ),
];

/// Load AdapterHub adapter weights (safetensors) into the adapter [`peft_core::DEFAULT_ADAPTER`]
/// of `module` (attach it with [`peft_core::attach_adapters`] and the matching config first).
///
/// Every attached adapter tensor must be in the file, every file tensor must land in the model;
/// the base model is not touched.
pub fn load_adapterhub_weights<M: Module>(
    module: &mut M,
    path: impl AsRef<Path>,
) -> Result<LoadReport> {
    load_hf_subset(module, path, &ADAPTERHUB_REMAP, &Trainable::adapters())
}
