//! The verbs of the methods on linear projections (LoRA, IA³): adding them to the
//! [`LinearSite`]s of a host, their composition rule, and merging into the frozen weights.
//! [`crate::attach`] dispatches to them; the shared verbs (`add_adapter`, `set_active`, …) stay
//! there.

use crate::attach::{
    AdapterHost, AdapterInfo, AttachReport, AttachedSite, SitePlace, adapters, check_layers,
    names_of,
};
use crate::error::{PeftError, Result};
use crate::ia3::Ia3Config;
use crate::linear_site::LinearSite;
use crate::lora::{LinearTarget, LoraConfig};
use crate::method::MethodKind;
use crate::setup::Setup;

/// Every linear site of `host`, with its block index and target.
pub fn linear_sites<H: AdapterHost + ?Sized>(host: &H) -> Vec<(usize, LinearTarget, &LinearSite)> {
    let mut out = Vec::new();
    for layer in 0..host.num_layers() {
        for target in LinearTarget::ALL {
            if let Some(s) = host.linear_site(layer, target) {
                out.push((layer, target, s));
            }
        }
    }
    out
}

pub(crate) fn for_each_linear<H: AdapterHost + ?Sized>(
    host: &mut H,
    mut f: impl FnMut(usize, LinearTarget, &mut LinearSite),
) {
    for layer in 0..host.num_layers() {
        for target in LinearTarget::ALL {
            if let Some(s) = host.linear_site_mut(layer, target) {
                f(layer, target, s);
            }
        }
    }
}

pub(crate) fn add_lora<H: AdapterHost + ?Sized>(
    host: &mut H,
    name: &str,
    config: &LoraConfig,
    device: &burn::tensor::Device,
) -> Result<AttachReport> {
    config.validate()?;
    check_layers("leave_out", &config.leave_out, host.num_layers())?;
    attach_linear(
        host,
        "LoRA",
        &config.targets,
        |layer, target, s| {
            config
                .targets(layer, target)
                .then(|| config.init(s.d_in(), s.d_out(), device))
        },
        |slot, module| slot.insert_lora(name, config.clone(), module),
        |_| config.rank,
    )
}

pub(crate) fn add_ia3<H: AdapterHost + ?Sized>(
    host: &mut H,
    name: &str,
    config: &Ia3Config,
    device: &burn::tensor::Device,
) -> Result<AttachReport> {
    config.validate()?;
    check_layers("leave_out", &config.leave_out, host.num_layers())?;
    attach_linear(
        host,
        "IA³",
        &config.targets,
        |layer, target, s| {
            config
                .targets(layer, target)
                .then(|| config.init(target, s.d_in(), s.d_out(), device))
        },
        |slot, module| slot.insert_ia3(name, config.clone(), module),
        |params| params,
    )
}

/// What [`add_lora`] and [`add_ia3`] share: build a module for every projection `init` targets
/// (the host untouched if one fails or none matched), then `insert` each and report it, with
/// `width(params)` as the reported width.
fn attach_linear<H: AdapterHost + ?Sized, M: burn::module::Module>(
    host: &mut H,
    method: &str,
    targets: &[LinearTarget],
    init: impl Fn(usize, LinearTarget, &LinearSite) -> Option<Result<M>>,
    mut insert: impl FnMut(&mut LinearSite, M),
    width: impl Fn(usize) -> usize,
) -> Result<AttachReport> {
    let mut planned = Vec::new();
    for (layer, target, s) in linear_sites(host) {
        if let Some(module) = init(layer, target, s) {
            planned.push((layer, target, module?));
        }
    }
    if planned.is_empty() {
        let names: Vec<&str> = targets.iter().map(|t| t.name()).collect();
        return Err(PeftError::NothingMatched(format!(
            "{method} targets ({}) match no projection of this model",
            names.join(", ")
        )));
    }
    let mut report = AttachReport::default();
    for (layer, target, module) in planned {
        let params = burn::module::Module::num_params(&module);
        if let Some(slot) = host.linear_site_mut(layer, target) {
            insert(slot, module);
            report.attached.push(AttachedSite {
                layer,
                site: SitePlace::Linear(target),
                bottleneck: width(params),
                params,
            });
        }
    }
    Ok(report)
}

/// Methods on linear projections compose as `Single` or as a `Stack` of names (the sum of
/// their updates); any other block naming one of them is an error.
pub(crate) fn check_linear_setup(setup: &Setup, known: &[AdapterInfo]) -> Result<()> {
    let linear = |n: &str| {
        known
            .iter()
            .find(|a| a.name == n && a.config.kind().single_or_stack())
            .map(|a| a.config.kind())
    };
    let bad = |n: String, kind: MethodKind, block: &str| {
        Err(PeftError::InvalidSetup(format!(
            "adapter `{n}` is a {} module, which composes only as a single name or a Stack of names, not inside {block}",
            kind.name()
        )))
    };
    match setup {
        Setup::Single(_) => Ok(()),
        Setup::Stack(children) => {
            for c in children {
                if let Setup::Single(_) = c {
                    continue;
                }
                for n in c.names() {
                    if let Some(kind) = linear(&n) {
                        return bad(n, kind, "a nested block");
                    }
                }
                check_linear_setup(c, known)?;
            }
            Ok(())
        }
        other => {
            for n in other.names() {
                if let Some(kind) = linear(&n) {
                    return bad(n, kind, "this block");
                }
            }
            Ok(())
        }
    }
}

/// Merge adapter `name` into the frozen weights at every site it sits (LoRA: `W += scale·A B`).
/// A merged adapter is part of the weights: it applies whatever the active setup says, and the
/// forward pass runs the plain layer for it, until [`unmerge_adapter`]. Returns the number of
/// sites merged.
///
/// Errors (the model unchanged): no such adapter, a method that cannot be merged (bottleneck
/// adapters), an adapter already merged.
pub fn merge_adapter<H: AdapterHost + ?Sized>(host: &mut H, name: &str) -> Result<usize> {
    let info = require_adapter(host, name)?;
    if !info.config.kind().mergeable() {
        return Err(PeftError::InvalidSetup(format!(
            "adapter `{name}` is a {} adapter, which cannot be merged into the base",
            info.config.kind().name()
        )));
    }
    if info.merged {
        return Err(PeftError::InvalidSetup(format!(
            "adapter `{name}` is already merged"
        )));
    }
    let mut merged = 0;
    let mut result = Ok(());
    for_each_linear(host, |_, _, s| {
        if s.holds(name) && result.is_ok() {
            result = s.merge(name);
            merged += 1;
        }
    });
    result.map(|_| merged)
}

/// Take adapter `name` out of the frozen weights again (the weights are restored bit for bit
/// when no other adapter is merged). Returns the number of sites unmerged.
pub fn unmerge_adapter<H: AdapterHost + ?Sized>(host: &mut H, name: &str) -> Result<usize> {
    let info = require_adapter(host, name)?;
    if !info.merged {
        return Err(PeftError::InvalidSetup(format!(
            "adapter `{name}` is not merged"
        )));
    }
    let mut unmerged = 0;
    for_each_linear(host, |_, _, s| {
        if s.unmerge(name) {
            unmerged += 1;
        }
    });
    Ok(unmerged)
}

pub(crate) fn require_adapter<H: AdapterHost + ?Sized>(
    host: &H,
    name: &str,
) -> Result<AdapterInfo> {
    adapters(host)
        .into_iter()
        .find(|a| a.name == name)
        .ok_or_else(|| PeftError::NotFound {
            kind: "adapter",
            name: name.to_string(),
            available: names_of(host),
        })
}
