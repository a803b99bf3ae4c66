//! Invariants of named adapters and composition on the toy model, with non-zero adapter
//! weights and scales other than 1. (AdapterHub golden values live in peft-models' tests.)

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Distribution, Tensor, Tolerance};

use crate::adapter_drop::{AdapterDrop, set_adapter_drop};
use crate::attach::{
    active_setup, adapters, add_adapter, add_fusion, delete_adapter, fusion_regularization,
    fusions, set_active,
};
use crate::config::{AdapterConfig, Scaling};
use crate::error::PeftError;
use crate::freeze::{Trainable, freeze_except, randomize_matching};
use crate::fusion::FusionConfig;
use crate::setup::Setup;
use crate::testing::Toy;

const D: usize = 8;

fn close(a: Tensor<3>, b: Tensor<3>) {
    a.into_data()
        .assert_approx_eq::<f32>(&b.into_data(), Tolerance::absolute(2e-5));
}

fn pfeiffer_scaled() -> AdapterConfig {
    let mut c = AdapterConfig::pfeiffer(2.0);
    c.bottleneck.scaling = Scaling::Fixed(1.7);
    c
}

/// A toy with adapters `a` (houlsby), `b` (pfeiffer, scale 1.7), `c` (parallel), all non-zero.
fn toy(device: &Device) -> Toy {
    device.seed(21);
    let mut toy = Toy::new(D, 3, device);
    add_adapter(&mut toy, "a", &AdapterConfig::houlsby(2.0), device)
        .unwrap_or_else(|e| panic!("{e}"));
    add_adapter(&mut toy, "b", &pfeiffer_scaled(), device).unwrap_or_else(|e| panic!("{e}"));
    add_adapter(&mut toy, "c", &AdapterConfig::parallel(), device)
        .unwrap_or_else(|e| panic!("{e}"));
    randomize_matching(toy, r"adapters\.", 0.4).unwrap_or_else(|e| panic!("{e}"))
}

fn input(batch: usize, device: &Device) -> Tensor<3> {
    device.seed(5);
    Tensor::random([batch, 4, D], Distribution::Normal(0.0, 1.0), device)
}

fn run(toy: &mut Toy, setup: Option<Setup>, x: Tensor<3>) -> Tensor<3> {
    set_active(toy, setup).unwrap_or_else(|e| panic!("{e}"));
    toy.forward(x)
}

/// The model with only adapter `name` (the others deleted): an independent reference for a
/// single adapter.
fn alone(toy: &Toy, name: &str, x: Tensor<3>) -> Tensor<3> {
    let mut only = toy.clone();
    for other in ["a", "b", "c"] {
        if other != name {
            delete_adapter(&mut only, other).unwrap_or_else(|e| panic!("{e}"));
        }
    }
    run(&mut only, Some(Setup::single(name)), x)
}

#[test]
fn adapters_are_listed_named_and_independent() {
    let device = Device::flex();
    let mut toy = toy(&device);
    let list = adapters(&toy);
    let names: Vec<_> = list.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"]);
    // houlsby: both sites of 3 blocks, 8 -> 4 -> 8; pfeiffer/parallel: the FFN site only.
    assert_eq!(list[0].sites.len(), 6);
    assert_eq!(list[0].params, 6 * (8 * 4 + 4 + 4 * 8 + 8));
    assert_eq!(list[1].sites.len(), 3);
    assert_eq!(list[1].config, pfeiffer_scaled().into());
    assert!(matches!(
        add_adapter(&mut toy, "a", &AdapterConfig::pfeiffer(2.0), &device),
        Err(PeftError::AlreadyExists { .. })
    ));
    assert!(matches!(
        add_adapter(&mut toy, "x.y", &AdapterConfig::pfeiffer(2.0), &device),
        Err(PeftError::InvalidName(_))
    ));
    // No setup active: the base model, whatever is attached.
    let x = input(2, &device);
    let mut base = Toy::new(D, 3, &device);
    base.blocks = toy.blocks.clone();
    let plain = crate::attach::remove_adapters(&mut base);
    assert_eq!(plain, 12);
    close(run(&mut toy, None, x.clone()), base.forward(x.clone()));
    // Deleting one adapter leaves the others' outputs as they were.
    let b_before = run(&mut toy, Some(Setup::single("b")), x.clone());
    delete_adapter(&mut toy, "a").unwrap_or_else(|e| panic!("{e}"));
    assert!(active_setup(&toy).is_some(), "b stays active");
    close(run(&mut toy, Some(Setup::single("b")), x.clone()), b_before);
    assert!(matches!(
        delete_adapter(&mut toy, "a"),
        Err(PeftError::NotFound { .. })
    ));
    assert!(matches!(
        set_active(&mut toy, Some(Setup::single("a"))),
        Err(PeftError::NotFound { .. })
    ));
}

