//! Command-line flags shared by the `burn-peft` tool, the examples and the benchmark, built on
//! [clap](https://docs.rs/clap) (derive): one way to parse flags in the repository.
//!
//! Every value is checked while parsing (ranges, paths that must exist, names), so that a bad
//! command line fails in one line naming the flag, before any model is loaded or downloaded.
//! [`parse_or_exit`] prints such an error as one line and exits with [`EXIT_USAGE`].

pub mod curve;
pub mod run_dir;
pub mod table;

pub use run_dir::RunDirArgs;

use std::path::{Path, PathBuf};

use clap::{Args, Parser, ValueEnum};

use crate::core::{
    AdapterConfig, AdapterInit, BottleneckWidth, Ia3Config, LinearTarget, LoraConfig,
    PrefixTuningConfig, PromptTuningConfig,
};
use crate::models::gpt2::GenerationConfig;
use crate::models::head::HeadInit;
use crate::train::optim::{OptimConfig, Schedule};
use crate::train::trainer::{ClassifierTrainingConfig, TrainingMethod};

/// Exit code of a successful run.
pub const EXIT_OK: u8 = 0;
/// Exit code of a run that failed while working (I/O, model, data, training errors).
pub const EXIT_FAILURE: u8 = 1;
/// Exit code of an invalid command line (unknown flag, bad value, missing file, incompatible
/// flags): nothing was loaded or downloaded.
pub const EXIT_USAGE: u8 = 2;

/// Parse the process arguments into `T`; on `--help`/`--version` print and exit 0, on an
/// invalid command line print one line (`error: ...`, naming the flag) and exit
/// [`EXIT_USAGE`].
pub fn parse_or_exit<T: Parser>() -> T {
    parse_from_or_exit(std::env::args_os())
}

/// [`parse_or_exit`] over the given arguments (the first one is the program name).
pub fn parse_from_or_exit<T, I, S>(args: I) -> T
where
    T: Parser,
    I: IntoIterator<Item = S>,
    S: Into<std::ffi::OsString> + Clone,
{
    match T::try_parse_from(args) {
        Ok(t) => t,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                e.exit();
            }
            eprintln!("{}", one_line(&e.to_string()));
            std::process::exit(i32::from(EXIT_USAGE));
        }
    }
}

/// Print `error: {message}` (one line) and exit with [`EXIT_USAGE`]: a command line that
/// cannot run, found before anything was loaded (the examples' `--resume` checks).
pub fn exit_usage(message: &str) -> ! {
    eprintln!("error: {}", message.replace('\n', " "));
    std::process::exit(i32::from(EXIT_USAGE));
}

/// A clap error message as one line: the error and its tip, without the usage block.
pub fn one_line(message: &str) -> String {
    let mut joined = String::new();
    for line in message.lines() {
        let t = line.trim();
        if t.starts_with("Usage:") || t.starts_with("For more information") {
            break;
        }
        if t.is_empty() {
            continue;
        }
        if !joined.is_empty() {
            joined.push_str(if joined.ends_with(':') { " " } else { "; " });
        }
        joined.push_str(t);
    }
    if joined.starts_with("error:") {
        joined
    } else {
        format!("error: {joined}")
    }
}

// ------------------------------------------------------------------------------ validators

/// An integer >= 1.
pub fn positive_usize(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("`{s}` is not a whole number ({e})")),
    }
}

/// A finite number > 0.
pub fn positive_f64(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        Ok(_) => Err("must be a finite number > 0".into()),
        Err(e) => Err(format!("`{s}` is not a number ({e})")),
    }
}

/// A finite number >= 0.
pub fn non_negative_f64(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        Ok(_) => Err("must be a finite number >= 0".into()),
        Err(e) => Err(format!("`{s}` is not a number ({e})")),
    }
}

/// A probability in `[0, 1)` (dropout).
pub fn probability(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..1.0).contains(&v) => Ok(v),
        Ok(_) => Err("must be in [0, 1)".into()),
        Err(e) => Err(format!("`{s}` is not a number ({e})")),
    }
}

/// A number in `(0, 1]` (top-p).
pub fn unit_interval(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 1.0 => Ok(v),
        Ok(_) => Err("must be in (0, 1]".into()),
        Err(e) => Err(format!("`{s}` is not a number ({e})")),
    }
}

/// A path to an existing file.
pub fn existing_file(s: &str) -> Result<PathBuf, String> {
    let p = PathBuf::from(s);
    if p.is_file() {
        Ok(p)
    } else if p.exists() {
        Err(format!("{s} is not a file"))
    } else {
        Err(format!("{s}: no such file"))
    }
}

