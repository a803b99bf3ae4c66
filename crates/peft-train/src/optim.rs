//! Optimiser and learning-rate schedule as the adapter papers and Hugging Face use them.

use burn::config::Config;
use burn::optim::LearningRate;
use burn::optim::lr_scheduler::{LrScheduler, LrSchedulerRecord};
use burn::optim::{AdamWConfig, ModuleOptimizer, RecordState, StateSink, StateSource};
use burn::store::burn_pack::Scalar;
use burn::tensor::Device;

use crate::error::{Result, TrainError};

/// AdamW with PyTorch's defaults made explicit (burn's differ: epsilon 1e-5, weight decay 1e-4),
/// global gradient-norm clipping and a warm-up + linear-decay schedule.
#[derive(Config, Debug, PartialEq)]
pub struct OptimConfig {
    /// Peak learning rate. Default: 1e-3 (Pfeiffer adapters).
    #[config(default = 1e-3)]
    pub lr: f64,
    /// Decoupled weight decay. Default: 0.0 (the PyTorch peer uses 0).
    #[config(default = 0.0)]
    pub weight_decay: f64,
    /// AdamW epsilon. Default: 1e-8 (PyTorch).
    #[config(default = 1e-8)]
    pub epsilon: f64,
    /// AdamW beta1. Default: 0.9.
    #[config(default = 0.9)]
    pub beta_1: f64,
    /// AdamW beta2. Default: 0.999.
    #[config(default = 0.999)]
    pub beta_2: f64,
    /// Clip the global gradient L2 norm (PyTorch `clip_grad_norm_`). Default: 1.0.
    #[config(default = "Some(1.0)")]
    pub max_grad_norm: Option<f64>,
    /// Learning-rate schedule. Default: linear warm-up over 6% of the steps, then linear decay.
    #[config(default = "Schedule::WarmupLinear { warmup_ratio: 0.06 }")]
    pub schedule: Schedule,
}

/// Learning-rate schedules.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// The same rate every step (the PyTorch peer benchmark).
    Constant,
    /// Hugging Face `get_linear_schedule_with_warmup`: 0 -> lr over the warm-up steps, then
    /// linearly to 0 at the last step.
    WarmupLinear {
        /// Share of the total steps used for warm-up.
        warmup_ratio: f64,
    },
}

impl OptimConfig {
    /// Check the values.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(TrainError::InvalidConfig(m));
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad(format!("lr must be positive, got {}", self.lr));
        }
        if self.weight_decay.is_nan() || self.weight_decay < 0.0 {
            return bad(format!(
                "weight_decay must be >= 0, got {}",
                self.weight_decay
            ));
        }
        if self.epsilon.is_nan() || self.epsilon <= 0.0 {
            return bad(format!("epsilon must be positive, got {}", self.epsilon));
        }
        if let Some(c) = self.max_grad_norm
            && (c.is_nan() || c <= 0.0)
        {
            return bad(format!("max_grad_norm must be positive, got {c}"));
        }
        if let Schedule::WarmupLinear { warmup_ratio } = self.schedule
            && !(0.0..1.0).contains(&warmup_ratio)
        {
            return bad(format!(
                "warmup_ratio must be in [0, 1), got {warmup_ratio}"
            ));
        }
        Ok(())
    }

    /// The AdamW optimiser (no burn clipping: the task clips globally).
    pub fn optimizer(&self) -> ModuleOptimizer {
        AdamWConfig::new()
            .with_beta_1(self.beta_1 as f32)
            .with_beta_2(self.beta_2 as f32)
            .with_epsilon(self.epsilon as f32)
            .with_weight_decay(self.weight_decay as f32)
            .init()
    }

    /// The schedule over `total_steps` optimiser steps.
    pub fn scheduler(&self, total_steps: usize) -> WarmupLinear {
        let warmup = match self.schedule {
            Schedule::Constant => None,
            Schedule::WarmupLinear { warmup_ratio } => {
                Some((warmup_ratio * total_steps as f64).round() as usize)
            }
        };
        WarmupLinear {
            base_lr: self.lr,
            warmup_steps: warmup,
            total_steps,
            step: 0,
        }
    }
}

/// Linear warm-up then linear decay (or constant), stepped once per optimiser step.
#[derive(Clone, Debug, PartialEq)]
pub struct WarmupLinear {
    base_lr: f64,
    /// `None` for a constant rate.
    warmup_steps: Option<usize>,
    total_steps: usize,
    step: usize,
}

#[derive(Clone, Debug)]
struct WarmupLinearState {
    step: usize,
}

impl RecordState for WarmupLinearState {
    fn state_flatten(&self, prefix: &str, out: &mut StateSink) {
        out.push_scalar(prefix, "step", Scalar::from(self.step));
    }

    fn state_unflatten(prefix: &str, src: &mut StateSource, _device: &Device) -> Option<Self> {
        let step = usize::try_from(src.take_scalar(prefix, "step")?).ok()?;
        Some(Self { step })
    }
}

