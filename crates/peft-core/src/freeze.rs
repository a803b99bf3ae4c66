//! Freezing the pre-trained base and reporting what trains.
//!
//! A module path is the dot-joined field path burn uses (`encoder.layer.0.output.adapters.sst2.adapter_up.weight`).
//! A [`Trainable`] selection is a list of regular expressions over those paths; everything else
//! is frozen: it carries no gradient, so the optimizer keeps no state for it and never touches it.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamGroup};
use burn::tensor::{Distribution, Tensor};

use crate::error::{PeftError, Result};

/// Regex matching every bottleneck-adapter parameter and nothing else: models keep their
/// adapter sites in a field named `adapters` (an [`crate::AdapterLayer`]), which names each
/// adapter by its name (`adapters.<name>.`), and the pattern names the adapter's own parameters
/// (`adapter_down`, `adapter_up`, the optional `adapter_norm_before` / `adapter_norm_after`,
/// `scaling`; LoRA's `lora_a` / `lora_b` and IA³'s `ia3_l` inside a [`crate::LinearSite`]; prefix tuning's `prefix_wte` / `prefix_down` / `prefix_up` / `prefix_flat` and prompt tuning's `prompt_embedding` inside a [`crate::PrefixPool`]) as whole path segments, so a base module that merely has `adapter` in its path
/// (`encoder.adapter.weight`, `encoder.adapter_gate.weight`) stays frozen.
pub const ADAPTER_PATTERN: &str = r"(^|\.)adapters\.[A-Za-z0-9_-]+\.(adapter_down|adapter_up|adapter_norm_before|adapter_norm_after|scaling|lora_a|lora_b|ia3_l|prefix_wte|prefix_down|prefix_up|prefix_flat|prompt_embedding)(\.|$)";

/// Regex matching every AdapterFusion parameter (`adapters.<a>,<b>.query…`).
pub const FUSION_PATTERN: &str =
    r"(^|\.)adapters\.[A-Za-z0-9_-]+(,[A-Za-z0-9_-]+)+\.(query|key|value|dense)(\.|$)";

/// `name` escaped for use inside a [`Trainable`] pattern.
pub fn escape_name(name: &str) -> String {
    regex::escape(name)
}

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

    /// The parameters of the adapter named `name` (at every site) train.
    pub fn adapter(name: &str) -> Self {
        Self::none().with_adapter(name)
    }

    /// Also train the adapter named `name`.
    pub fn with_adapter(self, name: &str) -> Self {
        self.with_pattern(format!(
            r"(^|\.)adapters\.{}\.(adapter_down|adapter_up|adapter_norm_before|adapter_norm_after|scaling|lora_a|lora_b|ia3_l|prefix_wte|prefix_down|prefix_up|prefix_flat|prompt_embedding)(\.|$)",
            regex::escape(name)
        ))
    }

    /// Also train the fusion layer over `adapters` (AdapterHub's `train_adapter_fusion`
    /// trains the fusion only; the fused adapters stay frozen).
    pub fn with_fusion<S: AsRef<str>>(self, adapters: &[S]) -> Self {
        let name: Vec<&str> = adapters.iter().map(AsRef::as_ref).collect();
        self.with_pattern(format!(
            r"(^|\.)adapters\.{}\.(query|key|value|dense)(\.|$)",
            regex::escape(&name.join(","))
        ))
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

/// Parameter counts of a model: what actually trains, read from each parameter's
/// `require_grad` state, next to what a [`Trainable`] selection names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParamSummary {
    /// Scalars in tensors that require grad (0 on a device without autodiff, where nothing
    /// trains).
    pub trainable: usize,
    /// Scalars in all tensors.
    pub total: usize,
    /// Number of tensors that require grad.
    pub trainable_tensors: usize,
    /// Number of tensors.
    pub total_tensors: usize,
    /// Paths of the tensors that require grad.
    pub trainable_paths: Vec<String>,
    /// Scalars in the tensors the selection names, whatever their state (the adapter's size).
    pub selected: usize,
    /// Tensors that require grad although the selection does not name them (a base parameter
    /// left unfrozen).
    pub unselected_trainable: Vec<String>,
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
    param_states(module)
        .into_iter()
        .map(|(path, n, _, _)| (path, n))
        .collect()
}

/// Every float parameter's path, element count and whether it requires grad, in module order.
fn param_states<M: Module>(module: &M) -> Vec<(String, usize, Option<bool>, bool)> {
    struct Collect {
        path: Vec<String>,
        out: Vec<(String, usize, Option<bool>, bool)>,
    }
    impl ModuleVisitor for Collect {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            // Reading an uninitialized parameter would initialize it (drawing from the device
            // RNG and changing every later draw): its state is `None`, resolved by the caller.
            let requires_grad = param
                .is_initialized()
                .then(|| param.val().is_require_grad());
            self.out.push((
                self.path.join("."),
                param.lazy_shape().num_elements(),
                requires_grad,
                param.lazy_device().is_autodiff(),
            ));
        }
    }
    let mut visitor = Collect {
        path: Vec::new(),
        out: Vec::new(),
    };
    module.visit(&mut visitor);
    visitor.out
}

