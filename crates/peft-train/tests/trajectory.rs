//! Training-trajectory parity with PyTorch + AdapterHub: from identical initial weights, with
//! dropout off and the same batches, 20 AdamW steps of seq_bn + classification-head training
//! give the same per-step losses, first-step gradients and final weights.
//!
//! Golden values: `fixtures/tiny-bert/trajectory/` from `scripts/make_fixtures.py`
//! (`make_trajectory`: adapters 1.3.0 `BertAdapterModel`, `torch.optim.AdamW`). The step runs
//! through the same `TrainStep` / `optimize` the burn-train `Learner` calls, so the model's
//! forward and backward, the loss, the step guard and the AdamW settings are all covered.

mod common;

use std::collections::BTreeMap;

use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::Linear;
use burn::optim::GradientsParams;
use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLearningRate;
use burn::tensor::{Device, Tensor, TensorData};
use burn::train::TrainStep;
use peft_core::{AdapterConfig, attach_adapters, freeze_except};
use peft_models::adapterhub::load_adapterhub_weights;
use peft_models::bert::BertConfig;
use peft_models::golden::Golden;
use peft_models::head::{BertClassifier, ClassificationHeadConfig, HeadPooling};
use peft_train::data::ClassificationBatch;
use peft_train::optim::{OptimConfig, Schedule};
use peft_train::task::{ClassificationTask, StepGuard};

const HEAD: &str = "cls";

fn golden() -> Golden {
    Golden::from_file(common::fixtures().join("trajectory/trajectory.json"))
        .unwrap_or_else(|e| panic!("{e}"))
}

/// AdapterHub parameter name -> our module path (`BertClassifier` field names).
fn our_path(hub: &str) -> String {
    let head = format!("heads.{HEAD}.");
    if let Some(rest) = hub.strip_prefix(&head) {
        let rest = rest
            .replacen("1.", "dense.", 1)
            .replacen("4.", "classifier.", 1);
        return format!("heads.default.{rest}");
    }
    hub.replace(
        &format!(".adapters.{HEAD}.adapter_down.0."),
        ".adapters.default.adapter_down.",
    )
    .replace(&format!(".adapters.{HEAD}."), ".adapters.default.")
}

/// A golden PyTorch parameter in burn's layout (`Linear` weights are `[in, out]` in burn).
fn burn_layout(g: &Golden, key: &str) -> TensorData {
    let (shape, data) = g.raw(key).unwrap_or_else(|e| panic!("{e}"));
    let data: Vec<f32> = data.iter().map(|&v| v as f32).collect();
    match shape.as_slice() {
        [out, inp] => {
            let mut t = vec![0.0f32; data.len()];
            for o in 0..*out {
                for i in 0..*inp {
                    t[i * out + o] = data[o * inp + i];
                }
            }
            TensorData::new(t, [*inp, *out])
        }
        _ => TensorData::new(data, shape),
    }
}

/// The trainable parameter names (AdapterHub's), each checked to be in the golden file.
fn trainable_names(g: &Golden) -> Vec<String> {
    let head = [1, 4]
        .into_iter()
        .flat_map(|i| ["weight", "bias"].map(|p| format!("heads.{HEAD}.{i}.{p}")));
    let adapters = (0..2).flat_map(|l| {
        [
            "adapter_down.0.weight",
            "adapter_down.0.bias",
            "adapter_up.weight",
            "adapter_up.bias",
        ]
        .map(|p| format!("bert.encoder.layer.{l}.output.adapters.{HEAD}.{p}"))
    });
    let names: Vec<String> = head.chain(adapters).collect();
    for n in &names {
        g.raw(&format!("initial.{n}"))
            .unwrap_or_else(|e| panic!("fixture lacks {n}: {e}"));
    }
    names
}

fn linear(g: &Golden, prefix: &str, device: &Device) -> Linear {
    let w = Tensor::<2>::from_data(burn_layout(g, &format!("{prefix}.weight")), device);
    let b = Tensor::<1>::from_data(burn_layout(g, &format!("{prefix}.bias")), device);
    Linear {
        weight: Param::from_tensor(w),
        bias: Some(Param::from_tensor(b)),
    }
}

