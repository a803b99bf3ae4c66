//! Reports of attaching adapters to a model.

use crate::config::AdapterSite;
use crate::error::{PeftError, Result};

/// One adapter that was attached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttachedSite {
    /// Block index.
    pub layer: usize,
    /// Site in the block.
    pub site: AdapterSite,
    /// Bottleneck width.
    pub bottleneck: usize,
    /// Parameters of this adapter.
    pub params: usize,
}

/// What attaching adapters did: one entry per adapter, in model order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AttachReport {
    /// The adapters attached.
    pub attached: Vec<AttachedSite>,
    /// Adapters that were already attached and have been removed first.
    pub replaced: usize,
}

impl AttachReport {
    /// Total adapter parameters attached.
    pub fn params(&self) -> usize {
        self.attached.iter().map(|a| a.params).sum()
    }

    /// Error with `what` if nothing was attached; otherwise the report itself.
    pub fn require_some(self, what: &str) -> Result<Self> {
        if self.attached.is_empty() {
            Err(PeftError::NothingMatched(what.to_string()))
        } else {
            Ok(self)
        }
    }
}

impl std::fmt::Display for AttachReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} adapter(s), {} parameters",
            self.attached.len(),
            self.params()
        )?;
        for a in &self.attached {
            write!(
                f,
                "\n  layer {:>2} {:<20} bottleneck {}",
                a.layer,
                a.site.name(),
                a.bottleneck
            )?;
        }
        Ok(())
    }
}

/// A model with adapter sites: one optional adapter per block and [`AdapterSite`].
///
/// Models implement the three accessors; [`attach_adapters`] and [`remove_adapters`] do the rest
/// the same way for every architecture.
pub trait AdapterHost {
    /// Number of Transformer blocks.
    fn num_layers(&self) -> usize;
    /// Model width (the adapter's input and output size).
    fn d_model(&self) -> usize;
    /// The adapter slot of block `layer` at `site`, or `None` if the model has no such site.
    fn adapter_slot(
        &mut self,
        layer: usize,
        site: AdapterSite,
    ) -> Option<&mut Option<crate::BottleneckAdapter>>;
}

/// Attach a fresh adapter at every site `config` targets. A model holds one adapter setup at a
/// time: adapters attached earlier are removed first (counted in [`AttachReport::replaced`]).
///
/// Returns a report of what was attached; errors if `config` is invalid or matched no site
/// (e.g. every layer left out), in which case the model is left unchanged.
pub fn attach_adapters<H: AdapterHost>(
    host: &mut H,
    config: &crate::AdapterConfig,
    device: &burn::tensor::Device,
) -> Result<AttachReport> {
    config.validate()?;
    let d_model = host.d_model();
    let num_layers = host.num_layers();
    if let Some(bad) = config
        .placement
        .leave_out
        .iter()
        .find(|&&l| l >= num_layers)
    {
        return Err(PeftError::InvalidConfig(format!(
            "leave_out names layer {bad}, but the model has {num_layers} layers"
        )));
    }
    if let Some(bad) = config.layer_widths.keys().find(|&&l| l >= num_layers) {
        return Err(PeftError::InvalidConfig(format!(
            "layer_widths names layer {bad}, but the model has {num_layers} layers"
        )));
    }
    let wiring = config.placement.wiring();
    // Build everything first so that an error leaves the model untouched.
    let mut planned = Vec::new();
    for layer in 0..num_layers {
        for site in AdapterSite::ALL {
            if config.placement.targets(layer, site) && host.adapter_slot(layer, site).is_some() {
                let width = config.width_for_layer(layer, d_model)?;
                let adapter = config.bottleneck.init(d_model, width, wiring, device)?;
                planned.push((layer, site, width, adapter));
            }
        }
    }
    if planned.is_empty() {
        return Err(PeftError::NothingMatched(
            "the placement targets no site of this model".into(),
        ));
    }
    let mut report = AttachReport {
        replaced: remove_adapters(host),
        ..AttachReport::default()
    };
    for (layer, site, width, adapter) in planned {
        let params = burn::module::Module::num_params(&adapter);
        if let Some(slot) = host.adapter_slot(layer, site) {
            *slot = Some(adapter);
            report.attached.push(AttachedSite {
                layer,
                site,
                bottleneck: width,
                params,
            });
        }
    }
    Ok(report)
}

