//! Sequence classification as a burn-train task: [`ClassificationTask`] wraps a
//! [`BertClassifier`] and implements `TrainStep` / `InferenceStep`.
//!
//! The task also owns what burn's optimiser step does not: global gradient-norm clipping
//! (burn's built-in clipping is per tensor; PyTorch's `clip_grad_norm_` is global), loss
//! scaling for gradient accumulation, and a guard that stops training on a non-finite loss
//! without applying the bad update. [`StepGuard`], [`StepGuard::scale_loss`] and
//! [`guarded_step`] are shared by every task (see [`crate::lm::LmTask`]).

use std::sync::{Arc, Mutex};

use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLearningRate;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::Tensor;
use burn::train::{ClassificationOutput, Interrupter};
use peft_models::bert::BertInput;
use peft_models::head::BertClassifier;

use crate::data::ClassificationBatch;

/// What the step guard saw go wrong.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GuardReport {
    /// Optimizer steps applied so far.
    pub steps: usize,
    /// The first non-finite gradient norm (the loss was NaN/inf), with its step.
    pub non_finite: Option<(usize, f64)>,
    /// The gradient norm before clipping at the last step.
    pub last_grad_norm: f64,
}

/// Shared state and settings of the optimiser step (cloned into the model the Learner owns).
#[derive(Clone, Default)]
pub struct StepGuard {
    /// Clip the global gradient L2 norm to this value (PyTorch `clip_grad_norm_`).
    pub max_grad_norm: Option<f64>,
    /// Factor on the loss before `backward` (1 / accumulation steps).
    pub loss_scale: f64,
    report: Arc<Mutex<GuardReport>>,
    interrupter: Option<Interrupter>,
}

impl std::fmt::Debug for StepGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StepGuard")
            .field("max_grad_norm", &self.max_grad_norm)
            .field("loss_scale", &self.loss_scale)
            .finish()
    }
}

impl StepGuard {
    /// A guard clipping at `max_grad_norm` and scaling the loss by `1 / accumulation`; it
    /// stops `interrupter` on a non-finite gradient norm.
    pub fn new(
        max_grad_norm: Option<f64>,
        accumulation: usize,
        interrupter: Option<Interrupter>,
    ) -> Self {
        Self {
            max_grad_norm,
            loss_scale: 1.0 / accumulation.max(1) as f64,
            report: Arc::default(),
            interrupter,
        }
    }

    /// `loss` times [`StepGuard::loss_scale`] (returned as is when the scale is 1): the loss to
    /// call `backward` on. Shape `[1]`.
    pub fn scale_loss(&self, loss: Tensor<1>) -> Tensor<1> {
        if self.loss_scale == 1.0 {
            loss
        } else {
            loss * self.loss_scale
        }
    }

    /// What happened so far.
    pub fn report(&self) -> GuardReport {
        self.report.lock().map(|r| r.clone()).unwrap_or_default()
    }

    fn record(&self, f: impl FnOnce(&mut GuardReport)) {
        if let Ok(mut r) = self.report.lock() {
            f(&mut r);
        }
    }
}

/// The global L2 norm of all gradients of `module`'s parameters.
pub fn global_grad_norm<M: Module>(module: &M, grads: &GradientsParams) -> f64 {
    struct Norm<'a> {
        grads: &'a GradientsParams,
        sum: Option<Tensor<1>>,
    }
    impl ModuleVisitor for Norm<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.get::<D>(param.id) {
                let sq = g.powf_scalar(2.0).sum();
                self.sum = Some(match self.sum.take() {
                    Some(s) => s + sq,
                    None => sq,
                });
            }
        }
    }
    let mut v = Norm { grads, sum: None };
    module.visit(&mut v);
    v.sum.map(|s| s.into_scalar::<f64>().sqrt()).unwrap_or(0.0)
}

/// Multiply every gradient by `factor`.
pub fn scale_grads<M: Module>(module: &M, grads: GradientsParams, factor: f64) -> GradientsParams {
    struct Scale {
        grads: GradientsParams,
        factor: f64,
    }
    impl ModuleVisitor for Scale {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.remove::<D>(param.id) {
                self.grads.register(param.id, g * self.factor);
            }
        }
    }
    let mut v = Scale { grads, factor };
    module.visit(&mut v);
    v.grads
}