#[test]
fn single_is_one_adapter_alone_and_differs_from_base() {
    let device = Device::flex();
    let mut toy = toy(&device);
    let x = input(2, &device);
    let base = run(&mut toy, None, x.clone());
    for name in ["a", "b", "c"] {
        let got = run(&mut toy, Some(Setup::single(name)), x.clone());
        close(got.clone(), alone(&toy, name, x.clone()));
        assert!(
            (got - base.clone()).abs().max().into_scalar::<f32>() > 1e-3,
            "{name} must change the output"
        );
    }
}

/// Channel `i` of a `Parallel` equals child `i` alone when the children share a wiring
/// (AdapterHub runs the first child's `pre_forward` and the last's `post_forward` for all).
#[test]
fn parallel_gives_each_channel_its_adapter() {
    let device = Device::flex();
    let mut toy = toy(&device);
    delete_adapter(&mut toy, "a").unwrap_or_else(|e| panic!("{e}"));
    delete_adapter(&mut toy, "c").unwrap_or_else(|e| panic!("{e}"));
    add_adapter(&mut toy, "b2", &pfeiffer_scaled(), &device).unwrap_or_else(|e| panic!("{e}"));
    let mut toy = randomize_matching(toy, r"adapters\.b2\.", 0.4).unwrap_or_else(|e| panic!("{e}"));
    let x = input(3, &device);
    let out = run(&mut toy, Some(Setup::parallel(["b", "b2"])), x.clone());
    assert_eq!(out.dims(), [6, 4, D]);
    for (i, name) in ["b", "b2"].into_iter().enumerate() {
        let expected = run(&mut toy.clone(), Some(Setup::single(name)), x.clone());
        close(out.clone().slice(i * 3..(i + 1) * 3), expected);
    }
    assert!(
        (out.clone().slice(0..3) - out.slice(3..6))
            .abs()
            .max()
            .into_scalar::<f32>()
            > 1e-3,
        "the channels must differ"
    );
}

#[test]
fn batch_split_and_route_equal_each_example_alone() {
    let device = Device::flex();
    let mut toy = toy(&device);
    let x = input(5, &device);
    // a and b differ in wiring; BatchSplit uses a's pre_forward for all rows (AdapterHub), a
    // route runs each example exactly as alone.
    let routes = vec![
        Some(Setup::single("b")),
        None,
        Some(Setup::single("a")),
        Some(Setup::stack(["a", "b"])),
        Some(Setup::single("b")),
    ];
    let out = run(&mut toy, Some(Setup::Route(routes.clone())), x.clone());
    for (row, route) in routes.into_iter().enumerate() {
        let xi = x.clone().slice(row..row + 1);
        let expected = run(&mut toy.clone(), route, xi);
        close(out.clone().slice(row..row + 1), expected);
    }
    // BatchSplit of two pfeiffer-wired adapters is a route of the same rows.
    add_adapter(&mut toy, "b2", &pfeiffer_scaled(), &device).unwrap_or_else(|e| panic!("{e}"));
    let toy2 = randomize_matching(toy, r"adapters\.b2\.", 0.4).unwrap_or_else(|e| panic!("{e}"));
    let mut toy = toy2;
    let split = run(
        &mut toy,
        Some(Setup::batch_split(["b", "b2"], vec![2, 3])),
        x.clone(),
    );
    let route = Setup::Route(
        [["b"; 2].as_slice(), ["b2"; 3].as_slice()]
            .concat()
            .into_iter()
            .map(|n| Some(Setup::single(n)))
            .collect(),
    );
    close(split, run(&mut toy, Some(route), x.clone()));
    // A wrong split size is refused before any tensor op by the model's batch check.
    set_active(&mut toy, Some(Setup::batch_split(["b", "b2"], vec![2, 2])))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(crate::attach::check_active_batch(&toy, 5).is_err());
}