/// A path to an existing directory.
pub fn existing_dir(s: &str) -> Result<PathBuf, String> {
    let p = PathBuf::from(s);
    if p.is_dir() {
        Ok(p)
    } else if p.exists() {
        Err(format!("{s} is not a directory"))
    } else {
        Err(format!("{s}: no such directory"))
    }
}

/// A device name (`flex`, `ndarray`, `wgpu`, `vulkan`, `metal`, `cuda`; `cpu` is `flex`).
/// Whether its backend is compiled in is checked by [`crate::device::select_device`].
pub fn device_name(s: &str) -> Result<String, String> {
    const NAMES: [&str; 7] = ["flex", "cpu", "ndarray", "wgpu", "vulkan", "metal", "cuda"];
    let n = s.trim().to_ascii_lowercase();
    if NAMES.contains(&n.as_str()) {
        Ok(n)
    } else {
        Err(format!(
            "unknown device `{s}` (flex, ndarray, wgpu, vulkan, metal, cuda)"
        ))
    }
}

/// A model: an existing directory holding `config.json`, or a Hugging Face Hub id
/// (`name` or `owner/name`, letters, digits, `-`, `_`, `.`). A path that does not exist and
/// cannot be a Hub id (it starts with `.`, `/` or `~`, or has more than one `/`) is an error
/// here, before anything is downloaded.
pub fn model_spec(s: &str) -> Result<String, String> {
    let p = Path::new(s);
    if p.is_dir() {
        if p.join("config.json").is_file() {
            return Ok(s.to_string());
        }
        return Err(format!("{s} is a directory without config.json"));
    }
    let hub_id = !s.is_empty()
        && !s.starts_with(['.', '/', '~'])
        && s.matches('/').count() <= 1
        && s.split('/').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        });
    if hub_id {
        Ok(s.to_string())
    } else {
        Err(format!(
            "{s}: no such directory, and not a Hub id (owner/name)"
        ))
    }
}

/// A GLUE task name (`sst2`, `SST-2`, `mnli`, ...; case and `-`/`_` ignored).
pub fn glue_task(s: &str) -> Result<crate::train::data::GlueTask, String> {
    s.parse().map_err(|e: crate::train::TrainError| match e {
        crate::train::TrainError::InvalidConfig(m) => m,
        other => other.to_string(),
    })
}

/// An adapter or task name: letters, digits, `-` and `_`.
pub fn task_name(s: &str) -> Result<String, String> {
    crate::core::setup::check_name(s)
        .map(|()| s.to_string())
        .map_err(|e| e.to_string())
}

/// `--max-grad-norm`: a positive number, or `none` for no clipping.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GradNorm(pub Option<f64>);

/// Parse a [`GradNorm`].
pub fn grad_norm(s: &str) -> Result<GradNorm, String> {
    if s == "none" {
        return Ok(GradNorm(None));
    }
    positive_f64(s)
        .map(|v| GradNorm(Some(v)))
        .map_err(|e| format!("{e}, or `none`"))
}

// ---------------------------------------------------------------------------- value enums

/// What trains (`--method`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum MethodArg {
    /// Houlsby et al. 2019: adapters after attention and feed-forward.
    Houlsby,
    /// Pfeiffer et al. 2021: one adapter after the feed-forward block.
    Pfeiffer,
    /// He et al. 2022: a parallel adapter beside the feed-forward block.
    Parallel,
    /// LoRA, Hu et al. 2021: low-rank updates of the projections in --targets.
    Lora,
    /// IA³, Liu et al. 2022: learned scaling of key, value and the FFN intermediate.
    Ia3,
    /// Prefix tuning, Li & Liang 2021 (AdapterHub's prefix_tuning).
    Prefix,
    /// Prompt tuning, Lester et al. 2021: soft prompt tokens.
    Prompt,
    /// Only the classification head.
    #[value(alias = "head")]
    HeadOnly,
    /// Every parameter (the baseline).
    Full,
}

impl MethodArg {
    /// The name as typed on the command line.
    pub fn name(self) -> String {
        self.to_possible_value()
            .map(|v| v.get_name().to_string())
            .unwrap_or_default()
    }
}

