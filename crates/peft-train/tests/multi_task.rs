//! Several named tasks on one frozen base: training task `b` leaves task `a` and the base bit
//! for bit as they were; fusion training touches only the fusion layer and its head; a mixed
//! batch routed per example equals each example run alone with its task.

mod common;

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor, TensorData, Tolerance};
use peft_core::{FusionConfig, Setup, set_active};
use peft_models::bert::BertInput;
use peft_models::head::{BertClassifier, ClassificationHeadConfig, HeadPooling};
use peft_train::trainer::{
    ClassifierTrainingConfig, TrainingMethod, prepare_model, train_classifier,
};

use common::{config, data, model, quiet, tokenizer, values};

fn train(model: BertClassifier, task: &str, method: Option<TrainingMethod>) -> BertClassifier {
    let tok = tokenizer();
    let data = data(&tok);
    let mut c: ClassifierTrainingConfig = config(1)
        .with_task(task.to_string())
        .with_max_steps(Some(3));
    if let Some(m) = method {
        c = c.with_method(m);
    }
    let out = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    // A trained model comes back for inference; train the next task on the autodiff device.
    let model = model.train();
    let batcher = peft_train::data::ClassificationBatcher::new(tok);
    let (trained, _) = train_classifier(model, &data, batcher, &c, out.path(), quiet())
        .unwrap_or_else(|e| panic!("{e}"));
    trained
}

fn with_head(mut m: BertClassifier, name: &str, device: &Device) -> BertClassifier {
    let head =
        ClassificationHeadConfig::new(m.bert.hidden_size, 2).with_pooling(HeadPooling::DenseTanh);
    m.add_head(name, &head, device)
        .unwrap_or_else(|e| panic!("{e}"));
    m
}

/// Values of the parameters whose path contains `part`.
fn part(m: &BertClassifier, part: &str) -> Vec<(String, TensorData)> {
    values(m)
        .into_iter()
        .filter(|(p, _)| p.contains(part))
        .collect()
}

fn base(m: &BertClassifier) -> Vec<(String, TensorData)> {
    values(m)
        .into_iter()
        .filter(|(p, _)| !p.contains(".adapters.") && !p.starts_with("heads."))
        .collect()
}