#[test]
fn stack_feeds_one_adapter_into_the_next() {
    let device = Device::flex();
    let mut toy = toy(&device);
    delete_adapter(&mut toy, "c").unwrap_or_else(|e| panic!("{e}"));
    let x = input(2, &device);
    // At a FFN site with a (houlsby wiring) then b (pfeiffer wiring), AdapterHub's Stack is
    // pre(a), f_a, pre(b), f_b, post(b). Recompute it by hand from the modules.
    let got = run(&mut toy, Some(Setup::stack(["a", "b"])), x.clone());
    let mut h = x;
    for block in &toy.blocks {
        for (sub, both) in [(&block.attention, false), (&block.output, true)] {
            let hidden = sub.dense.forward(h.clone());
            let ln = Some(&sub.layer_norm);
            let a = sub.adapters.adapter("a").unwrap_or_else(|| panic!("a"));
            let (xa, _, ra) = a.pre_forward(hidden.clone(), h.clone(), ln, false);
            let (mut out, _) = a.forward_adapter(xa, ra);
            let mut last = a;
            if both {
                let b = sub.adapters.adapter("b").unwrap_or_else(|| panic!("b"));
                let (xb, _, rb) = b.pre_forward(out, h.clone(), ln, false);
                out = b.forward_adapter(xb, rb).0;
                last = b;
            }
            h = last.post_forward(out, hidden, h.clone(), ln);
        }
    }
    close(got, h);
}

#[test]
fn average_is_adapterhubs_weighted_mean() {
    let device = Device::flex();
    let mut toy = Toy::new(D, 1, &device);
    device.seed(3);
    for n in ["p", "q"] {
        add_adapter(&mut toy, n, &pfeiffer_scaled(), &device).unwrap_or_else(|e| panic!("{e}"));
    }
    let toy = randomize_matching(toy, r"adapters\.", 0.4).unwrap_or_else(|e| panic!("{e}"));
    let x = input(2, &device);
    let block = &toy.blocks[0];
    let h1 = block
        .attention
        .layer_norm
        .forward(block.attention.dense.forward(x.clone()) + x.clone());
    let hidden = block.output.dense.forward(h1.clone());
    let ln = Some(&block.output.layer_norm);
    let p = block
        .output
        .adapters
        .adapter("p")
        .unwrap_or_else(|| panic!("p"));
    let q = block
        .output
        .adapters
        .adapter("q")
        .unwrap_or_else(|| panic!("q"));
    let (xp, _, rp) = p.pre_forward(hidden.clone(), h1.clone(), ln, false);
    // Weights 1 and 3, normalised to 0.25 / 0.75, then AdapterHub's mean over 2 children.
    let mean = (p.forward_adapter(xp.clone(), rp.clone()).0 * 0.25
        + q.forward_adapter(xp, rp).0 * 0.75)
        / 2.0;
    let expected = q.post_forward(mean, hidden, h1, ln);
    let mut toy = toy;
    let got = run(
        &mut toy,
        Some(Setup::average(["p", "q"], vec![1.0, 3.0])),
        x,
    );
    close(got, expected);
}