/// Initialisation of fresh adapters (`--adapter-init`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AdapterInitArg {
    /// Zero up-projection: a fresh adapter changes nothing.
    Identity,
    /// AdapterHub's default for `seq_bn`.
    Bert,
    /// Houlsby et al.'s near-identity normal init.
    Houlsby,
    /// The MAM adapter's init (He et al. 2022).
    Mam,
}

impl From<AdapterInitArg> for AdapterInit {
    fn from(a: AdapterInitArg) -> Self {
        match a {
            AdapterInitArg::Identity => AdapterInit::Identity,
            AdapterInitArg::Bert => AdapterInit::Bert,
            AdapterInitArg::Houlsby => AdapterInit::Houlsby,
            AdapterInitArg::Mam => AdapterInit::MamAdapter,
        }
    }
}

/// Learning-rate schedule (`--schedule`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ScheduleArg {
    /// 6% linear warm-up, then linear decay to 0.
    Linear,
    /// A constant learning rate.
    Constant,
}

impl From<ScheduleArg> for Schedule {
    fn from(s: ScheduleArg) -> Self {
        match s {
            ScheduleArg::Linear => Schedule::WarmupLinear { warmup_ratio: 0.06 },
            ScheduleArg::Constant => Schedule::Constant,
        }
    }
}

/// Initialisation of a fresh classification head (`--head-init`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum HeadInitArg {
    /// PyTorch's `nn.Linear` default.
    Pytorch,
    /// AdapterHub's (normal, std 0.02, zero bias).
    Adapterhub,
}

impl From<HeadInitArg> for HeadInit {
    fn from(h: HeadInitArg) -> Self {
        match h {
            HeadInitArg::Pytorch => HeadInit::PyTorchDefault,
            HeadInitArg::Adapterhub => HeadInit::adapterhub(),
        }
    }
}

// ---------------------------------------------------------------------------- flag groups

/// The adapter flags of a training command.
#[derive(Args, Clone, Debug)]
pub struct AdapterArgs {
    /// What trains
    #[arg(long, value_enum, default_value_t = MethodArg::Pfeiffer)]
    pub method: MethodArg,
    /// Bottleneck width as d_model / F
    #[arg(long, value_name = "F", default_value_t = 16.0, value_parser = positive_f64, allow_negative_numbers = true)]
    pub reduction_factor: f64,
    /// Bottleneck width N (instead of --reduction-factor)
    #[arg(long, value_name = "N", value_parser = positive_usize)]
    pub bottleneck: Option<usize>,
    /// Adapter dropout probability
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = probability, allow_negative_numbers = true)]
    pub dropout: f64,
    /// Initialisation of fresh adapters
    #[arg(long, value_enum, default_value_t = AdapterInitArg::Identity)]
    pub adapter_init: AdapterInitArg,
    /// LoRA rank r (--method lora)
    #[arg(long, value_name = "R", default_value_t = 8, value_parser = positive_usize)]
    pub rank: usize,
    /// LoRA alpha: the update is scaled by alpha / r (--method lora)
    #[arg(long, value_name = "F", default_value_t = 16.0, value_parser = positive_f64, allow_negative_numbers = true)]
    pub alpha: f64,
    /// Projections LoRA adapts, comma-separated: query, key, value, attention_output,
    /// feed_forward_in, feed_forward_out (--method lora)
    #[arg(long, value_name = "LIST", default_value = "query,value", value_parser = linear_targets)]
    pub targets: LinearTargets,
    /// Scale LoRA by alpha / sqrt(r) (rsLoRA, Kalajdzievski 2023)
    #[arg(long)]
    pub rslora: bool,
    /// Prefix length (--method prefix, default 30) or soft-prompt length (--method prompt,
    /// default 10)
    #[arg(long, value_name = "N", value_parser = positive_usize)]
    pub prefix_length: Option<usize>,
}

/// `--targets`: the projections LoRA adapts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinearTargets(pub Vec<LinearTarget>);

/// Comma-separated LoRA target names (`query,value`).
pub fn linear_targets(s: &str) -> Result<LinearTargets, String> {
    let targets = s
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| LinearTarget::parse(t).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    if targets.is_empty() {
        return Err("name at least one projection".into());
    }
    Ok(LinearTargets(targets))
}