#[test]
fn tasks_train_independently_and_route_per_example() {
    let device = Device::flex().autodiff();
    device.seed(3);
    let m = with_head(with_head(model(&device), "a", &device), "b", &device);
    let m = train(m, "a", None);
    let a_after_a = part(&m, ".adapters.a.");
    let head_a = part(&m, "heads.a.");
    let base_before = base(&m);
    assert!(!a_after_a.is_empty());

    // Only b's adapter and head require grad (so only they get optimizer state).
    let (prepared, _, summary) = prepare_model(
        m.clone().train(),
        &config(1).method,
        "b",
        &Device::flex().autodiff(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(!summary.trainable_paths.is_empty());
    for p in &summary.trainable_paths {
        assert!(
            p.contains(".adapters.b.") || p.starts_with("heads.b."),
            "{p} must be frozen"
        );
    }
    drop(prepared);
    let m = train(m, "b", None);
    assert_eq!(
        part(&m, ".adapters.a."),
        a_after_a,
        "training b must not touch adapter a"
    );
    assert_eq!(part(&m, "heads.a."), head_a, "nor head a");
    assert_eq!(base(&m), base_before, "nor the base");
    assert!(!part(&m, ".adapters.b.").is_empty());

    // A mixed batch, routed per example, equals each example alone with its task.
    let mut m = m.valid();
    let ids = [[2i64, 11, 12, 13, 3], [2, 21, 22, 3, 0], [2, 31, 3, 0, 0]];
    let mask = [[1i64, 1, 1, 1, 1], [1, 1, 1, 1, 0], [1, 1, 1, 0, 0]];
    let plain = Device::flex();
    let t = |v: &[[i64; 5]; 3]| {
        Tensor::<2, Int>::from_data(TensorData::new(v.concat(), [3, 5]), &plain)
    };
    let input = BertInput::new(t(&ids)).with_attention_mask(t(&mask));
    let routes = vec![
        Some(Setup::single("a")),
        Some(Setup::single("b")),
        Some(Setup::single("a")),
    ];
    set_active(&mut m, Some(Setup::Route(routes))).unwrap_or_else(|e| panic!("{e}"));
    let outputs = m
        .forward_heads(input.clone())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(outputs.len(), 2);
    for out in outputs {
        for (k, &row) in out.rows.iter().enumerate() {
            set_active(&mut m, Some(Setup::single(out.head.clone())))
                .unwrap_or_else(|e| panic!("{e}"));
            let alone = BertInput::new(input.input_ids.clone().slice(row..row + 1))
                .with_attention_mask(
                    input
                        .attention_mask
                        .clone()
                        .unwrap_or_else(|| panic!("mask"))
                        .slice(row..row + 1),
                );
            let expected = m.forward(alone);
            out.logits
                .clone()
                .slice(k..k + 1)
                .into_data()
                .assert_approx_eq::<f32>(&expected.into_data(), Tolerance::absolute(1e-5));
        }
    }
}

#[test]
fn fusion_training_updates_only_the_fusion_and_its_head() {
    let device = Device::flex().autodiff();
    device.seed(4);
    let m = with_head(with_head(model(&device), "a", &device), "b", &device);
    let m = train(train(m, "a", None), "b", None);
    let m = with_head(m, "fused", &device);
    let adapters_before = part(&m, ".adapters.");
    let base_before = base(&m);
    let fusion = TrainingMethod::Fusion {
        adapters: vec!["a".into(), "b".into()],
        config: FusionConfig::dynamic(),
    };
    let m = train(m, "fused", Some(fusion));
    let after = part(&m, ".adapters.");
    let fusion_params: Vec<_> = after
        .iter()
        .filter(|(p, _)| p.contains(".adapters.a,b."))
        .collect();
    assert!(!fusion_params.is_empty(), "the fusion layer exists");
    let adapters_after: Vec<_> = after
        .iter()
        .filter(|(p, _)| !p.contains(","))
        .cloned()
        .collect();
    assert_eq!(
        adapters_after, adapters_before,
        "fused adapters stay frozen"
    );
    assert_eq!(base(&m), base_before, "the base stays frozen");
    // The fusion's value matrix started at the identity and moved.
    let v = m
        .bert
        .encoder
        .layer
        .last()
        .and_then(|l| l.output.adapters.fusion("a,b"))
        .and_then(|f| f.value.clone())
        .unwrap_or_else(|| panic!("value"));
    let d = v.weight.dims()[0];
    let eye = Tensor::<2>::eye(d, &v.weight.device());
    let moved = (v.weight.val() - eye).abs().max().into_scalar::<f32>();
    assert!(moved > 1e-4, "fusion value weights trained: {moved}");
}

/// The training step differentiates the task loss plus AdapterHub's fusion regularisation
/// `0.01 · Σ (I − V)²`: the value projections' gradients exceed the task loss's by exactly
/// `0.02 · (V − I)`; nothing else changes.
#[test]
fn fusion_training_step_adds_the_value_regularisation_gradient() {
    use burn::data::dataloader::batcher::Batcher;
    use burn::optim::GradientsParams;
    use burn::train::TrainStep;
    use peft_train::task::{ClassificationTask, StepGuard};

    let device = Device::flex().autodiff();
    device.seed(6);
    let mut m = with_head(with_head(model(&device), "a", &device), "b", &device);
    for name in ["a", "b"] {
        peft_core::add_adapter(
            &mut m,
            name,
            &peft_core::AdapterConfig::pfeiffer(4.0),
            &device,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }
    let m = with_head(m, "fused", &device);
    let fusion = TrainingMethod::Fusion {
        adapters: vec!["a".into(), "b".into()],
        config: FusionConfig::dynamic(),
    };
    let (m, _, _) = prepare_model(m, &fusion, "fused", &device).unwrap_or_else(|e| panic!("{e}"));
    // Move V away from the identity so the term is large; keep it trainable.
    let m = peft_core::freeze::randomize_matching(m, r"adapters\.a,b\.value", 0.2)
        .unwrap_or_else(|e| panic!("{e}"));
    let m =
        peft_core::freeze_except(m, &fusion.trainable("fused")).unwrap_or_else(|e| panic!("{e}"));
    let tok = tokenizer();
    let items = data(&tok).train[..6].to_vec();
    let batch = peft_train::data::ClassificationBatcher::new(tok).batch(items, &device);
    let task = ClassificationTask::new(m, StepGuard::new(None, 1, None));

    let stepped = TrainStep::step(&task, batch.clone());
    let with_reg = stepped.grads;
    let plain = task.forward_classification(batch).loss.backward();
    let plain = GradientsParams::from_grads(plain, &task);

    let mut checked = 0;
    for layer in &task.model.bert.encoder.layer {
        for site in [&layer.attention.output.adapters, &layer.output.adapters] {
            let Some(v) = site.fusion("a,b").and_then(|f| f.value.clone()) else {
                continue;
            };
            let g_reg = with_reg
                .get::<2>(v.weight.id)
                .unwrap_or_else(|| panic!("value gradient with the term"));
            let g_plain = plain
                .get::<2>(v.weight.id)
                .unwrap_or_else(|| panic!("value gradient without it"));
            let w = v.weight.val().inner();
            let [d, _] = w.dims();
            let eye = Tensor::<2>::eye(d, &w.device());
            let expected = (w - eye) * 0.02;
            (g_reg - g_plain)
                .into_data()
                .assert_approx_eq::<f32>(&expected.into_data(), Tolerance::absolute(1e-6));
            checked += 1;
        }
    }
    assert!(checked > 0, "a fusion layer was checked");
}