#[test]
fn fuse_is_attention_over_the_adapters_outputs() {
    let device = Device::flex();
    let mut toy = Toy::new(D, 1, &device);
    device.seed(4);
    for n in ["p", "q"] {
        add_adapter(&mut toy, n, &pfeiffer_scaled(), &device).unwrap_or_else(|e| panic!("{e}"));
    }
    assert!(matches!(
        set_active(&mut toy, Some(Setup::fuse(["p", "q"]))),
        Err(PeftError::NotFound { kind: "fusion", .. })
    ));
    let added = add_fusion(&mut toy, &["p", "q"], &FusionConfig::dynamic(), &device)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(added, 1, "pfeiffer adapters share the FFN site only");
    assert_eq!(fusions(&toy), vec![vec!["p".to_string(), "q".to_string()]]);
    let toy = randomize_matching(toy, r"adapters\.", 0.4).unwrap_or_else(|e| panic!("{e}"));
    let x = input(2, &device);
    let block = &toy.blocks[0];
    let h1 = block
        .attention
        .layer_norm
        .forward(block.attention.dense.forward(x.clone()) + x.clone());
    let hidden = block.output.dense.forward(h1.clone());
    let p = block
        .output
        .adapters
        .adapter("p")
        .unwrap_or_else(|| panic!("p"));
    let q = block
        .output
        .adapters
        .adapter("q")
        .unwrap_or_else(|| panic!("q"));
    let f = block
        .output
        .adapters
        .fusion("p,q")
        .unwrap_or_else(|| panic!("fusion"));
    // Independent formula: with z = LN(h + x) (pfeiffer's pre_forward), u_i = s·up_i(act(down_i(z))),
    // attention of Q(z) over K(u_i), values V(u_i), plus pfeiffer's adapter residual (the
    // sub-layer output h, taken before the LayerNorm); then LN(out + x).
    let z = block.output.layer_norm.forward(hidden.clone() + h1.clone());
    let (uq, up) = (q.scaled_up(z.clone()), p.scaled_up(z.clone()));
    let lin = |l: &Option<burn::nn::Linear>, t: Tensor<3>| match l {
        Some(l) => l.forward(t),
        None => t,
    };
    let query = lin(&f.query, z.clone());
    let score = |u: &Tensor<3>| (query.clone() * lin(&f.key, u.clone())).sum_dim(2);
    let (sp, sq) = (score(&up), score(&uq));
    let m = sp.clone().max_pair(sq.clone());
    let (ep, eq) = ((sp - m.clone()).exp(), (sq - m).exp());
    let sum = ep.clone() + eq.clone();
    let context = lin(&f.value, up) * (ep / sum.clone()) + lin(&f.value, uq) * (eq / sum);
    let expected = block.output.layer_norm.forward(context + hidden + h1);
    let mut toy = toy;
    let got = run(&mut toy, Some(Setup::fuse(["p", "q"])), x);
    close(got, expected);
}

#[test]
fn adapter_drop_skips_the_named_layers() {
    let device = Device::flex();
    let mut toy = toy(&device);
    let x = input(2, &device);
    // Dropping every layer is the base model; dropping layer 0 equals a model whose layer-0
    // adapters are gone.
    let base = run(&mut toy, None, x.clone());
    set_adapter_drop(&mut toy, &AdapterDrop::first_layers(3)).unwrap_or_else(|e| panic!("{e}"));
    close(run(&mut toy, Some(Setup::single("a")), x.clone()), base);
    set_adapter_drop(&mut toy, &AdapterDrop::first_layers(1)).unwrap_or_else(|e| panic!("{e}"));
    let got = run(&mut toy, Some(Setup::single("a")), x.clone());
    let mut cut = toy.clone();
    set_adapter_drop(&mut cut, &AdapterDrop::default()).unwrap_or_else(|e| panic!("{e}"));
    cut.blocks[0].attention.adapters.remove("a");
    cut.blocks[0].output.adapters.remove("a");
    close(
        got.clone(),
        run(&mut cut, Some(Setup::single("a")), x.clone()),
    );
    assert!(
        (got - run(&mut cut.clone(), Some(Setup::single("a")), x.clone()))
            .abs()
            .max()
            .into_scalar::<f32>()
            < 1e-6
    );
    assert!(set_adapter_drop(&mut toy, &AdapterDrop::first_layers(4)).is_err());
}

