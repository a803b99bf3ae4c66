//! The AdapterFusion verbs over any [`AdapterHost`]: [`add_fusion`], [`delete_fusion`],
//! [`fusions`], and AdapterHub's [`fusion_regularization`].

use burn::tensor::Tensor;

use crate::attach::{AdapterHost, adapters, for_each_site, names_of, sites};
use crate::error::{PeftError, Result};
use crate::fusion::FusionConfig;

/// The fusion layers of `host`: each as the list of adapters it fuses.
pub fn fusions<H: AdapterHost + ?Sized>(host: &H) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = Vec::new();
    for (_, _, s) in sites(host) {
        for (_, meta, _) in s.fusions().iter() {
            if !out.contains(&meta.adapters) {
                out.push(meta.adapters.clone());
            }
        }
    }
    out
}

/// AdapterHub's fusion regularisation (`get_fusion_regularization_loss`, `adapters` 1.3.0):
/// `0.01 · Σ (I − V)²` summed over every fusion layer whose value projection `V` trains
/// (requires grad) and whose [`FusionConfig::regularization`] is on; `None` when no fusion
/// layer qualifies. `[1]`.
///
/// The training tasks of `peft-train` add it to the loss they differentiate (not to the loss
/// they report). AdapterHub applies the same gradient one optimizer step late (its
/// `AdapterTrainerCallback.on_step_end` back-propagates it after the step, so it joins the next
/// step's gradients, computed at the same weights); its first step therefore has none, ours
/// has it from the first step. AdapterHub also ignores the config flag and regularises every
/// trainable value projection; we honour the flag (`dynamic` has it on, `static` has no value
/// projection).
pub fn fusion_regularization<H: AdapterHost + ?Sized>(host: &H) -> Option<Tensor<1>> {
    let mut total: Option<Tensor<1>> = None;
    for (_, _, s) in sites(host) {
        for (_, meta, fusion) in s.fusions().iter() {
            let trains = fusion
                .value
                .as_ref()
                .is_some_and(|v| v.weight.val().is_require_grad());
            if !meta.config.regularization || !trains {
                continue;
            }
            if let Some(r) = fusion.regularization() {
                total = Some(match total {
                    Some(t) => t + r,
                    None => r,
                });
            }
        }
    }
    total
}

/// Add an AdapterFusion layer over the named adapters (in that order) at every site where all
/// of them sit (AdapterHub's rule). Its name is the names joined by `,`.
pub fn add_fusion<H: AdapterHost + ?Sized, S: AsRef<str>>(
    host: &mut H,
    names: &[S],
    config: &FusionConfig,
    device: &burn::tensor::Device,
) -> Result<usize> {
    let names: Vec<String> = names.iter().map(|n| n.as_ref().to_string()).collect();
    if names.len() < 2 {
        return Err(PeftError::InvalidSetup(
            "a fusion needs at least two adapters".into(),
        ));
    }
    config.validate()?;
    let known = adapters(host);
    for n in &names {
        if !known.iter().any(|a| &a.name == n) {
            return Err(PeftError::NotFound {
                kind: "adapter",
                name: n.clone(),
                available: names_of(host),
            });
        }
    }
    if fusions(host).contains(&names) {
        return Err(PeftError::AlreadyExists {
            kind: "fusion",
            name: names.join(","),
        });
    }
    let d_model = host.d_model();
    let dropout = host.attention_dropout();
    let mut planned = Vec::new();
    for (layer, site, s) in sites(host) {
        if names.iter().all(|n| s.adapter(n).is_some()) {
            planned.push((layer, site, config.init(d_model, dropout, device)?));
        }
    }
    if planned.is_empty() {
        return Err(PeftError::NothingMatched(format!(
            "no site holds all of {}",
            names.join(", ")
        )));
    }
    let count = planned.len();
    for (layer, site, fusion) in planned {
        if let Some(s) = host.adapter_layer_mut(layer, site) {
            s.insert_fusion(&names, config.clone(), fusion);
        }
    }
    Ok(count)
}

/// Delete the fusion layer over `names`; returns the number of sites it was removed from.
pub fn delete_fusion<H: AdapterHost + ?Sized, S: AsRef<str>>(
    host: &mut H,
    names: &[S],
) -> Result<usize> {
    let name: Vec<&str> = names.iter().map(AsRef::as_ref).collect();
    let name = name.join(",");
    let mut removed = 0;
    for_each_site(host, |_, _, s| {
        if s.remove_fusion(&name) {
            removed += 1;
        }
    });
    if removed == 0 {
        return Err(PeftError::NotFound {
            kind: "fusion",
            name,
            available: fusions(host)
                .iter()
                .map(|f| f.join(","))
                .collect::<Vec<_>>()
                .join("; "),
        });
    }
    Ok(removed)
}