/// Remove every adapter; returns how many were removed.
pub fn remove_adapters<H: AdapterHost>(host: &mut H) -> usize {
    let mut removed = 0;
    for layer in 0..host.num_layers() {
        for site in AdapterSite::ALL {
            if let Some(slot) = host.adapter_slot(layer, site)
                && slot.take().is_some()
            {
                removed += 1;
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AdapterConfig, AdapterPlacement, BottleneckWidth};
    use crate::freeze::{Trainable, freeze_except, param_summary, randomize_matching};
    use crate::testing::Toy;
    use burn::module::{Module, ModuleVisitor, Param};
    use burn::optim::{AdamWConfig, GradientsParams};
    use burn::tensor::{Device, Distribution, Tensor, TensorData};

    #[test]
    fn attaches_where_the_placement_says_and_reports_it() {
        let device = Device::flex();
        let mut toy = Toy::new(16, 3, &device);
        let report = attach_adapters(&mut toy, &AdapterConfig::houlsby(4.0), &device)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(report.attached.len(), 6);
        // (16*4 + 4) + (4*16 + 16) per adapter.
        assert_eq!(report.params(), 6 * 148);
        let mut pf = AdapterConfig::pfeiffer(4.0);
        pf.placement.leave_out = vec![1];
        pf.layer_widths.insert(2, BottleneckWidth::BottleneckDim(2));
        let report = attach_adapters(&mut toy, &pf, &device).unwrap_or_else(|e| panic!("{e}"));
        let got: Vec<_> = report
            .attached
            .iter()
            .map(|a| (a.layer, a.site, a.bottleneck))
            .collect();
        assert_eq!(
            got,
            vec![
                (0, AdapterSite::FeedForwardOutput, 4),
                (2, AdapterSite::FeedForwardOutput, 2)
            ]
        );
        assert_eq!(report.replaced, 6, "the houlsby adapters are removed first");
        assert_eq!(remove_adapters(&mut toy), 2);
        assert_eq!(remove_adapters(&mut toy), 0);
    }

    #[test]
    fn nothing_matched_and_bad_layers_are_errors() {
        let device = Device::flex();
        let mut toy = Toy::new(16, 2, &device);
        let mut all_out = AdapterConfig::pfeiffer(4.0);
        all_out.placement = AdapterPlacement::pfeiffer().with_leave_out(vec![0, 1]);
        assert!(matches!(
            attach_adapters(&mut toy, &all_out, &device),
            Err(PeftError::NothingMatched(_))
        ));
        let mut bad = AdapterConfig::pfeiffer(4.0);
        bad.placement.leave_out = vec![5];
        assert!(matches!(
            attach_adapters(&mut toy, &bad, &device),
            Err(PeftError::InvalidConfig(_))
        ));
        let too_wide = AdapterConfig::pfeiffer(32.0);
        assert!(matches!(
            attach_adapters(&mut toy, &too_wide, &device),
            Err(PeftError::InvalidConfig(_))
        ));
    }

    fn values(module: &Toy) -> Vec<(String, TensorData)> {
        struct V(Vec<String>, Vec<(String, TensorData)>);
        impl ModuleVisitor for V {
            fn enter_module(&mut self, name: &str, _: &str) {
                self.0.push(name.into());
            }
            fn exit_module(&mut self, _: &str, _: &str) {
                self.0.pop();
            }
            fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
                self.1.push((self.0.join("."), p.val().into_data()));
            }
        }
        let mut v = V(vec![], vec![]);
        module.visit(&mut v);
        v.1
    }

    /// One AdamW step on a real loss: base bit-identical, every adapter and head tensor changed,
    /// optimizer state only for trainable tensors.
    #[test]
    fn one_adamw_step_updates_only_adapters_and_head() {
        let device = Device::flex().autodiff();
        device.seed(11);
        let mut toy = Toy::new(8, 2, &device);
        attach_adapters(&mut toy, &AdapterConfig::houlsby(2.0), &device)
            .unwrap_or_else(|e| panic!("{e}"));
        let trainable = Trainable::adapters().with_pattern(r"^head\.");
        // Non-zero adapters: with a zero up-projection the down-projection gets no gradient
        // in the first step, which would hide a wrongly frozen tensor.
        let toy =
            randomize_matching(toy, crate::ADAPTER_PATTERN, 0.3).unwrap_or_else(|e| panic!("{e}"));
        let toy = freeze_except(toy, &trainable).unwrap_or_else(|e| panic!("{e}"));
        let summary = param_summary(&toy, &trainable).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(summary.trainable_tensors, 4 * 4 + 2);
        assert_eq!(summary.trainable, 4 * (8 * 4 + 4 + 4 * 8 + 8) + 8 * 2 + 2);
        let before = values(&toy);

        let mut optim = AdamWConfig::new().with_weight_decay(0.01).init();
        let x = Tensor::<3>::random([2, 3, 8], Distribution::Normal(0.0, 1.0), &device);
        let loss = toy.head.forward(toy.forward(x)).powf_scalar(2.0).mean();
        let grads = GradientsParams::from_grads(loss.backward(), &toy);
        assert_eq!(
            grads.len(),
            summary.trainable_tensors,
            "gradients only for trainable tensors"
        );
        let toy = optim.step(1e-2, toy, grads);
        let record = optim.to_record();
        // AdamW keeps two moments per trainable tensor and nothing for frozen ones.
        assert_eq!(record.len(), 2 * summary.trainable_tensors);

        for ((path, b), (_, a)) in before.iter().zip(values(&toy)) {
            let trains = trainable.matches(path).unwrap_or(false);
            if trains {
                assert_ne!(b, &a, "{path} should have changed");
            } else {
                assert_eq!(b, &a, "{path} is frozen and must be bit-identical");
            }
        }
    }

    #[test]
    fn randomized_adapters_change_the_output() {
        let device = Device::flex();
        let mut toy = Toy::new(8, 1, &device);
        let x = Tensor::<3>::random([1, 2, 8], Distribution::Normal(0.0, 1.0), &device);
        let base = toy.forward(x.clone()).into_data();
        attach_adapters(&mut toy, &AdapterConfig::houlsby(2.0), &device)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(toy.forward(x.clone()).into_data(), base);
        let toy =
            randomize_matching(toy, crate::ADAPTER_PATTERN, 0.5).unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(toy.forward(x).into_data(), base);
    }
}