/// Training-time AdapterDrop decides per block: in every pass a block's adapters run at both of
/// its sites or at neither, so each output equals the model with some set of whole blocks
/// skipped. (Independent draws per site would give outputs matching none of them.)
#[test]
fn adapter_drop_in_training_drops_whole_blocks() {
    let device = Device::flex().autodiff();
    let mut toy = toy(&device);
    let x = input(2, &device);
    set_active(&mut toy, Some(Setup::single("a"))).unwrap_or_else(|e| panic!("{e}"));
    let references: Vec<(Vec<usize>, Tensor<3>)> = (0..8usize)
        .map(|mask| {
            let skipped: Vec<usize> = (0..3).filter(|b| mask & (1 << b) != 0).collect();
            let drop = AdapterDrop {
                skip_layers: skipped.clone(),
                ..AdapterDrop::default()
            };
            set_adapter_drop(&mut toy, &drop).unwrap_or_else(|e| panic!("{e}"));
            (skipped, toy.forward(x.clone()))
        })
        .collect();
    // The eight references differ (non-zero adapters at every site).
    for (i, (_, a)) in references.iter().enumerate() {
        for (_, b) in &references[i + 1..] {
            let diff: f32 = (a.clone() - b.clone()).abs().max().into_scalar();
            assert!(diff > 1e-4, "references must be distinguishable");
        }
    }
    set_adapter_drop(&mut toy, &AdapterDrop::default().with_train_drop_prob(0.5))
        .unwrap_or_else(|e| panic!("{e}"));
    device.seed(3);
    let mut seen = std::collections::BTreeSet::new();
    for pass in 0..40 {
        let out = toy.forward(x.clone());
        let hit = references.iter().find(|(_, r)| {
            let diff: f32 = (out.clone() - r.clone()).abs().max().into_scalar();
            diff < 1e-5
        });
        match hit {
            Some((skipped, _)) => {
                seen.insert(skipped.clone());
            }
            None => panic!("pass {pass}: a block's sites were dropped separately"),
        }
    }
    assert!(seen.len() >= 4, "random drops happen: {seen:?}");
    // At inference (no autodiff) nothing is dropped at random.
    let inference = toy.valid();
    let out = inference.forward(x.clone().inner());
    let diff: f32 = (out - references[0].1.clone().inner())
        .abs()
        .max()
        .into_scalar();
    assert!(diff < 1e-5);
}

/// Robust AdapterDrop: every training pass skips a prefix of blocks (the first `n`, `n` in
/// `0..=2`), never another set; at inference nothing is skipped.
#[test]
fn robust_adapter_drop_skips_a_prefix_of_blocks() {
    let device = Device::flex().autodiff();
    let mut toy = toy(&device);
    let x = input(2, &device);
    set_active(&mut toy, Some(Setup::single("a"))).unwrap_or_else(|e| panic!("{e}"));
    let reference = |toy: &mut Toy, n: usize| {
        set_adapter_drop(toy, &AdapterDrop::first_layers(n)).unwrap_or_else(|e| panic!("{e}"));
        toy.forward(x.clone())
    };
    let prefixes: Vec<Tensor<3>> = (0..=3).map(|n| reference(&mut toy, n)).collect();
    assert!(set_adapter_drop(&mut toy, &AdapterDrop::robust(4)).is_err());
    set_adapter_drop(&mut toy, &AdapterDrop::robust(2)).unwrap_or_else(|e| panic!("{e}"));
    device.seed(8);
    let mut seen = std::collections::BTreeSet::new();
    for pass in 0..30 {
        let out = toy.forward(x.clone());
        let n = prefixes.iter().position(|r| {
            let diff: f32 = (out.clone() - r.clone()).abs().max().into_scalar();
            diff < 1e-5
        });
        match n {
            Some(n) => assert!(n <= 2, "pass {pass}: skipped {n} blocks, max is 2"),
            None => panic!("pass {pass}: the skipped blocks are not a prefix"),
        }
        seen.insert(n);
    }
    assert_eq!(seen.len(), 3, "n takes each of 0, 1, 2: {seen:?}");
}