/// tiny-bert with dropout off, the fixture's seq_bn adapter and head weights, base frozen.
fn initial_model(g: &Golden, device: &Device) -> BertClassifier {
    let dir = common::fixtures();
    let mut config =
        BertConfig::from_hf_file(dir.join("config.json")).unwrap_or_else(|e| panic!("{e}"));
    config.hidden_dropout_prob = 0.0;
    config.attention_probs_dropout_prob = 0.0;
    let mut bert = config.init(device).unwrap_or_else(|e| panic!("{e}"));
    bert.load_checkpoint(dir.join("model.safetensors"))
        .unwrap_or_else(|e| panic!("{e}"));
    attach_adapters(&mut bert, &AdapterConfig::pfeiffer(4.0), device)
        .unwrap_or_else(|e| panic!("{e}"));
    load_adapterhub_weights(
        &mut bert,
        dir.join("trajectory/initial-hub/adapter.safetensors"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let head = ClassificationHeadConfig::new(config.hidden_size, 2)
        .with_pooling(HeadPooling::DenseTanh)
        .with_dropout(0.0);
    let mut model = BertClassifier::new(bert, &head, device).unwrap_or_else(|e| panic!("{e}"));
    let head = model.head_mut().unwrap_or_else(|e| panic!("{e}"));
    head.dense = Some(linear(g, &format!("initial.heads.{HEAD}.1"), device));
    head.classifier = linear(g, &format!("initial.heads.{HEAD}.4"), device);
    freeze_except(model, &BertClassifier::adapter_trainable()).unwrap_or_else(|e| panic!("{e}"))
}

fn batch(g: &Golden, k: usize, device: &Device) -> ClassificationBatch {
    let int2 = |name: &str| {
        g.int::<2>(&format!("batch{k}.{name}"), device)
            .unwrap_or_else(|e| panic!("{e}"))
    };
    ClassificationBatch {
        input_ids: int2("input_ids"),
        token_type_ids: int2("token_type_ids"),
        attention_mask: int2("attention_mask"),
        labels: g
            .int::<1>(&format!("batch{k}.labels"), device)
            .unwrap_or_else(|e| panic!("{e}")),
    }
}

/// Values (and, with `grads`, gradients) of every parameter by module path.
fn by_path<M: Module>(module: &M, grads: Option<&GradientsParams>) -> BTreeMap<String, TensorData> {
    struct V<'a>(
        Vec<String>,
        BTreeMap<String, TensorData>,
        Option<&'a GradientsParams>,
    );
    impl ModuleVisitor for V<'_> {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.0.push(name.into());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.0.pop();
        }
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            let value = match self.2 {
                Some(grads) => grads.get::<D>(p.id).map(Tensor::into_data),
                None => Some(p.val().into_data()),
            };
            if let Some(v) = value {
                self.1.insert(self.0.join("."), v);
            }
        }
    }
    let mut v = V(vec![], BTreeMap::new(), grads);
    module.visit(&mut v);
    v.1
}

fn max_diff(a: &TensorData, b: &TensorData) -> f32 {
    assert_eq!(a.shape(), b.shape());
    let a = a.try_to_vec::<f32>().unwrap_or_else(|e| panic!("{e:?}"));
    let b = b.try_to_vec::<f32>().unwrap_or_else(|e| panic!("{e:?}"));
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Compare `ours` (by module path) with golden `prefix.*` tensors; returns the largest diff.
fn compare(g: &Golden, names: &[String], prefix: &str, ours: &BTreeMap<String, TensorData>) -> f32 {
    let mut worst = 0.0f32;
    for name in names {
        let path = our_path(name);
        let got = ours
            .get(&path)
            .unwrap_or_else(|| panic!("no parameter `{path}` (from `{name}`) in our model"));
        let d = max_diff(got, &burn_layout(g, &format!("{prefix}.{name}")));
        assert!(d <= 1e-4, "{prefix}.{name}: max |diff| {d:e}");
        worst = worst.max(d);
    }
    worst
}

#[test]
fn twenty_adamw_steps_match_pytorch_adapterhub() {
    let device = Device::default().autodiff();
    let g = golden();
    let names = trainable_names(&g);
    let steps = g
        .value("steps")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or_else(|| panic!("no `steps`")) as usize;
    let lr = g
        .value("lr")
        .and_then(serde_json::Value::as_f64)
        .unwrap_or_else(|| panic!("no `lr`"));
    let (_, losses) = g.raw("losses").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(losses.len(), steps);

    let model = initial_model(&g, &device);
    // The starting point really is PyTorch's (a loader bug would show here, not as drift).
    compare(&g, &names, "initial", &by_path(&model, None));

    let optim_config = OptimConfig::new()
        .with_lr(lr)
        .with_max_grad_norm(None)
        .with_schedule(Schedule::Constant);
    let mut optim = optim_config.optimizer();
    let mut task = ClassificationTask::new(model, StepGuard::new(None, 1, None));
    let mut worst_loss = 0.0f64;
    for (k, expected) in losses.iter().enumerate() {
        let out = TrainStep::step(&task, batch(&g, k, &device));
        let loss = out.item.loss.clone().into_scalar::<f64>();
        let d = (loss - expected).abs();
        assert!(
            d <= 1e-5,
            "step {k}: loss {loss} vs PyTorch {expected} (|diff| {d:e})"
        );
        worst_loss = worst_loss.max(d);
        if k == 0 {
            let worst = compare(&g, &names, "grad0", &by_path(&task.model, Some(&out.grads)));
            println!("step 0 gradients: max |diff| {worst:e}");
        }
        task = task.optimize(&mut optim, ModuleLearningRate::from(lr), out.grads);
    }
    let worst = compare(&g, &names, "final", &by_path(&task.model, None));
    println!("{steps} steps: losses max |diff| {worst_loss:e}, final weights max |diff| {worst:e}");
}