impl AdapterArgs {
    /// The training method these flags describe.
    pub fn training_method(&self) -> TrainingMethod {
        let rf = self.reduction_factor;
        let adapter = |mut config: AdapterConfig| {
            config.bottleneck.width = match self.bottleneck {
                Some(d) => BottleneckWidth::BottleneckDim(d),
                None => BottleneckWidth::ReductionFactor(rf),
            };
            config.bottleneck.dropout = self.dropout;
            config.bottleneck.init = self.adapter_init.into();
            TrainingMethod::Adapter { config }
        };
        match self.method {
            MethodArg::Houlsby => adapter(AdapterConfig::houlsby(rf)),
            MethodArg::Pfeiffer => adapter(AdapterConfig::pfeiffer(rf)),
            MethodArg::Parallel => adapter(AdapterConfig::parallel()),
            MethodArg::Lora => TrainingMethod::Lora {
                config: LoraConfig::new(self.rank, self.alpha)
                    .with_targets(self.targets.0.clone())
                    .with_dropout(self.dropout)
                    .with_rslora(self.rslora),
            },
            MethodArg::Ia3 => TrainingMethod::Ia3 {
                config: Ia3Config::liu2022(),
            },
            MethodArg::Prefix => {
                let mut config = PrefixTuningConfig::li_liang2021().with_dropout(self.dropout);
                if let Some(n) = self.prefix_length {
                    config = config.with_prefix_length(n);
                }
                TrainingMethod::PrefixTuning { config }
            }
            MethodArg::Prompt => {
                let mut config = PromptTuningConfig::default();
                if let Some(n) = self.prefix_length {
                    config = config.with_prompt_length(n);
                }
                TrainingMethod::PromptTuning { config }
            }
            MethodArg::HeadOnly => TrainingMethod::HeadOnly,
            MethodArg::Full => TrainingMethod::Full,
        }
    }
}

/// The training knobs of a classification run (the `sst2` example and `burn-peft train`).
#[derive(Args, Clone, Debug)]
pub struct ClassifierTrainArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub adapter: AdapterArgs,
    /// Epochs
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = positive_usize)]
    pub epochs: usize,
    /// Training batch size
    #[arg(long, value_name = "N", default_value_t = 32, value_parser = positive_usize)]
    pub batch_size: usize,
    /// Peak learning rate [default: 1e-3; 2e-5 for --method full]
    #[arg(long, value_name = "F", value_parser = positive_f64, allow_negative_numbers = true)]
    pub lr: Option<f64>,
    /// Maximum tokens per example (longer ones are truncated)
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = positive_usize)]
    pub max_len: usize,
    /// Seed of the head, the adapters, the data order and every dropout mask
    #[arg(long, value_name = "N", default_value_t = 42)]
    pub seed: u64,
    /// Batches per epoch (the first ones of the epoch order) [default: all]
    #[arg(long, value_name = "N", value_parser = positive_usize)]
    pub max_steps: Option<usize>,
    /// AdamW weight decay
    #[arg(long, value_name = "F", default_value_t = 0.0, value_parser = non_negative_f64, allow_negative_numbers = true)]
    pub weight_decay: f64,
    /// Learning-rate schedule (linear: 6% warm-up then linear decay)
    #[arg(long, value_enum, default_value_t = ScheduleArg::Linear)]
    pub schedule: ScheduleArg,
    /// Batches per optimizer step
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = positive_usize)]
    pub grad_accumulation: usize,
    /// A progress line every N batches (0: epoch summaries only)
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub log_every: usize,
    /// First-epoch order: one 0-based row index per line
    #[arg(long, value_name = "FILE", value_parser = existing_file)]
    pub train_order: Option<PathBuf>,
    /// Initialisation of the fresh head
    #[arg(long, value_enum, default_value_t = HeadInitArg::Pytorch)]
    pub head_init: HeadInitArg,
    /// Global gradient-norm clipping, or `none`
    #[arg(long, value_name = "F|none", default_value = "1.0", value_parser = grad_norm, allow_negative_numbers = true)]
    pub max_grad_norm: GradNorm,
    /// A checkpoint every N optimizer steps (also at each epoch end; 0: only there)
    #[arg(long, value_name = "N", default_value_t = 200)]
    pub checkpoint_every: usize,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub run_dir: RunDirArgs,
}

impl ClassifierTrainArgs {
    /// The learning rate: `--lr`, else 1e-3 (2e-5 for full fine-tuning).
    pub fn lr(&self) -> f64 {
        self.lr
            .unwrap_or(if self.adapter.method == MethodArg::Full {
                2e-5
            } else {
                1e-3
            })
    }