impl WarmupLinear {
    /// The rate at (0-based) optimiser step `step`, as Hugging Face computes it.
    pub fn lr_at(&self, step: usize) -> f64 {
        let Some(warmup) = self.warmup_steps else {
            return self.base_lr;
        };
        let factor = if step < warmup {
            step as f64 / warmup.max(1) as f64
        } else {
            let left = self.total_steps.saturating_sub(step) as f64;
            (left / self.total_steps.saturating_sub(warmup).max(1) as f64).max(0.0)
        };
        self.base_lr * factor
    }

    /// Optimizer steps taken so far.
    pub fn steps_done(&self) -> usize {
        self.step
    }

    /// The step count stored in `record` (as [`LrScheduler::to_record`] writes it).
    ///
    /// # Errors
    /// [`TrainError::SchedulerState`] when the record holds no readable step count (another
    /// scheduler's record, or a damaged file).
    pub fn record_step(record: &LrSchedulerRecord) -> Result<usize> {
        record
            .into_state::<WarmupLinearState>()
            .map(|s| s.step)
            .ok_or_else(|| TrainError::SchedulerState {
                message: "the record holds no step count of a warm-up/linear schedule".into(),
            })
    }

    /// Load `record`, or fail without changing the schedule: the checked form of
    /// [`LrScheduler::load_record`] that resuming uses.
    ///
    /// # Errors
    /// As [`WarmupLinear::record_step`].
    pub fn try_load_record(&mut self, record: &LrSchedulerRecord) -> Result<()> {
        self.step = Self::record_step(record)?;
        Ok(())
    }
}

impl LrScheduler for WarmupLinear {
    fn step(&mut self) -> LearningRate {
        let lr = self.lr_at(self.step);
        self.step += 1;
        lr
    }

    fn to_record(&self) -> LrSchedulerRecord {
        LrSchedulerRecord::from_state(&WarmupLinearState { step: self.step })
    }

    /// burn's trait cannot return an error: an unreadable record leaves the schedule unchanged.
    /// The training functions never rely on this; they restore the schedule with
    /// [`WarmupLinear::try_load_record`] before training continues, which fails with a typed
    /// error instead.
    fn load_record(&mut self, record: LrSchedulerRecord) {
        let _ = self.try_load_record(&record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_linear_matches_hugging_face() {
        let config = OptimConfig::new()
            .with_lr(1.0)
            .with_schedule(Schedule::WarmupLinear { warmup_ratio: 0.1 });
        let mut s = config.scheduler(100);
        // get_linear_schedule_with_warmup(opt, 10, 100): lambda(0)=0, lambda(5)=.5, lambda(10)=1,
        // lambda(55)=0.5, lambda(99)=1/90.
        let lrs: Vec<f64> = (0..100).map(|_| s.step()).collect();
        assert_eq!(lrs[0], 0.0);
        assert!((lrs[5] - 0.5).abs() < 1e-12);
        assert!((lrs[10] - 1.0).abs() < 1e-12);
        assert!((lrs[55] - 0.5).abs() < 1e-12);
        assert!((lrs[99] - 1.0 / 90.0).abs() < 1e-12);
    }

    #[test]
    fn a_restored_schedule_continues_and_a_bad_record_is_an_error() {
        let config = OptimConfig::new()
            .with_lr(1.0)
            .with_schedule(Schedule::WarmupLinear { warmup_ratio: 0.1 });
        let mut s = config.scheduler(100);
        for _ in 0..37 {
            s.step();
        }
        // At step 37 the rate (63/90) differs from a restart's (0).
        let want = s.lr_at(37);
        assert!(want > 0.5 && config.scheduler(100).lr_at(0) == 0.0);
        let record = s.to_record();
        let mut fresh = config.scheduler(100);
        assert!(fresh.try_load_record(&record).is_ok());
        assert_eq!(fresh.steps_done(), 37);
        assert_eq!(fresh.step(), want);
        // Through burn's trait too.
        let mut fresh = config.scheduler(100);
        fresh.load_record(record);
        assert_eq!(fresh.step(), want);

        let mut fresh = config.scheduler(100);
        let empty = LrSchedulerRecord::new();
        assert!(matches!(
            fresh.try_load_record(&empty),
            Err(TrainError::SchedulerState { .. })
        ));
        assert_eq!(fresh.steps_done(), 0, "a failed load changes nothing");
    }

    #[test]
    fn constant_and_validation() {
        let mut s = OptimConfig::new()
            .with_lr(0.5)
            .with_schedule(Schedule::Constant)
            .scheduler(10);
        assert_eq!((s.step(), s.step()), (0.5, 0.5));
        assert!(OptimConfig::new().with_lr(0.0).validate().is_err());
        assert!(
            OptimConfig::new()
                .with_max_grad_norm(Some(-1.0))
                .validate()
                .is_err()
        );
        assert!(OptimConfig::new().validate().is_ok());
    }
}
