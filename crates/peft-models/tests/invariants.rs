//! The invariant matrix of the methods on linear projections, written once and run over
//! model (tiny BERT, tiny GPT-2) × method (LoRA, IA³), always with non-zero adapter
//! weights and a scale != 1:
//! - a fresh adapter with the method's default init leaves the outputs unchanged (bit for bit);
//! - no active setup == the base (bit for bit), an active non-zero adapter changes it;
//! - AdapterDrop's skip_layers skips these modules (all blocks skipped == the base);
//! - save -> load round trips are exact (our format and PEFT's);
//! - merged == unmerged within 1e-5, a merged model runs the plain path, unmerging restores the
//!   base weights bit for bit;
//! - only the method's parameters get gradients and optimizer state; the base is bit-identical
//!   after a few AdamW steps.

use std::path::PathBuf;

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{Device, Tensor, TensorData};
use peft_core::peft::{PeftKeys, load_peft, save_peft};
use peft_core::{
    AdapterFile, AdapterHost, AdapterMethod, BaseModelInfo, Ia3Config, Ia3Init, LinearTarget,
    LoraConfig, LoraInit, MethodConfig, Setup, Trainable, add_adapter, freeze_except, linear_sites,
    load_adapter_weights, merge_adapter, param_summary, save_adapter, set_active, unmerge_adapter,
};
use peft_models::bert::weights::BERT_PEFT_KEYS;
use peft_models::bert::{BertConfig, BertInput, BertModel};
use peft_models::golden::Golden;
use peft_models::gpt2::Gpt2Model;
use peft_models::gpt2::weights::GPT2_PEFT_KEYS;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// A model of the matrix.
trait Case: AdapterHost + Module + Sized {
    const NAME: &'static str;
    /// The fixture model on `device` (train mode: dropout off in the fixtures' eval copies
    /// matters not, the configs here have no LoRA dropout and the tests compare like with like).
    fn load(device: &Device) -> Self;
    /// The output on the golden inputs.
    fn out(&self) -> Tensor<3>;
    /// Every projection of this model LoRA can target.
    fn targets() -> Vec<LinearTarget>;
    /// The paper's IA³ placement on this model.
    fn ia3() -> Ia3Config;
    fn keys() -> &'static PeftKeys;
    fn info(&self) -> BaseModelInfo;
}

impl Case for BertModel {
    const NAME: &'static str = "tiny-bert";
    fn load(device: &Device) -> Self {
        let dir = root().join("tiny-bert");
        let config =
            BertConfig::from_hf_file(dir.join("config.json")).unwrap_or_else(|e| panic!("{e}"));
        let mut model = config.init(device).unwrap_or_else(|e| panic!("{e}"));
        model
            .load_checkpoint(dir.join("model.safetensors"))
            .unwrap_or_else(|e| panic!("{e}"));
        model.valid()
    }
    fn out(&self) -> Tensor<3> {
        let device = self.devices()[0].clone();
        let g = Golden::from_file(root().join("tiny-bert/golden.json"))
            .unwrap_or_else(|e| panic!("{e}"));
        let int = |n: &str| g.int::<2>(n, &device).unwrap_or_else(|e| panic!("{e}"));
        let input = BertInput::new(int("input_ids"))
            .with_token_type_ids(int("token_type_ids"))
            .with_attention_mask(int("attention_mask"));
        self.forward(input).last_hidden_state
    }
    fn targets() -> Vec<LinearTarget> {
        vec![
            LinearTarget::Query,
            LinearTarget::Key,
            LinearTarget::Value,
            LinearTarget::AttentionOutput,
            LinearTarget::FeedForwardIn,
            LinearTarget::FeedForwardOut,
        ]
    }
    fn ia3() -> Ia3Config {
        Ia3Config::liu2022()
    }
    fn keys() -> &'static PeftKeys {
        &BERT_PEFT_KEYS
    }
    fn info(&self) -> BaseModelInfo {
        self.base_info()
    }
}

impl Case for Gpt2Model {
    const NAME: &'static str = "tiny-gpt2";
    fn load(device: &Device) -> Self {
        let dir = root().join("tiny-gpt2");
        let (model, _) = Gpt2Model::from_pretrained_file(
            dir.join("config.json"),
            dir.join("model.safetensors"),
            device,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        model.valid()
    }
    fn out(&self) -> Tensor<3> {
        let device = self.devices()[0].clone();
        let g = Golden::from_file(root().join("tiny-gpt2/golden.json"))
            .unwrap_or_else(|e| panic!("{e}"));
        let int = |n: &str| g.int::<2>(n, &device).unwrap_or_else(|e| panic!("{e}"));
        self.forward(int("input_ids"), Some(int("attention_mask")))
    }
    fn targets() -> Vec<LinearTarget> {
        vec![
            LinearTarget::QueryKeyValue,
            LinearTarget::AttentionOutput,
            LinearTarget::FeedForwardIn,
            LinearTarget::FeedForwardOut,
        ]
    }
    fn ia3() -> Ia3Config {
        Ia3Config::liu2022_fused_qkv()
    }
    fn keys() -> &'static PeftKeys {
        &GPT2_PEFT_KEYS
    }
    fn info(&self) -> BaseModelInfo {
        self.base_info()
    }
}