    /// The training configuration these flags describe, for the base `model_id`.
    pub fn config(&self, model_id: &str) -> ClassifierTrainingConfig {
        let optim = OptimConfig::new()
            .with_max_grad_norm(self.max_grad_norm.0)
            .with_lr(self.lr())
            .with_weight_decay(self.weight_decay)
            .with_schedule(self.schedule.into());
        ClassifierTrainingConfig::new()
            .with_method(self.adapter.training_method())
            .with_optim(optim)
            .with_epochs(self.epochs)
            .with_batch_size(self.batch_size)
            .with_max_steps(self.max_steps)
            .with_seed(self.seed)
            .with_grad_accumulation(self.grad_accumulation)
            .with_checkpoint_every(self.checkpoint_every)
            .with_model_id(Some(model_id.to_string()))
            .with_head_init(self.head_init.into())
            .with_log_every(self.log_every)
            .with_resume(self.run_dir.resume)
    }
}

/// GPT-2 generation flags (the `gpt2_lm` example and `burn-peft generate`).
#[derive(Args, Clone, Debug)]
pub struct GenerationArgs {
    /// The text to continue
    #[arg(long, default_value = "The")]
    pub prompt: String,
    /// Tokens to generate
    #[arg(long, value_name = "N", default_value_t = 40, value_parser = positive_usize)]
    pub max_new_tokens: usize,
    /// Sampling temperature (0: greedy)
    #[arg(long, value_name = "F", default_value_t = 0.0, value_parser = non_negative_f64, allow_negative_numbers = true)]
    pub temperature: f64,
    /// Sample from the K most likely tokens
    #[arg(long, value_name = "K", value_parser = positive_usize)]
    pub top_k: Option<usize>,
    /// Sample from the smallest set of tokens with probability >= P
    #[arg(long, value_name = "P", value_parser = unit_interval, allow_negative_numbers = true)]
    pub top_p: Option<f64>,
}

impl GenerationArgs {
    /// The generation configuration, sampling with `seed` when `--temperature` > 0.
    pub fn config(&self, seed: u64) -> GenerationConfig {
        let config = GenerationConfig::new()
            .with_max_new_tokens(self.max_new_tokens)
            .with_top_k(self.top_k)
            .with_top_p(self.top_p)
            .with_seed(seed);
        if self.temperature == 0.0 {
            config
        } else {
            config
                .with_do_sample(true)
                .with_temperature(self.temperature)
        }
    }
}

/// `prompt` (token ids) continued by `model` in eval mode, decoded.
///
/// # Errors
/// Generation errors (an invalid config, a prompt beyond the model's positions); decoding
/// errors.
pub fn continue_prompt(
    model: &crate::models::gpt2::Gpt2Model,
    tokenizer: &crate::models::tokenizer::TextTokenizer,
    prompt: &[u32],
    config: &GenerationConfig,
) -> Result<String, Box<dyn std::error::Error>> {
    use burn::module::Module;
    let out = model.valid().generate(&[prompt.to_vec()], config)?;
    let ids = out.first().map(Vec::as_slice).unwrap_or_default();
    Ok(tokenizer.decode(ids)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_keeps_the_error_and_tip_only() {
        let msg = "error: unexpected argument '--epoch' found\n\n  tip: a similar argument \
                   exists: '--epochs'\n\nUsage: sst2 --epochs <N>\n\nFor more information, try \
                   '--help'.\n";
        assert_eq!(
            one_line(msg),
            "error: unexpected argument '--epoch' found; tip: a similar argument exists: \
             '--epochs'"
        );
        assert_eq!(
            one_line(
                "error: the following required arguments were not provided:\n  --adapter \
                 <DIR>\n\nUsage: burn-peft eval --adapter <DIR>\n"
            ),
            "error: the following required arguments were not provided: --adapter <DIR>"
        );
    }

    #[test]
    fn validators_reject_out_of_range_values() {
        assert_eq!(positive_usize("3"), Ok(3));
        assert!(positive_usize("0").is_err());
        assert!(positive_f64("-1e-3").is_err());
        assert!(probability("1.0").is_err());
        assert_eq!(probability("0.1"), Ok(0.1));
        assert_eq!(grad_norm("none"), Ok(GradNorm(None)));
        assert_eq!(grad_norm("0.5"), Ok(GradNorm(Some(0.5))));
        assert!(grad_norm("-2").is_err());
        assert!(model_spec("sentence-transformers/all-MiniLM-L6-v2").is_ok());
        assert!(model_spec("./no/such/dir").is_err());
        assert!(model_spec("a/b/c").is_err());
        assert!(device_name("tpu").is_err());
    }
}