/// AdapterHub's fusion regularisation: `0.01 · Σ (I − V)²` over the trainable value
/// projections, nothing when the fusion is frozen.
#[test]
fn fusion_regularization_sums_trainable_value_projections() {
    let device = Device::flex().autodiff();
    let mut toy = toy(&device);
    assert!(fusion_regularization(&toy).is_none(), "no fusion, no term");
    add_fusion(&mut toy, &["a", "b"], &FusionConfig::dynamic(), &device)
        .unwrap_or_else(|e| panic!("{e}"));
    let toy =
        randomize_matching(toy, r"adapters\.a,b\.value", 0.3).unwrap_or_else(|e| panic!("{e}"));
    let fusion_only = Trainable::none().with_fusion(&["a", "b"]);
    let trained = freeze_except(toy.clone(), &fusion_only).unwrap_or_else(|e| panic!("{e}"));
    let mut expected = 0.0f64;
    for block in &trained.blocks {
        for site in [&block.attention.adapters, &block.output.adapters] {
            for (_, _, fusion) in site.fusions().iter() {
                let Some(v) = fusion.value.as_ref() else {
                    continue;
                };
                let w = v
                    .weight
                    .val()
                    .into_data()
                    .try_to_vec::<f32>()
                    .unwrap_or_default();
                for (i, x) in w.iter().enumerate() {
                    let target = if i / D == i % D { 1.0 } else { 0.0 };
                    expected += 0.01 * (target - f64::from(*x)).powi(2);
                }
            }
        }
    }
    assert!(expected > 0.01, "randomised value projections: {expected}");
    let got: f32 = fusion_regularization(&trained)
        .map(|t| t.into_scalar())
        .unwrap_or(f32::NAN);
    assert!(
        (f64::from(got) - expected).abs() < 1e-4 * expected,
        "{got} vs {expected}"
    );
    let frozen = freeze_except(toy, &Trainable::adapter("a")).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        fusion_regularization(&frozen).is_none(),
        "a frozen fusion adds nothing"
    );
}

#[test]
fn train_adapter_and_train_fusion_freeze_everything_else() {
    let device = Device::flex().autodiff();
    let mut toy = toy(&device);
    add_fusion(&mut toy, &["a", "b"], &FusionConfig::dynamic(), &device)
        .unwrap_or_else(|e| panic!("{e}"));
    struct Grad(Vec<String>, Vec<(String, bool)>);
    impl ModuleVisitor for Grad {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.0.push(name.into());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.0.pop();
        }
        fn visit_float<const K: usize>(&mut self, p: &Param<Tensor<K>>) {
            self.1.push((self.0.join("."), p.val().is_require_grad()));
        }
    }
    for (selection, prefix) in [
        (Trainable::adapter("b"), ".adapters.b."),
        (Trainable::none().with_fusion(&["a", "b"]), ".adapters.a,b."),
    ] {
        let frozen = freeze_except(toy.clone(), &selection).unwrap_or_else(|e| panic!("{e}"));
        let mut v = Grad(vec![], vec![]);
        frozen.visit(&mut v);
        let trained: Vec<_> =
            v.1.iter()
                .filter(|(_, g)| *g)
                .map(|(p, _)| p.clone())
                .collect();
        assert!(!trained.is_empty());
        for (path, grad) in &v.1 {
            assert_eq!(*grad, path.contains(prefix), "{path}");
        }
    }
}