/// Apply the guard: compute the global norm, stop on a non-finite one (returning `None`: skip
/// the update), clip to `max_grad_norm` like PyTorch (`coef = max / (norm + 1e-6)`, only if < 1).
pub fn guard_grads<M: Module>(
    module: &M,
    grads: GradientsParams,
    guard: &StepGuard,
) -> Option<GradientsParams> {
    let norm = global_grad_norm(module, &grads);
    let step = guard.report().steps + 1;
    if !norm.is_finite() {
        guard.record(|r| {
            r.non_finite.get_or_insert((step, norm));
        });
        if let Some(i) = &guard.interrupter {
            i.stop(Some("non-finite loss"));
        }
        return None;
    }
    guard.record(|r| {
        r.steps = step;
        r.last_grad_norm = norm;
    });
    match guard.max_grad_norm {
        Some(max) if norm > max => Some(scale_grads(module, grads, max / (norm + 1e-6))),
        _ => Some(grads),
    }
}

/// The optimiser step of every task: [`guard_grads`], then `optim.step` unless the guard
/// rejected the gradients (the module is then returned unchanged).
pub fn guarded_step<M: Module>(
    module: M,
    optim: &mut ModuleOptimizer,
    lr: ModuleLearningRate,
    grads: GradientsParams,
    guard: &StepGuard,
) -> M {
    match guard_grads(&module, grads, guard) {
        Some(grads) => optim.step(lr, module, grads),
        None => module,
    }
}

/// Implements `TrainStep`, `InferenceStep` and [`RunTask`](crate::run::RunTask) for a task
/// struct `$task` with the fields `model: $model` and `guard: StepGuard`, from its forward method
/// `fn $forward(&self, $batch) -> $output` (an output with a `loss` field `[1]`): the training
/// step calls `backward` on the loss (plus [`peft_core::fusion_regularization`] when a fusion
/// layer trains) scaled by [`StepGuard::scale_loss`], the optimizer step is
/// [`guarded_step`]. One definition for [`ClassificationTask`] and [`crate::lm::LmTask`].
macro_rules! guarded_task {
    ($task:ty, $model:ty, $batch:ty => $output:ty, $forward:ident) => {
        impl burn::train::TrainStep for $task {
            type Input = $batch;
            type Output = $output;

            fn step(&self, batch: $batch) -> burn::train::TrainOutput<$output> {
                let out = self.$forward(batch);
                // AdapterHub's fusion regularisation joins the differentiated loss only.
                let loss = match peft_core::fusion_regularization(&self.model) {
                    Some(reg) => out.loss.clone() + reg,
                    None => out.loss.clone(),
                };
                let loss = self.guard.scale_loss(loss);
                burn::train::TrainOutput::new(self, loss.backward(), out)
            }

            fn optimize(
                self,
                optim: &mut burn::optim::ModuleOptimizer,
                lr: burn::optim::lr_scheduler::module_lr_scheduler::ModuleLearningRate,
                grads: burn::optim::GradientsParams,
            ) -> Self {
                let guard = self.guard.clone();
                $crate::task::guarded_step(self, optim, lr, grads, &guard)
            }
        }

        impl burn::train::InferenceStep for $task {
            type Input = $batch;
            type Output = $output;

            fn step(&self, batch: $batch) -> $output {
                self.$forward(batch)
            }
        }

        impl $crate::run::RunTask for $task {
            type Model = $model;

            fn wrap(model: $model, guard: $crate::task::StepGuard) -> Self {
                Self { model, guard }
            }

            fn into_model(self) -> $model {
                self.model
            }
        }
    };
}
pub(crate) use guarded_task;

/// A [`BertClassifier`] as a burn-train classification task.
#[derive(Module, Debug)]
pub struct ClassificationTask {
    /// The model (frozen base, trainable adapters and head).
    pub model: BertClassifier,
    /// Clipping, loss scaling, non-finite guard.
    #[module(skip)]
    pub guard: StepGuard,
}

impl ClassificationTask {
    /// Wrap a model.
    pub fn new(model: BertClassifier, guard: StepGuard) -> Self {
        Self { model, guard }
    }

    /// Logits and mean cross-entropy for a batch.
    pub fn forward_classification(&self, batch: ClassificationBatch) -> ClassificationOutput {
        let input = BertInput::new(batch.input_ids)
            .with_token_type_ids(batch.token_type_ids)
            .with_attention_mask(batch.attention_mask);
        let logits = self.model.forward(input);
        let loss = CrossEntropyLossConfig::new()
            .init(&logits.device())
            .forward(logits.clone(), batch.labels.clone());
        ClassificationOutput::new(loss, logits, batch.labels)
    }
}

guarded_task!(
    ClassificationTask,
    BertClassifier,
    ClassificationBatch => ClassificationOutput,
    forward_classification
);
