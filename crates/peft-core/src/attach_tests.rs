//! Tests of the attach verbs on the toy model.

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
            (0, SitePlace::Residual(AdapterSite::FeedForwardOutput), 4),
            (2, SitePlace::Residual(AdapterSite::FeedForwardOutput), 2)
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
