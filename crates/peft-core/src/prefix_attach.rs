//! The prefix- and prompt-tuning verbs over any [`AdapterHost`]: what [`crate::add_adapter`]
//! does for those kinds, and [`eject_prefix`].

use crate::attach::{AdapterHost, AttachReport, AttachedSite, SitePlace, check_layers};
use crate::error::{PeftError, Result};
use crate::linear_attach::require_adapter;
use crate::method::MethodKind;
use crate::prefix::PrefixTuningConfig;
use crate::prompt::PromptTuningConfig;

pub(crate) fn add_prefix<H: AdapterHost + ?Sized>(
    host: &mut H,
    name: &str,
    config: &PrefixTuningConfig,
    device: &burn::tensor::Device,
) -> Result<AttachReport> {
    config.validate()?;
    let num_layers = host.num_layers();
    check_layers("leave_out", &config.leave_out, num_layers)?;
    let heads = host.num_attention_heads();
    let d_model = host.d_model();
    if host.prefix_pool().is_none() || heads == 0 || !d_model.is_multiple_of(heads) {
        return Err(PeftError::NothingMatched(
            "this model takes no prefix-tuning prefixes".into(),
        ));
    }
    let module = config.init(config.layers(num_layers), heads, d_model / heads, device)?;
    // One module serves every layer: its parameters are reported on the first.
    let total = burn::module::Module::num_params(&module);
    let mut report = AttachReport::default();
    for (i, &layer) in module.layers.iter().enumerate() {
        report.attached.push(AttachedSite {
            layer,
            site: SitePlace::AttentionPrefix,
            bottleneck: config.prefix_length,
            params: if i == 0 { total } else { 0 },
        });
    }
    if let Some(pool) = host.prefix_pool_mut() {
        pool.insert(name, config.clone(), module);
    }
    Ok(report)
}

pub(crate) fn add_prompt<H: AdapterHost + ?Sized>(
    host: &mut H,
    name: &str,
    config: &PromptTuningConfig,
    device: &burn::tensor::Device,
) -> Result<AttachReport> {
    config.validate()?;
    if host.prefix_pool().is_none() || !host.takes_prompt(config.combine) {
        return Err(PeftError::NothingMatched(format!(
            "this model takes no prompt-tuning prompt with combine `{}`",
            config.combine.name()
        )));
    }
    let module = config.init(host.d_model(), device)?;
    let report = AttachReport {
        attached: vec![AttachedSite {
            layer: 0,
            site: SitePlace::Embeddings,
            bottleneck: config.prompt_length,
            params: burn::module::Module::num_params(&module),
        }],
        replaced: 0,
    };
    if let Some(pool) = host.prefix_pool_mut() {
        pool.insert_prompt(name, config.clone(), module);
    }
    Ok(report)
}

/// Collapse prefix-tuning adapter `name`'s re-parameterisation MLP into plain prefixes
/// (AdapterHub's `eject_prefix_tuning`): outputs are unchanged, the MLP parameters are gone and
/// the adapter's config reads `flat: true`. Do this before saving for inference.
///
/// Errors: no such adapter, or not a prefix-tuning adapter.
pub fn eject_prefix<H: AdapterHost + ?Sized>(host: &mut H, name: &str) -> Result<()> {
    let info = require_adapter(host, name)?;
    if info.config.kind() != MethodKind::PrefixTuning {
        return Err(PeftError::InvalidSetup(format!(
            "adapter `{name}` is a {} adapter, not prefix tuning",
            info.config.kind().name()
        )));
    }
    if let Some(pool) = host.prefix_pool_mut() {
        pool.eject(name);
    }
    Ok(())
}