/// Count the parameters of `module` that actually require grad (its state, e.g. after
/// [`freeze_except`]; on a device without autodiff nothing does), and those `selection` names.
///
/// A parameter not yet initialized (lazy, e.g. a fresh adapter never run) is not materialised
/// for this: it counts as trainable when it lives on an autodiff device and `selection` names
/// it, which is the state [`freeze_except`] gave it.
///
/// # Errors
/// [`PeftError::InvalidConfig`] for an invalid pattern in `selection`.
pub fn param_summary<M: Module>(module: &M, selection: &Trainable) -> Result<ParamSummary> {
    let mut summary = ParamSummary::default();
    for (path, n, requires_grad, autodiff) in param_states(module) {
        summary.total += n;
        summary.total_tensors += 1;
        let selected = selection.matches(&path)?;
        let requires_grad = requires_grad.unwrap_or(selected && autodiff);
        if selected {
            summary.selected += n;
        }
        if requires_grad {
            summary.trainable += n;
            summary.trainable_tensors += 1;
            if !selected {
                summary.unselected_trainable.push(path.clone());
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attach::attach_adapters;
    use crate::config::AdapterConfig;
    use crate::testing::Toy;
    use burn::nn::{Linear, LinearConfig};
    use burn::tensor::Device;

    /// Base modules whose paths contain `adapter` / `head` without being one.
    #[derive(Module, Debug)]
    struct Decoys {
        adapter: Linear,
        head: Linear,
        adapter_gate: Linear,
    }

    #[derive(Module, Debug)]
    struct Net {
        toy: Toy,
        decoys: Decoys,
        head: Linear,
    }

    /// Initializes every lazy parameter, so that its `require_grad` state is a real one.
    fn materialise<M: Module>(module: &M) {
        struct Init;
        impl ModuleVisitor for Init {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                let _ = param.val();
            }
        }
        module.visit(&mut Init);
    }

    fn net(device: &Device) -> Net {
        let mut toy = Toy::new(8, 2, device);
        attach_adapters(&mut toy, &AdapterConfig::houlsby(2.0), device)
            .unwrap_or_else(|e| panic!("{e}"));
        let linear = || LinearConfig::new(8, 8).init(device);
        Net {
            toy,
            decoys: Decoys {
                adapter: linear(),
                head: linear(),
                adapter_gate: linear(),
            },
            head: LinearConfig::new(8, 2).init(device),
        }
    }

    #[test]
    fn base_paths_containing_adapter_or_head_stay_frozen() {
        let device = Device::flex().autodiff();
        let selection = Trainable::adapters().with_pattern(r"^head\.");
        let model = freeze_except(net(&device), &selection).unwrap_or_else(|e| panic!("{e}"));
        materialise(&model);
        let summary = param_summary(&model, &selection).unwrap_or_else(|e| panic!("{e}"));
        let mut expected: Vec<String> = (0..2)
            .flat_map(|b| {
                ["attention", "output"].into_iter().flat_map(move |site| {
                    ["adapter_down", "adapter_up"]
                        .into_iter()
                        .flat_map(move |l| {
                            ["weight", "bias"]
                                .map(|w| format!("toy.blocks.{b}.{site}.adapters.default.{l}.{w}"))
                        })
                })
            })
            .collect();
        expected.extend(["head.weight".to_string(), "head.bias".to_string()]);
        let mut got = summary.trainable_paths.clone();
        got.sort();
        expected.sort();
        assert_eq!(got, expected);
        // 4 adapters of 8->4->8 plus the 8->2 head.
        assert_eq!(summary.trainable, 4 * (8 * 4 + 4 + 4 * 8 + 8) + 8 * 2 + 2);
        assert_eq!(summary.selected, summary.trainable);
        assert!(summary.unselected_trainable.is_empty());
        for decoy in [
            "decoys.adapter.weight",
            "decoys.head.weight",
            "decoys.adapter_gate.weight",
        ] {
            assert!(!selection.matches(decoy).unwrap_or(true), "{decoy}");
        }
    }

    #[test]
    fn summary_reads_the_require_grad_state_not_the_patterns() {
        let device = Device::flex().autodiff();
        let selection = Trainable::adapters();
        // Not frozen: every parameter requires grad, whatever the selection says.
        let model = net(&device);
        materialise(&model);
        let summary = param_summary(&model, &selection).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(summary.trainable, summary.total);
        assert_eq!(summary.trainable_tensors, summary.total_tensors);
        assert_eq!(summary.selected, 4 * (8 * 4 + 4 + 4 * 8 + 8));
        assert!(
            summary
                .unselected_trainable
                .contains(&"decoys.adapter.weight".to_string())
        );
        // Fully frozen: nothing trains although the selection names the adapters.
        let frozen =
            freeze_except(net(&device), &Trainable::none()).unwrap_or_else(|e| panic!("{e}"));
        materialise(&frozen);
        let summary = param_summary(&frozen, &selection).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((summary.trainable, summary.trainable_tensors), (0, 0));
        assert_eq!(summary.selected, 4 * (8 * 4 + 4 + 4 * 8 + 8));
        // No autodiff: nothing can train.
        let plain = net(&Device::flex());
        let summary = param_summary(&plain, &selection).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(summary.trainable, 0);
    }
}
