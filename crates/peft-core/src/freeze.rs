//! Freezing the pre-trained base and reporting what trains.
//!
//! A module path is the dot-joined field path burn uses (`encoder.layer.0.output.adapter.adapter_up.weight`).
//! A [`Trainable`] selection is a list of regular expressions over those paths; everything else
//! is frozen: it carries no gradient, so the optimizer keeps no state for it and never touches it.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamGroup};
use burn::tensor::{Distribution, Tensor};

use crate::error::{PeftError, Result};

/// Regex matching every adapter parameter (models name adapter fields `adapter`).
pub const ADAPTER_PATTERN: &str = r"(^|\.)adapter\.";

/// Which parameters train; all others are frozen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Trainable {
    patterns: Vec<String>,
}

impl Trainable {
    /// Nothing trains (a fully frozen model).
    pub fn none() -> Self {
        Self::default()
    }

    /// Adapter parameters train.
    pub fn adapters() -> Self {
        Self::none().with_pattern(ADAPTER_PATTERN)
    }

    /// Also train parameters whose path matches the regular expression `pattern`.
    pub fn with_pattern(mut self, pattern: impl Into<String>) -> Self {
        self.patterns.push(pattern.into());
        self
    }

    /// The regular expressions.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    /// Whether the parameter at `path` trains.
    pub fn matches(&self, path: &str) -> Result<bool> {
        for pattern in &self.patterns {
            let re = regex_lite(pattern)?;
            if re.is_match(path) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn group(&self) -> Result<ParamGroup> {
        ParamGroup::from_any_regexes(self.patterns.clone())
            .map_err(|e| PeftError::InvalidConfig(format!("bad trainable pattern: {e:?}")))
    }
}

fn regex_lite(pattern: &str) -> Result<regex::Regex> {
    regex::Regex::new(pattern)
        .map_err(|e| PeftError::InvalidConfig(format!("bad trainable pattern `{pattern}`: {e}")))
}

/// Freeze every parameter of `module` except those selected by `trainable`.
///
/// Frozen parameters receive no gradient (so no optimizer state and no weight decay); dropout
/// keeps its training behaviour. Use this on a module that lives on an autodiff device.
pub fn freeze_except<M: Module>(module: M, trainable: &Trainable) -> Result<M> {
    let module = module.no_grad();
    if trainable.patterns.is_empty() {
        return Ok(module);
    }
    Ok(module.set_require_grad_group(trainable.group()?, true))
}

/// Parameter counts of a model, split by a [`Trainable`] selection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParamSummary {
    /// Scalars in trainable tensors.
    pub trainable: usize,
    /// Scalars in all tensors.
    pub total: usize,
    /// Number of trainable tensors.
    pub trainable_tensors: usize,
    /// Number of tensors.
    pub total_tensors: usize,
    /// Paths of the trainable tensors.
    pub trainable_paths: Vec<String>,
}

impl ParamSummary {
    /// Trainable share in percent.
    pub fn percent(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            100.0 * self.trainable as f64 / self.total as f64
        }
    }
}

impl std::fmt::Display for ParamSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "trainable params: {} || all params: {} || trainable%: {:.4}",
            self.trainable,
            self.total,
            self.percent()
        )
    }
}

/// Every float parameter's path and element count, in module order.
pub fn param_paths<M: Module>(module: &M) -> Vec<(String, usize)> {
    struct Collect {
        path: Vec<String>,
        out: Vec<(String, usize)>,
    }
    impl ModuleVisitor for Collect {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.out
                .push((self.path.join("."), param.lazy_shape().num_elements()));
        }
    }
    let mut visitor = Collect {
        path: Vec::new(),
        out: Vec::new(),
    };
    module.visit(&mut visitor);
    visitor.out
}

/// Count trainable and total parameters under a selection.
pub fn param_summary<M: Module>(module: &M, trainable: &Trainable) -> Result<ParamSummary> {
    let mut summary = ParamSummary::default();
    for (path, n) in param_paths(module) {
        summary.total += n;
        summary.total_tensors += 1;
        if trainable.matches(&path)? {
            summary.trainable += n;
            summary.trainable_tensors += 1;
            summary.trainable_paths.push(path);
        }
    }
    Ok(summary)
}

/// Replace the values of the parameters whose path matches `pattern` with N(0, std) noise.
///
/// Tests and benchmarks use it to give adapters non-zero weights (a zero-initialised adapter
/// hides wiring bugs).
pub fn randomize_matching<M: Module>(module: M, pattern: &str, std: f64) -> Result<M> {
    struct Randomizer {
        re: regex::Regex,
        path: Vec<String>,
        std: f64,
    }
    impl ModuleMapper for Randomizer {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            if self.re.is_match(&self.path.join(".")) {
                let std = self.std;
                param.map(|t| t.random_like(Distribution::Normal(0.0, std)))
            } else {
                param
            }
        }
    }
    let re = regex_lite(pattern)?;
    Ok(module.map(&mut Randomizer {
        re,
        path: Vec::new(),
        std,
    }))
}