/// A method of the matrix: its config with the default init and with non-zero weights.
struct Method {
    name: &'static str,
    fresh: MethodConfig,
    nonzero: MethodConfig,
    /// The method's parameter names inside `adapters.<name>.`.
    params: &'static [&'static str],
}

fn methods<M: Case>() -> Vec<Method> {
    // rank 4, alpha 12: scale 3.
    let lora = LoraConfig::new(4, 12.0).with_targets(M::targets());
    vec![
        Method {
            name: "lora",
            fresh: lora.clone().into(),
            nonzero: lora.with_init(LoraInit::Random).into(),
            params: &["lora_a", "lora_b"],
        },
        Method {
            name: "ia3",
            fresh: M::ia3().into(),
            nonzero: M::ia3().with_init(Ia3Init::Random).into(),
            params: &["ia3_l"],
        },
    ]
}

fn values<M: Module>(module: &M) -> Vec<(String, TensorData)> {
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

fn max_diff(a: Tensor<3>, b: Tensor<3>) -> f64 {
    (a - b).abs().max().into_scalar::<f64>()
}

fn ok<T>(r: peft_core::Result<T>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

fn base_weights<M: Case>(m: &M) -> Vec<TensorData> {
    linear_sites(m)
        .into_iter()
        .map(|(_, _, s)| s.weight.val().into_data())
        .collect()
}

fn forward_invariants<M: Case>(method: &Method) {
    let what = format!("{} × {}", M::NAME, method.name);
    let device = Device::flex();
    let mut model = M::load(&device);
    let base = model.out();
    let base_w = base_weights(&model);

    // A fresh adapter with the default init changes nothing, bit for bit.
    ok(add_adapter(&mut model, "fresh", &method.fresh, &device));
    ok(set_active(&mut model, Some(Setup::single("fresh"))));
    assert_eq!(
        model.out().into_data(),
        base.clone().into_data(),
        "{what}: fresh"
    );

    // Non-zero weights: inactive == base, active changes it, a Stack sums the two.
    device.seed(3);
    ok(add_adapter(&mut model, "a", &method.nonzero, &device));
    ok(set_active(&mut model, None));
    assert_eq!(
        model.out().into_data(),
        base.clone().into_data(),
        "{what}: inactive"
    );
    ok(set_active(&mut model, Some(Setup::single("a"))));
    let active = model.out();
    assert!(
        max_diff(active.clone(), base.clone()) > 1e-3,
        "{what}: active"
    );
    ok(set_active(
        &mut model,
        Some(Setup::stack(["fresh", "a"].map(String::from))),
    ));
    let stacked = model.out();
    assert!(
        max_diff(stacked, active.clone()) <= 1e-6,
        "{what}: + a zero update"
    );

    // AdapterDrop's skip_layers covers these methods too (as AdapterHub's does): skipping every
    // block is the base, bit for bit; skipping block 0 only is neither.
    ok(set_active(&mut model, Some(Setup::single("a"))));
    let n = model.num_layers();
    ok(peft_core::set_adapter_drop(
        &mut model,
        &peft_core::AdapterDrop::first_layers(n),
    ));
    assert_eq!(
        model.out().into_data(),
        base.clone().into_data(),
        "{what}: every block skipped"
    );
    ok(peft_core::set_adapter_drop(
        &mut model,
        &peft_core::AdapterDrop::first_layers(1),
    ));
    let first_skipped = model.out();
    assert!(
        max_diff(first_skipped.clone(), base.clone()) > 1e-4
            && max_diff(first_skipped, active.clone()) > 1e-4,
        "{what}: block 0 skipped"
    );
    ok(peft_core::set_adapter_drop(
        &mut model,
        &peft_core::AdapterDrop::default(),
    ));
    assert!(
        max_diff(model.out(), active.clone()) <= 1e-6,
        "{what}: drop reset"
    );

    // Our own format, then PEFT's: exact round trips onto a fresh model.
    ok(set_active(&mut model, Some(Setup::single("a"))));
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let own = tmp.path().join("own");
    let adapter_method = AdapterMethod::of(&method.nonzero);
    let file = AdapterFile::new(adapter_method, model.info(), &Trainable::adapter("a"));
    ok(save_adapter(&model, &own, &file));
    let mut other = M::load(&device);
    device.seed(99);
    ok(add_adapter(&mut other, "a", &method.nonzero, &device));
    ok(set_active(&mut other, Some(Setup::single("a"))));
    assert!(
        max_diff(other.out(), active.clone()) > 1e-3,
        "{what}: other seed"
    );
    ok(load_adapter_weights(&mut other, &own, &file));
    assert_eq!(
        other.out().into_data(),
        active.clone().into_data(),
        "{what}: own file"
    );
    {
        let dir = tmp.path().join("peft");
        ok(save_peft(&model, "a", &dir, M::keys(), None, None));
        let mut other = M::load(&device);
        ok(load_peft(&mut other, &dir, "a", M::keys(), &device));
        ok(set_active(&mut other, Some(Setup::single("a"))));
        assert_eq!(
            other.out().into_data(),
            active.clone().into_data(),
            "{what}: PEFT file"
        );
    }

    // Merging: equal outputs, the plain path (activating changes nothing more), exact unmerge.
    ok(merge_adapter(&mut model, "a"));
    let merged = model.out();
    let d = max_diff(merged.clone(), active.clone());
    assert!(d <= 1e-5, "{what}: merged vs unmerged {d}");
    ok(set_active(&mut model, None));
    assert_eq!(
        model.out().into_data(),
        merged.into_data(),
        "{what}: a merged adapter is in the weights, not added again"
    );
    assert!(
        merge_adapter(&mut model, "a").is_err(),
        "{what}: merged twice"
    );
    ok(unmerge_adapter(&mut model, "a"));
    assert_eq!(
        base_weights(&model),
        base_w,
        "{what}: unmerge restores the base"
    );
    assert_eq!(
        model.out().into_data(),
        base.into_data(),
        "{what}: unmerged"
    );
}

fn training_invariants<M: Case>(method: &Method) {
    let what = format!("{} × {}", M::NAME, method.name);
    let device = Device::flex().autodiff();
    device.seed(5);
    let mut model = M::load(&device);
    ok(add_adapter(&mut model, "t", &method.nonzero, &device));
    ok(set_active(&mut model, Some(Setup::single("t"))));
    let trainable = Trainable::adapter("t");
    let mut model = ok(freeze_except(model, &trainable)).train();
    let summary = ok(param_summary(&model, &trainable));
    let sites = linear_sites(&model)
        .iter()
        .filter(|(_, _, s)| s.holds("t"))
        .count();
    assert_eq!(
        summary.trainable_tensors,
        method.params.len() * sites,
        "{what}"
    );
    let before = values(&model);
    let mut optim = AdamWConfig::new().with_weight_decay(0.01).init();
    for step in 0..3 {
        let loss = model.out().powf_scalar(2.0).mean();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        assert_eq!(
            grads.len(),
            summary.trainable_tensors,
            "{what}: step {step}"
        );
        model = optim.step(1e-2, model, grads);
    }
    assert_eq!(
        optim.to_record().len(),
        2 * summary.trainable_tensors,
        "{what}: optimizer state only for the method's tensors"
    );
    let mut changed = 0;
    for ((path, b), (_, a)) in before.iter().zip(values(&model)) {
        let own = method
            .params
            .iter()
            .any(|p| path.contains(".adapters.t.") && path.ends_with(p));
        if own {
            assert_ne!(b, &a, "{what}: {path} should train");
            changed += 1;
        } else {
            assert_eq!(b, &a, "{what}: {path} is frozen and must be bit-identical");
        }
    }
    assert_eq!(changed, summary.trainable_tensors, "{what}");
}

#[test]
fn bert_forward_invariants() {
    for m in methods::<BertModel>() {
        forward_invariants::<BertModel>(&m);
    }
}

#[test]
fn gpt2_forward_invariants() {
    for m in methods::<Gpt2Model>() {
        forward_invariants::<Gpt2Model>(&m);
    }
}

#[test]
fn bert_training_invariants() {
    for m in methods::<BertModel>() {
        training_invariants::<BertModel>(&m);
    }
}

#[test]
fn gpt2_training_invariants() {
    for m in methods::<Gpt2Model>() {
        training_invariants::<Gpt2Model>(&m);
    }
}

#[test]
fn lora_composes_only_as_single_or_stack() {
    let device = Device::flex();
    let mut model = <BertModel as Case>::load(&device);
    for name in ["a", "b"] {
        ok(add_adapter(
            &mut model,
            name,
            &LoraConfig::new(2, 4.0).with_init(LoraInit::Random),
            &device,
        ));
    }
    let err = set_active(
        &mut model,
        Some(Setup::parallel(["a", "b"].map(String::from))),
    );
    assert!(
        matches!(err, Err(peft_core::PeftError::InvalidSetup(_))),
        "{err:?}"
    );
    // A Stack applies both: it differs from each alone.
    let one = |m: &mut BertModel, s: Setup| {
        ok(set_active(m, Some(s)));
        m.out()
    };
    let a = one(&mut model, Setup::single("a"));
    let b = one(&mut model, Setup::single("b"));
    let ab = one(&mut model, Setup::stack(["a", "b"].map(String::from)));
    assert!(max_diff(ab.clone(), a) > 1e-3 && max_diff(ab, b) > 1e-3);
}
