//! `peft_bench`: burn-peft on the PyTorch peer benchmark's workloads (MiniLM-L6 on SST-2).
//!
//! The workloads are those of the peer's `bench_peer.py` (see `scripts/bench_torch.py` for our
//! own PyTorch side); `scripts/bench.sh` runs both and writes `bench/results.md`.
//!
//! ```text
//! cargo bench --bench peft_bench [--features wgpu] -- <command> [flags]
//!   w1 --method seq_bn|double_seq_bn|head|full [--dropout 0.1] [--repeats 3]
//!                        training throughput: batch 32, max length 64, dynamic padding,
//!                        train.tsv rows 0..2079 in file order, 5 warm-up + 60 timed steps,
//!                        AdamW (constant lr, no weight decay, eps 1e-8), cross-entropy
//!   w2 --variant base|head|seq_bn|double_seq_bn [--passes 3] [--order input|by_length]
//!                        inference throughput over dev.tsv (872 rows, batch 64), eval mode,
//!                        one untimed warm-up pass, then timed passes
//!   w3 --method M [--tries 1]   peak RSS of a child process running `w1 --repeats 1`
//!   overhead [--reps 30] [--rounds 5]  one BERT layer with vs without adapters (ratio)
//!   params                 trainable / total parameter counts per method
//!   sizes                  bytes of saved adapter directories
//!   report --ours F [--torch F] [--peer DIR] [--out F]   markdown tables from JSON lines
//! common flags: --device NAME, --model DIR, --data DIR, --json-out FILE (append the JSON line)
//! ```
//!
//! Assets: `--model`/`--data`, else `$PEFT_ASSETS_DIR/models/all-MiniLM-L6-v2` and
//! `$PEFT_ASSETS_DIR/data/sst2`. Without a model directory the model has MiniLM-L6's shape with
//! random weights; without a tokenizer or data the batches are synthetic (the peer's mean padded
//! lengths). Both are flagged in the output, as such numbers are not comparable.
//!
//! Timing follows the peer: tokenization and batch tensors are prepared before the clock
//! starts; a W1 step is forward, loss, backward, AdamW update and reading the loss (the peer's
//! `loss.item()`); W2 reads the logits of every batch.

use std::collections::BTreeMap;
use std::error::Error;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLearningRate;
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use burn::train::{InferenceStep, TrainStep};
use burn_peft::core::{
    AdapterConfig, AdapterFile, AdapterMethod, Trainable, freeze_except, save_adapter,
};
use burn_peft::models::bert::BertConfig;
use burn_peft::models::bert::layer::BertLayer;
use burn_peft::models::find_checkpoint;
use burn_peft::models::head::{BertClassifier, ClassificationHeadConfig, HeadPooling};
use burn_peft::models::tokenizer::TextTokenizer;
use burn_peft::train::data::{
    ClassificationBatch, ClassificationBatcher, GlueTask, TokenizedDataset, load_glue_tsv,
};
use burn_peft::train::optim::{OptimConfig, Schedule};
use burn_peft::train::predict::{BatchOrder, batch_plan};
use burn_peft::train::task::{ClassificationTask, StepGuard};
use burn_peft::train::trainer::{TrainingMethod, prepare_model};
use serde_json::{Value, json};

type Res<T> = Result<T, Box<dyn Error>>;

const MAX_LEN: usize = 64;
const SEED: u64 = 0;
const MODEL_REL: &str = "models/all-MiniLM-L6-v2";
const DATA_REL: &str = "data/sst2";
const PEER_REL: &str = "bench/peer/results";
/// The peer's mean padded lengths, for synthetic batches (W1 timed steps, W2).
const SYNTH_LEN_W1: usize = 39;
const SYNTH_LEN_W2: usize = 51;

// ------------------------------------------------------------------------------------ flags

/// The benchmark's command line (clap): `w1`..`report`, common flags anywhere.
#[derive(clap::Parser, Debug)]
#[command(
    name = "peft_bench",
    about = "burn-peft on the PyTorch peer benchmark's workloads (MiniLM-L6 on SST-2)",
    arg_required_else_help = true
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
    /// Device: flex, ndarray, wgpu, vulkan, metal, cuda [default: compiled-in backend]
    #[arg(long, global = true, value_parser = burn_peft::cli::device_name)]
    device: Option<String>,
    /// Model directory [default: $PEFT_ASSETS_DIR/models/all-MiniLM-L6-v2, else random weights]
    #[arg(long, global = true)]
    model: Option<String>,
    /// SST-2 directory with train.tsv [default: $PEFT_ASSETS_DIR/data/sst2, else synthetic]
    #[arg(long, global = true)]
    data: Option<String>,
    /// Append the result's JSON line to FILE
    #[arg(long, global = true, value_name = "FILE")]
    json_out: Option<String>,
    /// Added by `cargo bench`; ignored
    #[arg(long, global = true, hide = true)]
    bench: bool,
}

#[derive(clap::Subcommand, Debug)]
enum Cmd {
    /// Training throughput: batch 32, max length 64, 5 warm-up + 60 timed steps, AdamW
    W1 {
        /// seq_bn, double_seq_bn, head or full [default: seq_bn]
        #[arg(long, value_parser = ["seq_bn", "double_seq_bn", "head", "full"])]
        method: Option<String>,
        /// Adapter (and head) dropout [default: none]
        #[arg(long, value_parser = burn_peft::cli::probability)]
        dropout: Option<f64>,
        /// Timed repeats [default: 3]
        #[arg(long, value_parser = burn_peft::cli::positive_usize)]
        repeats: Option<usize>,
        /// Warm-up steps [default: 5]
        #[arg(long)]
        warmup: Option<usize>,
        /// Timed steps [default: 60]
        #[arg(long, value_parser = burn_peft::cli::positive_usize)]
        steps: Option<usize>,
        /// Batch size [default: 32]
        #[arg(long, value_parser = burn_peft::cli::positive_usize)]
        batch_size: Option<usize>,
    },
    /// Inference throughput over dev.tsv (batch 64), eval mode
    W2 {
        /// base, head, seq_bn or double_seq_bn [default: base]
        #[arg(long, value_parser = ["base", "head", "seq_bn", "double_seq_bn"])]
        variant: Option<String>,
        /// Timed passes [default: 3]
        #[arg(long, value_parser = burn_peft::cli::positive_usize)]
        passes: Option<usize>,
        /// Batch size [default: 64]
        #[arg(long, value_parser = burn_peft::cli::positive_usize)]
        batch_size: Option<usize>,
        /// Batch order: input, or by_length (length-grouped; reported apart, never in a ratio)
        /// [default: input]
        #[arg(long, value_parser = ["input", "by_length"])]
        order: Option<String>,
    },
    /// Peak RSS of a child process running `w1 --repeats 1`
    W3 {
        /// As for w1 [default: seq_bn]
        #[arg(long, value_parser = ["seq_bn", "double_seq_bn", "head", "full"])]
        method: Option<String>,
        /// Child processes [default: 1]
        #[arg(long, value_parser = burn_peft::cli::positive_usize)]
        tries: Option<usize>,
        /// As for w1
        #[arg(long, value_parser = burn_peft::cli::probability)]
        dropout: Option<f64>,
    },
    /// One BERT layer with vs without adapters (ratio)
    Overhead {
        /// Forward passes per round [default: 30]
        #[arg(long, value_parser = burn_peft::cli::positive_usize)]
        reps: Option<usize>,
        /// Rounds [default: 5]
        #[arg(long, value_parser = burn_peft::cli::positive_usize)]
        rounds: Option<usize>,
        /// Batch size [default: 32]
        #[arg(long, value_parser = burn_peft::cli::positive_usize)]
        batch_size: Option<usize>,
        /// Sequence length [default: 39]
        #[arg(long, value_parser = burn_peft::cli::positive_usize)]
        seq: Option<usize>,
    },
    /// Trainable / total parameter counts per method
    Params,
    /// Bytes of saved adapter directories
    Sizes,
    /// Markdown tables from JSON lines
    Report {
        /// Our JSON lines
        #[arg(long, value_name = "FILE", value_parser = burn_peft::cli::existing_file)]
        ours: String,
        /// The PyTorch side's JSON lines
        #[arg(long, value_name = "FILE")]
        torch: Option<String>,
        /// The peer's results directory [default: $PEFT_ASSETS_DIR/bench/peer/results]
        #[arg(long, value_name = "DIR")]
        peer: Option<String>,
        /// Write the report to FILE too
        #[arg(long, value_name = "FILE")]
        out: Option<String>,
        /// Markdown appended to the report
        #[arg(long, value_name = "FILE")]
        notes: Option<String>,
    },
}

/// The parsed command line as `--flag value` strings (clap checked names and values), so the
/// commands read flags by name.
#[derive(Clone, Debug)]
struct Args {
    cmd: String,
    flags: BTreeMap<String, String>,
}

impl Args {
    fn parse() -> Res<Self> {
        use clap::{CommandFactory, FromArgMatches};
        let command = Cli::command();
        let matches = match command.try_get_matches() {
            Ok(m) => m,
            Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => e.exit(),
            Err(e)
                if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand =>
            {
                e.exit()
            }
            Err(e) => return Err(burn_peft::cli::one_line(&e.to_string()).into()),
        };
        Cli::from_arg_matches(&matches).map_err(|e| burn_peft::cli::one_line(&e.to_string()))?;
        let (cmd, sub) = matches
            .subcommand()
            .ok_or("no command given (see --help)")?;
        let mut flags = BTreeMap::new();
        for m in [&matches, sub] {
            for id in m.ids() {
                let id = id.as_str();
                if id == "bench" {
                    continue;
                }
                if let Ok(Some(mut values)) = m.try_get_raw(id)
                    && let Some(v) = values.next_back()
                {
                    flags.insert(id.replace('_', "-"), v.to_string_lossy().into_owned());
                }
            }
        }
        Ok(Self {
            cmd: cmd.to_string(),
            flags,
        })
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.flags.get(name).map(String::as_str)
    }

    fn str_or<'a>(&'a self, name: &str, default: &'a str) -> &'a str {
        self.get(name).unwrap_or(default)
    }

    fn num<T: std::str::FromStr>(&self, name: &str, default: T) -> Res<T> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("--{name}: cannot parse `{v}`").into()),
        }
    }

    fn assets(&self) -> Option<PathBuf> {
        std::env::var_os("PEFT_ASSETS_DIR").map(PathBuf::from)
    }

    /// The model directory, if it holds a `config.json`.
    fn model_dir(&self) -> Option<PathBuf> {
        let dir = match self.get("model") {
            Some(d) => PathBuf::from(d),
            None => self.assets()?.join(MODEL_REL),
        };
        dir.join("config.json").is_file().then_some(dir)
    }

    /// The SST-2 directory, if it holds `train.tsv`.
    fn data_dir(&self) -> Option<PathBuf> {
        let dir = match self.get("data") {
            Some(d) => PathBuf::from(d),
            None => self.assets()?.join(DATA_REL),
        };
        dir.join("train.tsv").is_file().then_some(dir)
    }

    fn device(&self) -> Res<Device> {
        Ok(burn_peft::device::select_device(self.get("device"))?)
    }

    /// Append `record` to `--json-out` (if given) and print it as the last stdout line.
    fn emit(&self, record: &Value) -> Res<()> {
        let line = serde_json::to_string(record)?;
        if let Some(path) = self.get("json-out") {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?;
            writeln!(f, "{line}")?;
        }
        println!("{line}");
        Ok(())
    }
}

fn log(msg: impl AsRef<str>) {
    eprintln!("[peft_bench] {}", msg.as_ref());
}

// ------------------------------------------------------------------------- measurement aids

/// Median, min, max and all values.
fn stats(xs: &[f64]) -> Value {
    let mut s = xs.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    let median = match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => s[n / 2],
        _ => 0.5 * (s[n / 2 - 1] + s[n / 2]),
    };
    json!({"median": median, "min": s.first(), "max": s.last(), "n": n, "all": xs})
}

fn median(xs: &[f64]) -> f64 {
    stats(xs)["median"].as_f64().unwrap_or(f64::NAN)
}

/// Busy (niced time included) and niced jiffies of all CPUs (`/proc/stat`); `None` off Linux.
fn proc_stat() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let vals: Vec<u64> = text
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|v| v.parse().ok())
        .collect();
    if vals.len() < 5 {
        return None;
    }
    let total: u64 = vals.iter().sum();
    Some((total - vals[3] - vals[4], vals[1]))
}

/// User + system jiffies of this process (`/proc/self/stat`).
fn own_jiffies() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After "pid (comm) ": state is field 0, utime field 11, stime field 12.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn loadavg() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Peak resident set size of this process in KiB (`VmHWM`), Linux only.
fn peak_rss_kb() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// How many cores other processes kept busy over a timed region (as the peer's `NoiseMeter`;
/// assumes the usual 100 jiffies per second).
struct NoiseMeter {
    start: Instant,
    sys: Option<(u64, u64)>,
    own: Option<u64>,
    load_before: Option<f64>,
}

impl NoiseMeter {
    fn start() -> Self {
        Self {
            sys: proc_stat(),
            own: own_jiffies(),
            load_before: loadavg(),
            start: Instant::now(),
        }
    }

    fn finish(self) -> (f64, Value) {
        let wall = self.start.elapsed().as_secs_f64();
        let (sys, own) = (proc_stat(), own_jiffies());
        let (foreign, nice, own_cores) = match (self.sys, sys, self.own, own) {
            (Some((b0, n0)), Some((b1, n1)), Some(o0), Some(o1)) if wall > 0.0 => {
                let busy = (b1 - b0) as f64 / 100.0;
                let mine = (o1 - o0) as f64 / 100.0;
                let nice = (n1 - n0) as f64 / 100.0;
                (((busy - mine) / wall).max(0.0), nice / wall, mine / wall)
            }
            _ => (f64::NAN, f64::NAN, f64::NAN),
        };
        let rec = json!({
            "wall_s": wall,
            "own_cores": round3(own_cores),
            "foreign_cores": round3(foreign),
            "foreign_niced_cores": round3(nice),
            "loadavg_before": self.load_before,
            "loadavg_after": loadavg(),
        });
        (wall, rec)
    }
}

fn round3(x: f64) -> Value {
    if x.is_finite() {
        json!((x * 1000.0).round() / 1000.0)
    } else {
        Value::Null
    }
}

fn backend_name(device: &Device) -> String {
    format!("{device:?}")
}

// ---------------------------------------------------------------------------- model + data

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    SeqBn,
    DoubleSeqBn,
    Head,
    Full,
    /// W2 only: HF `BertForSequenceClassification` (pre-trained pooler + linear).
    Base,
}

impl Method {
    fn parse(s: &str) -> Res<Self> {
        Ok(match s {
            "seq_bn" => Self::SeqBn,
            "double_seq_bn" => Self::DoubleSeqBn,
            "head" => Self::Head,
            "full" => Self::Full,
            "base" => Self::Base,
            _ => return Err(format!("unknown method/variant `{s}`").into()),
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::SeqBn => "seq_bn",
            Self::DoubleSeqBn => "double_seq_bn",
            Self::Head => "head",
            Self::Full => "full",
            Self::Base => "base",
        }
    }

    fn training(self) -> TrainingMethod {
        match self {
            Self::SeqBn => TrainingMethod::Adapter {
                config: AdapterConfig::pfeiffer(16.0),
            },
            Self::DoubleSeqBn => TrainingMethod::Adapter {
                config: AdapterConfig::houlsby(16.0),
            },
            Self::Head => TrainingMethod::HeadOnly,
            Self::Full | Self::Base => TrainingMethod::Full,
        }
    }

    /// AdapterHub's head for the AdapterHub methods, HF's pooler head for `full`/`base`
    /// (`BertForSequenceClassification`), as the peer builds them.
    fn pooling(self) -> HeadPooling {
        match self {
            Self::SeqBn | Self::DoubleSeqBn | Self::Head => HeadPooling::DenseTanh,
            Self::Full | Self::Base => HeadPooling::Pooler,
        }
    }

    fn lr(self) -> f64 {
        if self == Self::Full { 2e-5 } else { 1e-3 }
    }
}

/// MiniLM-L6-H384 (all-MiniLM-L6-v2) shapes, used only when no model directory is found.
fn minilm_shape() -> BertConfig {
    BertConfig::new()
        .with_hidden_size(384)
        .with_num_hidden_layers(6)
        .with_num_attention_heads(12)
        .with_intermediate_size(1536)
}

fn bert_config(args: &Args) -> Res<BertConfig> {
    Ok(match args.model_dir() {
        Some(dir) => BertConfig::from_hf_file(dir.join("config.json"))?,
        None => minilm_shape(),
    })
}

/// The classifier for `method` (adapters attached, frozen as the method says), seeded with
/// [`SEED`]. `dropout` overrides every dropout probability (`None`: the config's 0.1).
fn build_model(
    args: &Args,
    method: Method,
    dropout: Option<f64>,
    device: &Device,
) -> Res<(BertClassifier, Value)> {
    device.seed(SEED);
    let mut config = bert_config(args)?;
    if let Some(p) = dropout {
        config = config
            .with_hidden_dropout_prob(p)
            .with_attention_probs_dropout_prob(p);
    }
    let mut bert = config.init(device)?;
    let weights = match args.model_dir() {
        Some(dir) => {
            bert.load_checkpoint(find_checkpoint(&dir)?)?;
            "pretrained"
        }
        None => "random (no model directory)",
    };
    let head = ClassificationHeadConfig::new(config.hidden_size, 2)
        .with_pooling(method.pooling())
        .with_dropout(dropout.unwrap_or(0.1));
    let model = BertClassifier::new(bert, &head, device)?;
    let (model, _, summary) = prepare_model(
        model,
        &method.training(),
        burn_peft::core::DEFAULT_ADAPTER,
        device,
    )?;
    let info = json!({
        "weights": weights,
        "trainable_params": summary.trainable,
        "total_params": summary.total,
        "trainable_tensors": summary.trainable_tensors,
    });
    Ok((model, info))
}

/// Pre-tokenized, pre-padded batches of a workload.
struct Batches {
    batches: Vec<ClassificationBatch>,
    /// Padded and real tokens per batch.
    tokens: Vec<(usize, usize)>,
    source: String,
}

fn batch_from_rows(
    rows: &[Vec<i64>],
    labels: &[i64],
    pad: i64,
    device: &Device,
) -> ClassificationBatch {
    let n = rows.len();
    let len = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut ids = Vec::with_capacity(n * len);
    let mut mask = Vec::with_capacity(n * len);
    for r in rows {
        ids.extend_from_slice(r);
        ids.extend(std::iter::repeat_n(pad, len - r.len()));
        mask.extend(std::iter::repeat_n(1_i64, r.len()));
        mask.extend(std::iter::repeat_n(0_i64, len - r.len()));
    }
    ClassificationBatch {
        input_ids: Tensor::from_data(TensorData::new(ids, [n, len]), device),
        token_type_ids: Tensor::<2, Int>::zeros([n, len], device),
        attention_mask: Tensor::from_data(TensorData::new(mask, [n, len]), device),
        labels: Tensor::from_data(TensorData::new(labels.to_vec(), [n]), device),
    }
}

/// The first `n_rows` rows of `file` (SST-2, file order), tokenized and padded to the longest
/// of each batch of `batch_size`; synthetic batches of `synth_len` tokens without assets.
fn workload_batches(
    args: &Args,
    file: &str,
    n_rows: Option<usize>,
    batch_size: usize,
    synth_len: usize,
    order: BatchOrder,
    device: &Device,
) -> Res<Batches> {
    let tokenizer_file = args.model_dir().map(|d| d.join("tokenizer.json"));
    match (args.data_dir(), tokenizer_file.filter(|f| f.is_file())) {
        (Some(data), Some(tok)) => {
            let mut items = load_glue_tsv(data.join(file), GlueTask::Sst2)?;
            if let Some(n) = n_rows {
                if items.len() < n {
                    return Err(format!("{file} has {} rows, need {n}", items.len()).into());
                }
                items.truncate(n);
            }
            let tokenizer = Arc::new(TextTokenizer::from_file(&tok)?.with_max_len(MAX_LEN)?);
            let encoded = TokenizedDataset::new(&items, &tokenizer)?;
            let batcher = ClassificationBatcher::new(tokenizer);
            let mut batches = Vec::new();
            let mut tokens = Vec::new();
            let lengths: Vec<usize> = encoded.items().iter().map(|i| i.input_ids.len()).collect();
            for plan in batch_plan(&lengths, batch_size, order) {
                let chunk: Vec<_> = plan.iter().map(|&i| encoded.items()[i].clone()).collect();
                let chunk = chunk.as_slice();
                let padded = batcher.pad(chunk);
                let real = padded.attention_mask.iter().filter(|&&m| m == 1).count();
                tokens.push((padded.input_ids.len(), real));
                use burn::data::dataloader::batcher::Batcher;
                batches.push(batcher.batch(chunk.to_vec(), device));
            }
            Ok(Batches {
                batches,
                tokens,
                source: format!("sst2 {file}"),
            })
        }
        _ => {
            let n = n_rows.unwrap_or(872);
            device.seed(SEED);
            let mut batches = Vec::new();
            let mut tokens = Vec::new();
            let mut row = 0usize;
            while row < n {
                let b = batch_size.min(n - row);
                let ids: Tensor<2, Int> = Tensor::random(
                    [b, synth_len],
                    Distribution::Uniform(1000.0, 29000.0),
                    device,
                );
                let data = ids.into_data().convert::<i64>();
                let flat = data.try_to_vec::<i64>().map_err(|e| format!("{e:?}"))?;
                let rows: Vec<Vec<i64>> = flat.chunks(synth_len).map(<[i64]>::to_vec).collect();
                let labels: Vec<i64> = (0..b).map(|i| (i % 2) as i64).collect();
                batches.push(batch_from_rows(&rows, &labels, 0, device));
                tokens.push((b * synth_len, b * synth_len));
                row += b;
            }
            Ok(Batches {
                batches,
                tokens,
                source: format!("synthetic (no data/tokenizer found), length {synth_len}"),
            })
        }
    }
}

fn dropout_flag(args: &Args) -> Res<Option<f64>> {
    match args.get("dropout") {
        None => Ok(None),
        Some(v) => Ok(Some(
            v.parse::<f64>()
                .map_err(|_| format!("--dropout: cannot parse `{v}`"))?,
        )),
    }
}

// ----------------------------------------------------------------------------------- W1

fn train_step(
    task: ClassificationTask,
    optim: &mut burn::optim::ModuleOptimizer,
    lr: f64,
    batch: ClassificationBatch,
) -> Res<(ClassificationTask, f64)> {
    let out = TrainStep::step(&task, batch);
    let task = TrainStep::optimize(task, optim, ModuleLearningRate::from(lr), out.grads);
    // The peer reads `loss.item()` every step; it also makes asynchronous backends finish.
    let loss = out.item.loss.into_scalar::<f64>();
    Ok((task, loss))
}

fn cmd_w1(args: &Args) -> Res<()> {
    let method = Method::parse(args.str_or("method", "seq_bn"))?;
    if method == Method::Base {
        return Err("w1: method must be seq_bn, double_seq_bn, head or full".into());
    }
    let dropout = dropout_flag(args)?;
    let repeats: usize = args.num("repeats", 3)?;
    let warmup: usize = args.num("warmup", 5)?;
    let steps: usize = args.num("steps", 60)?;
    let batch_size: usize = args.num("batch-size", 32)?;
    let device = args.device()?.autodiff();
    let n_rows = (warmup + steps) * batch_size;

    let t0 = Instant::now();
    let data = workload_batches(
        args,
        "train.tsv",
        Some(n_rows),
        batch_size,
        SYNTH_LEN_W1,
        BatchOrder::Input,
        &device,
    )?;
    let tokenize_s = t0.elapsed().as_secs_f64();
    let timed_tokens = &data.tokens[warmup.min(data.tokens.len())..];
    let padded: usize = timed_tokens.iter().map(|t| t.0).sum();
    let real: usize = timed_tokens.iter().map(|t| t.1).sum();
    log(format!(
        "w1 {} dropout {:?}: {} batches from {}, timed padded tokens {padded}",
        method.name(),
        dropout,
        data.batches.len(),
        data.source
    ));

    let optim_config = OptimConfig::new()
        .with_lr(method.lr())
        .with_weight_decay(0.0)
        .with_epsilon(1e-8)
        .with_max_grad_norm(None)
        .with_schedule(Schedule::Constant);
    let mut reps = Vec::new();
    let mut info = Value::Null;
    for r in 0..repeats {
        let b0 = Instant::now();
        let (model, i) = build_model(args, method, dropout, &device)?;
        info = i;
        let build_s = b0.elapsed().as_secs_f64();
        let mut optim = optim_config.optimizer();
        let mut task = ClassificationTask::new(model, StepGuard::new(None, 1, None));
        for batch in &data.batches[..warmup] {
            task = train_step(task, &mut optim, method.lr(), batch.clone())?.0;
        }
        device.sync().map_err(|e| format!("{e:?}"))?;
        let mut step_ms = Vec::new();
        let mut losses = Vec::new();
        let meter = NoiseMeter::start();
        for batch in &data.batches[warmup..] {
            let s0 = Instant::now();
            let (t, loss) = train_step(task, &mut optim, method.lr(), batch.clone())?;
            task = t;
            losses.push(loss);
            step_ms.push(1000.0 * s0.elapsed().as_secs_f64());
        }
        device.sync().map_err(|e| format!("{e:?}"))?;
        let (wall, mut rec) = meter.finish();
        let n_steps = data.batches.len() - warmup;
        let eps = (n_steps * batch_size) as f64 / wall;
        log(format!(
            "w1 {} rep {r}: {eps:.1} ex/s, median step {:.0} ms, loss {:.4} -> {:.4}, foreign {}",
            method.name(),
            median(&step_ms),
            losses.first().copied().unwrap_or(f64::NAN),
            losses.last().copied().unwrap_or(f64::NAN),
            rec["foreign_cores"]
        ));
        if let Some(o) = rec.as_object_mut() {
            o.insert("repeat".into(), json!(r));
            o.insert("build_s".into(), json!(build_s));
            o.insert("examples_per_s".into(), json!(eps));
            o.insert("padded_tokens_per_s".into(), json!(padded as f64 / wall));
            o.insert("median_step_ms".into(), json!(median(&step_ms)));
            o.insert("first_loss".into(), json!(losses.first()));
            o.insert("last_loss".into(), json!(losses.last()));
        }
        reps.push(rec);
    }
    let eps: Vec<f64> = reps
        .iter()
        .filter_map(|r| r["examples_per_s"].as_f64())
        .collect();
    let ms: Vec<f64> = reps
        .iter()
        .filter_map(|r| r["median_step_ms"].as_f64())
        .collect();
    let record = json!({
        "impl": "burn-peft",
        "workload": "w1",
        "method": method.name(),
        "dropout": dropout.unwrap_or(0.1),
        "backend": backend_name(&device),
        "data": data.source,
        "model": info,
        "lr": method.lr(),
        "batch_size": batch_size,
        "warmup_steps": warmup,
        "timed_steps": data.batches.len().saturating_sub(warmup),
        "timed_padded_tokens": padded,
        "timed_real_tokens": real,
        "tokenize_s": tokenize_s,
        "examples_per_s": stats(&eps),
        "median_step_ms": median(&ms),
        "repeats": reps,
        "peak_rss_kb": peak_rss_kb(),
    });
    println!(
        "W1 {} (dropout {}): {:.1} examples/s, {:.0} ms/step, {padded} padded tokens in the timed steps",
        method.name(),
        dropout.unwrap_or(0.1),
        median(&eps),
        median(&ms)
    );
    args.emit(&record)
}

// ----------------------------------------------------------------------------------- W2

fn cmd_w2(args: &Args) -> Res<()> {
    let variant = Method::parse(args.str_or("variant", "base"))?;
    if variant == Method::Full {
        return Err("w2: variant must be base, head, seq_bn or double_seq_bn".into());
    }
    let passes: usize = args.num("passes", 3)?;
    let batch_size: usize = args.num("batch-size", 64)?;
    // Inference device: no autodiff, so dropout is off (the peer's eval + inference_mode).
    let device = args.device()?;
    // `--order by_length`: length-grouped batches (reported apart, never in a ratio).
    let order = match args.str_or("order", "input") {
        "input" => BatchOrder::Input,
        "by_length" | "by-length" => BatchOrder::ByLength,
        other => return Err(format!("--order: `{other}` is not input or by_length").into()),
    };
    let data = workload_batches(
        args,
        "dev.tsv",
        None,
        batch_size,
        SYNTH_LEN_W2,
        order,
        &device,
    )?;
    let n_examples: usize = data.batches.iter().map(|b| b.labels.dims()[0]).sum();
    let padded: usize = data.tokens.iter().map(|t| t.0).sum();
    let (model, info) = build_model(args, variant, None, &device)?;
    let task = ClassificationTask::new(model, StepGuard::default());
    let one_pass = || -> Res<()> {
        for batch in &data.batches {
            let out = InferenceStep::step(&task, batch.clone());
            let _logits = out.output.into_data();
        }
        Ok(())
    };
    one_pass()?; // untimed warm-up pass
    let mut reps = Vec::new();
    for p in 0..passes {
        let meter = NoiseMeter::start();
        one_pass()?;
        device.sync().map_err(|e| format!("{e:?}"))?;
        let (wall, mut rec) = meter.finish();
        let eps = n_examples as f64 / wall;
        log(format!(
            "w2 {} pass {p}: {eps:.1} ex/s ({wall:.2} s)",
            variant.name()
        ));
        if let Some(o) = rec.as_object_mut() {
            o.insert("pass".into(), json!(p));
            o.insert("examples_per_s".into(), json!(eps));
        }
        reps.push(rec);
    }
    let eps: Vec<f64> = reps
        .iter()
        .filter_map(|r| r["examples_per_s"].as_f64())
        .collect();
    println!(
        "W2 {}: {:.1} examples/s over {n_examples} examples ({padded} padded tokens)",
        variant.name(),
        median(&eps)
    );
    args.emit(&json!({
        "impl": "burn-peft",
        "workload": "w2",
        "variant": variant.name(),
        "order": if order == BatchOrder::ByLength { "by_length" } else { "input" },
        "backend": backend_name(&device),
        "data": data.source,
        "model": info,
        "batch_size": batch_size,
        "n_examples": n_examples,
        "padded_tokens": padded,
        "examples_per_s": stats(&eps),
        "passes": reps,
    }))
}

// ----------------------------------------------------------------------------------- W3

fn cmd_w3(args: &Args) -> Res<()> {
    let method = Method::parse(args.str_or("method", "seq_bn"))?;
    let tries: usize = args.num("tries", 1)?;
    let exe = std::env::current_exe()?;
    let mut runs = Vec::new();
    for t in 0..tries {
        let mut cmd = std::process::Command::new(&exe);
        cmd.args(["w1", "--method", method.name(), "--repeats", "1"]);
        for flag in ["device", "model", "data", "dropout"] {
            if let Some(v) = args.get(flag) {
                cmd.arg(format!("--{flag}={v}"));
            }
        }
        let out = cmd.stderr(std::process::Stdio::inherit()).output()?;
        if !out.status.success() {
            return Err(format!("w3 child failed: {}", out.status).into());
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let last = stdout
            .lines()
            .rev()
            .find(|l| l.starts_with('{'))
            .ok_or("w3: the child printed no JSON line")?;
        let child: Value = serde_json::from_str(last)?;
        let kb = child["peak_rss_kb"]
            .as_f64()
            .ok_or("w3: the child could not read its peak RSS (/proc/self/status VmHWM)")?;
        log(format!(
            "w3 {} try {t}: peak RSS {:.1} MB",
            method.name(),
            kb / 1024.0
        ));
        runs.push(
            json!({"try": t, "max_rss_kb": kb, "max_rss_mb": kb / 1024.0,
                         "examples_per_s": child["examples_per_s"]["median"]}),
        );
    }
    let mb: Vec<f64> = runs
        .iter()
        .filter_map(|r| r["max_rss_mb"].as_f64())
        .collect();
    println!("W3 {}: peak RSS {:.1} MB", method.name(), median(&mb));
    args.emit(&json!({
        "impl": "burn-peft",
        "workload": "w3",
        "method": method.name(),
        "backend": backend_name(&args.device()?),
        "what": "VmHWM of a child process running `w1 --repeats 1`",
        "max_rss_mb": stats(&mb),
        "runs": runs,
    }))
}

// ----------------------------------------------------------------------------- overhead

#[derive(Clone, Copy)]
enum LayerVariant {
    Plain,
    Adapter(Method),
}

impl LayerVariant {
    fn name(self) -> &'static str {
        match self {
            Self::Plain => "plain",
            Self::Adapter(m) => m.name(),
        }
    }
}

fn bert_layer(config: &BertConfig, variant: LayerVariant, device: &Device) -> Res<BertLayer> {
    device.seed(SEED);
    let mut layer = BertLayer::new(config, device);
    if let LayerVariant::Adapter(m) = variant {
        let TrainingMethod::Adapter { config: ac } = m.training() else {
            return Err("overhead: not an adapter method".into());
        };
        let d = config.hidden_size;
        let width = ac.width_for_layer(0, d)?;
        let wiring = ac.placement.wiring();
        let name = burn_peft::core::DEFAULT_ADAPTER;
        let setup = Some(burn_peft::core::Setup::single(name));
        for site in &ac.placement.sites {
            let adapter = ac.bottleneck.init(d, width, wiring, device)?;
            let slot = match site {
                burn_peft::core::AdapterSite::AttentionOutput => {
                    &mut layer.attention.output.adapters
                }
                burn_peft::core::AdapterSite::FeedForwardOutput => &mut layer.output.adapters,
            };
            slot.insert(name, ac.clone(), adapter);
            slot.set_active(setup.clone());
        }
    }
    Ok(freeze_except(layer, &Trainable::adapters())?)
}

fn cmd_overhead(args: &Args) -> Res<()> {
    let reps: usize = args.num("reps", 30)?;
    let rounds: usize = args.num("rounds", 5)?;
    let batch: usize = args.num("batch-size", 32)?;
    let seq: usize = args.num("seq", SYNTH_LEN_W1)?;
    let config = bert_config(args)?;
    let base = args.device()?;
    let variants = [
        LayerVariant::Plain,
        LayerVariant::Adapter(Method::SeqBn),
        LayerVariant::Adapter(Method::DoubleSeqBn),
    ];
    let mut results = serde_json::Map::new();
    for (mode, device) in [("infer", base.clone()), ("train", base.clone().autodiff())] {
        let layers: Vec<BertLayer> = variants
            .iter()
            .map(|&v| bert_layer(&config, v, &device))
            .collect::<Res<_>>()?;
        device.seed(SEED + 1);
        let x: Tensor<3> = Tensor::random(
            [batch, seq, config.hidden_size],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        let bias: Tensor<4> = Tensor::zeros([batch, 1, 1, seq], &device);
        let run = |layer: &BertLayer| {
            if mode == "train" {
                // The backward of a middle layer in adapter training: gradients flow to the
                // input (and into the adapter weights), not into the frozen weights.
                let x = x.clone().require_grad();
                let y = layer.forward(x.clone(), bias.clone());
                let grads = y.sum().backward();
                let _ = x.grad(&grads).map(|g| g.into_data());
            } else {
                let _ = layer.forward(x.clone(), bias.clone()).into_data();
            }
        };
        for layer in &layers {
            for _ in 0..3 {
                run(layer);
            }
        }
        let mut times: Vec<Vec<f64>> = vec![Vec::new(); layers.len()];
        for r in 0..rounds {
            // Rotate the order every round against drift.
            for k in 0..layers.len() {
                let i = (k + r) % layers.len();
                let t0 = Instant::now();
                for _ in 0..reps {
                    run(&layers[i]);
                }
                times[i].push(1000.0 * t0.elapsed().as_secs_f64() / reps as f64);
            }
        }
        let plain = median(&times[0]);
        let mut m = serde_json::Map::new();
        for (i, v) in variants.iter().enumerate() {
            let ms = median(&times[i]);
            log(format!(
                "overhead {mode} {}: {ms:.2} ms/forward, ratio {:.3}",
                v.name(),
                ms / plain
            ));
            m.insert(
                v.name().into(),
                json!({"ms": stats(&times[i]), "ratio_vs_plain": ms / plain}),
            );
        }
        results.insert(mode.into(), Value::Object(m));
    }
    for mode in ["infer", "train"] {
        for v in ["seq_bn", "double_seq_bn"] {
            println!(
                "overhead {mode} {v}: {:.3}x the plain layer",
                results[mode][v]["ratio_vs_plain"]
                    .as_f64()
                    .unwrap_or(f64::NAN)
            );
        }
    }
    args.emit(&json!({
        "impl": "burn-peft",
        "workload": "overhead",
        "backend": backend_name(&base),
        "input": [batch, seq, config.hidden_size],
        "what": "one BERT layer; infer = forward without autodiff, train = forward + backward to the input (base frozen)",
        "reps_per_round": reps,
        "rounds": rounds,
        "results": results,
    }))
}

// ------------------------------------------------------------------------- params + sizes

fn cmd_params(args: &Args) -> Res<()> {
    let device = args.device()?;
    let mut out = serde_json::Map::new();
    for m in [
        Method::SeqBn,
        Method::DoubleSeqBn,
        Method::Head,
        Method::Full,
    ] {
        let (_, info) = build_model(args, m, None, &device)?;
        println!(
            "params {}: {} trainable of {}",
            m.name(),
            info["trainable_params"],
            info["total_params"]
        );
        out.insert(m.name().into(), info);
    }
    args.emit(&json!({"impl": "burn-peft", "workload": "params", "methods": out}))
}

fn dir_listing(dir: &Path) -> Res<Value> {
    let mut files = serde_json::Map::new();
    let mut total = 0u64;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let len = entry.metadata()?.len();
        total += len;
        files.insert(entry.file_name().to_string_lossy().into_owned(), json!(len));
    }
    Ok(json!({"total_bytes": total, "files": files}))
}

fn cmd_sizes(args: &Args) -> Res<()> {
    let device = args.device()?;
    let tmp = tempfile::tempdir()?;
    let mut entries = serde_json::Map::new();
    for m in [Method::SeqBn, Method::DoubleSeqBn, Method::Head] {
        let (model, _) = build_model(args, m, None, &device)?;
        let method = match m.training() {
            TrainingMethod::Adapter { config } => AdapterMethod::Bottleneck(config),
            _ => AdapterMethod::HeadOnly,
        };
        let first = if m == Method::Head {
            "only"
        } else {
            "with_head"
        };
        let mut variants = vec![(
            first,
            m.training().trainable(burn_peft::core::DEFAULT_ADAPTER),
            true,
        )];
        if m != Method::Head {
            variants.push(("no_head", Trainable::adapters(), false));
        }
        for (suffix, trainable, head) in variants {
            let mut file = AdapterFile::new(method.clone(), model.base_info(), &trainable);
            if head {
                file = file.with_head(model.head_info());
            }
            let name = format!("{}_{suffix}", m.name());
            let dir = tmp.path().join(&name);
            save_adapter(&model, &dir, &file)?;
            let listing = dir_listing(&dir)?;
            println!("sizes {name}: {} bytes", listing["total_bytes"]);
            entries.insert(name, listing);
        }
    }
    let base = args
        .model_dir()
        .and_then(|d| find_checkpoint(&d).ok())
        .and_then(|p| std::fs::metadata(p).ok())
        .map(|m| m.len());
    args.emit(&json!({
        "impl": "burn-peft",
        "workload": "sizes",
        "entries": entries,
        "original_model_bytes": base,
    }))
}

// ------------------------------------------------------------------------------- report

fn read_jsonl(path: &Path) -> Res<Vec<Value>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text
        .lines()
        .filter(|l| l.trim_start().starts_with('{'))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

fn find<'a>(
    records: &'a [Value],
    workload: &str,
    key: &str,
    value: &str,
    dropout: Option<f64>,
) -> Option<&'a Value> {
    records.iter().rev().find(|r| {
        r["workload"] == workload
            && r[key] == value
            && dropout.is_none_or(|d| r["dropout"].as_f64().is_some_and(|x| (x - d).abs() < 1e-9))
    })
}

fn fmt_stat(v: &Value) -> String {
    match (v["median"].as_f64(), v["min"].as_f64(), v["max"].as_f64()) {
        (Some(m), Some(lo), Some(hi)) if v["n"].as_u64().unwrap_or(1) > 1 => {
            format!("{m:.1} ({lo:.1}–{hi:.1})")
        }
        (Some(m), _, _) => format!("{m:.1}"),
        _ => "–".into(),
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "–".into(),
    }
}

fn foreign(r: Option<&Value>, list: &str) -> String {
    let Some(r) = r else { return "–".into() };
    let max_of = |key: &str| {
        r[list]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x[key].as_f64())
            .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))))
    };
    match (max_of("foreign_cores"), max_of("foreign_niced_cores")) {
        (Some(f), Some(n)) if n >= 0.01 => format!("{f:.2} ({n:.2} niced)"),
        (Some(f), _) => format!("{f:.2}"),
        _ => "–".into(),
    }
}

fn shell(cmd: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn machine_info(ours: &[Value]) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|r| r.trim_start_matches([' ', '\t', ':']).to_string())
            })
        })
        .unwrap_or_else(|| "unknown".into());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("MemTotal:")
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            })
        })
        .map_or("unknown".into(), |kb| {
            format!("{:.1} GiB", kb / 1024.0 / 1024.0)
        });
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let commit =
        shell("git", &["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty = shell("git", &["status", "--porcelain", "--untracked-files=no"])
        .is_some_and(|s| !s.is_empty());
    let date = shell("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_else(|| "unknown".into());
    let backend = ours
        .iter()
        .find_map(|r| r["backend"].as_str())
        .unwrap_or("unknown");
    format!(
        "- date: {date}\n- git commit: {commit}{}\n- CPU: {cpu}; nproc {nproc}; RAM {mem}\n- load average when the report was written: {}\n- burn-peft backend: `{backend}` (burn 0.22.1, release profile)\n",
        if dirty {
            " (with uncommitted changes)"
        } else {
            ""
        },
        loadavg().map_or("unknown".into(), |l| format!("{l:.2}")),
    )
}

fn cmd_report(args: &Args) -> Res<()> {
    let ours = read_jsonl(Path::new(
        args.get("ours").ok_or("report: --ours FILE is required")?,
    ))?;
    let torch = match args.get("torch") {
        Some(p) if Path::new(p).is_file() => read_jsonl(Path::new(p))?,
        _ => Vec::new(),
    };
    let same_run = !torch.is_empty();
    let peer_dir = args
        .get("peer")
        .map(PathBuf::from)
        .or_else(|| args.assets().map(|a| a.join(PEER_REL)))
        .filter(|d| d.is_dir());
    let peer = |rel: &str| peer_dir.as_ref().and_then(|d| read_json(&d.join(rel)));
    // The PyTorch statistic `key`: from this run, else (no PyTorch side at all) the stored peer's.
    let torch_stat = |t: Option<&Value>, stored: &Option<Value>, key: &str| -> Option<Value> {
        t.map(|t| t[key].clone()).or_else(|| {
            (!same_run)
                .then(|| stored.as_ref().map(|s| s[key].clone()))
                .flatten()
        })
    };
    let torch_versions = torch.iter().find_map(|r| r.get("versions")).cloned();

    let mut md = String::new();
    writeln!(
        md,
        "# burn-peft vs PyTorch + AdapterHub: benchmark results\n"
    )?;
    writeln!(
        md,
        "Generated by `scripts/bench.sh` (`cargo bench --bench peft_bench` and `scripts/bench_torch.py`).\n"
    )?;
    writeln!(md, "## Machine\n\n{}", machine_info(&ours))?;
    if let Some(v) = &torch_versions {
        writeln!(md, "- PyTorch side (same run): {}\n", v)?;
    }
    if same_run {
        writeln!(
            md,
            "The PyTorch numbers come from `scripts/bench_torch.py` run in the same invocation, one workload after the other (never overlapping). Ratios are **ours / PyTorch**: for throughput above 1 means burn-peft is faster; for memory and per-step time above 1 means burn-peft uses more.\n"
        )?;
    } else {
        writeln!(
            md,
            "**No PyTorch in this run** (`python3 -c 'import torch, adapters'` failed): the PyTorch column holds the peer's *stored* numbers from `$PEFT_ASSETS_DIR/bench/peer/results` — stored, not same run, so ratios are only indicative. Ratios are **ours / PyTorch**.\n"
        )?;
    }
    let tcol = if same_run {
        "PyTorch (same run)"
    } else {
        "PyTorch (stored, not same run)"
    };

    // W1
    writeln!(
        md,
        "## W1: training throughput (examples/s, median (min–max) over repeats)\n"
    )?;
    writeln!(
        md,
        "MiniLM-L6, batch 32, max length 64, dynamic padding, train.tsv rows 160..2079 in file order (60 timed steps after 5 warm-up steps), AdamW constant LR, no weight decay. Tokenization happens before the clock starts in both.\n"
    )?;
    writeln!(
        md,
        "| method | dropout | ours ex/s | ours ms/step | {tcol} ex/s | ms/step | ours / PyTorch (throughput) | stored peer ex/s | timed padded tokens (ours / torch) | max cores used by other processes (ours / torch) |"
    )?;
    writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")?;
    for m in ["seq_bn", "double_seq_bn", "head", "full"] {
        for d in [0.1, 0.0] {
            let o = find(&ours, "w1", "method", m, Some(d));
            let t = find(&torch, "w1", "method", m, Some(d));
            let stored = if d == 0.0 {
                peer(&format!("nodropout/w1_train_{m}_dropout0.json"))
            } else {
                peer(&format!("w1_train_{m}.json"))
            };
            if o.is_none() && t.is_none() {
                continue;
            }
            let stored_eps = stored.as_ref().map(|s| &s["examples_per_s"]);
            let (t_eps, t_ms, t_tok) = match t {
                Some(t) => (
                    fmt_stat(&t["examples_per_s"]),
                    t["median_step_ms"].as_f64(),
                    t["timed_padded_tokens"].as_u64(),
                ),
                None if !same_run => (
                    stored_eps.map_or("–".into(), fmt_stat),
                    stored.as_ref().and_then(|s| {
                        s["repeats"].as_array().map(|r| {
                            median(
                                &r.iter()
                                    .filter_map(|x| x["median_step_ms"].as_f64())
                                    .collect::<Vec<_>>(),
                            )
                        })
                    }),
                    stored
                        .as_ref()
                        .and_then(|s| s["timed_padded_tokens"].as_u64()),
                ),
                None => ("–".into(), None, None),
            };
            let t_med = torch_stat(t, &stored, "examples_per_s").and_then(|s| s["median"].as_f64());
            writeln!(
                md,
                "| {m} | {d} | {} | {} | {t_eps} | {} | {} | {} | {} / {} | {} / {} |",
                o.map_or("–".into(), |o| fmt_stat(&o["examples_per_s"])),
                o.and_then(|o| o["median_step_ms"].as_f64())
                    .map_or("–".into(), |x| format!("{x:.0}")),
                t_ms.map_or("–".into(), |x| format!("{x:.0}")),
                ratio(
                    o.and_then(|o| o["examples_per_s"]["median"].as_f64()),
                    t_med
                ),
                stored_eps.map_or("–".into(), fmt_stat),
                o.and_then(|o| o["timed_padded_tokens"].as_u64())
                    .map_or("–".into(), |x| x.to_string()),
                t_tok.map_or("–".into(), |x| x.to_string()),
                foreign(o, "repeats"),
                foreign(t, "repeats"),
            )?;
        }
    }
    // W2
    writeln!(
        md,
        "\n## W2: inference throughput (examples/s over dev.tsv, 872 rows, batch 64, eval mode)\n"
    )?;
    writeln!(
        md,
        "| variant | ours ex/s | {tcol} ex/s | ours / PyTorch (throughput) | stored peer ex/s | padded tokens (ours / torch) |"
    )?;
    writeln!(md, "|---|---:|---:|---:|---:|---:|")?;
    for v in ["base", "head", "seq_bn", "double_seq_bn"] {
        let o = find(&ours, "w2", "variant", v, None);
        let t = find(&torch, "w2", "variant", v, None);
        if o.is_none() && t.is_none() {
            continue;
        }
        let stored = peer(&format!("w2_infer_{v}.json"));
        let t_stat = torch_stat(t, &stored, "examples_per_s");
        writeln!(
            md,
            "| {v} | {} | {} | {} | {} | {} / {} |",
            o.map_or("–".into(), |o| fmt_stat(&o["examples_per_s"])),
            t_stat.as_ref().map_or("–".into(), fmt_stat),
            ratio(
                o.and_then(|o| o["examples_per_s"]["median"].as_f64()),
                t_stat.as_ref().and_then(|s| s["median"].as_f64())
            ),
            stored
                .as_ref()
                .map_or("–".into(), |s| fmt_stat(&s["examples_per_s"])),
            o.and_then(|o| o["padded_tokens"].as_u64())
                .map_or("–".into(), |x| x.to_string()),
            t.and_then(|t| t["padded_tokens"].as_u64())
                .or_else(|| stored.as_ref().and_then(|s| s["padded_tokens"].as_u64()))
                .map_or("–".into(), |x| x.to_string()),
        )?;
    }
    // W3
    writeln!(
        md,
        "\n## W3: peak RSS of a process running W1 (MB = KiB / 1024)\n"
    )?;
    writeln!(
        md,
        "| method | ours MB | {tcol} MB | ours / PyTorch (memory) | stored peer MB |"
    )?;
    writeln!(md, "|---|---:|---:|---:|---:|")?;
    for m in ["seq_bn", "double_seq_bn", "head", "full"] {
        let o = find(&ours, "w3", "method", m, None);
        let t = find(&torch, "w3", "method", m, None);
        if o.is_none() && t.is_none() {
            continue;
        }
        let stored = peer(&format!("w3_rss_train_{m}.json"));
        let t_stat = torch_stat(t, &stored, "max_rss_mb");
        writeln!(
            md,
            "| {m} | {} | {} | {} | {} |",
            o.map_or("–".into(), |o| fmt_stat(&o["max_rss_mb"])),
            t_stat.as_ref().map_or("–".into(), fmt_stat),
            ratio(
                o.and_then(|o| o["max_rss_mb"]["median"].as_f64()),
                t_stat.as_ref().and_then(|s| s["median"].as_f64())
            ),
            stored
                .as_ref()
                .map_or("–".into(), |s| fmt_stat(&s["max_rss_mb"])),
        )?;
    }
    // Overhead
    if let Some(o) = ours.iter().rev().find(|r| r["workload"] == "overhead") {
        let t = torch.iter().rev().find(|r| r["workload"] == "overhead");
        writeln!(
            md,
            "\n## Adapter overhead: one BERT layer with adapters / the same layer without (time ratio; 1.00 = free)\n"
        )?;
        writeln!(
            md,
            "Input {}; {}.\n",
            o["input"],
            o["what"].as_str().unwrap_or("")
        )?;
        writeln!(
            md,
            "| mode | adapter | ours ratio | ours ms (plain → adapter) | PyTorch ratio | PyTorch ms (plain → adapter) |"
        )?;
        writeln!(md, "|---|---|---:|---:|---:|---:|")?;
        for mode in ["infer", "train"] {
            for v in ["seq_bn", "double_seq_bn"] {
                let cell = |r: Option<&Value>| -> (String, String) {
                    let Some(r) = r else {
                        return ("–".into(), "–".into());
                    };
                    let res = &r["results"][mode];
                    match (
                        res[v]["ratio_vs_plain"].as_f64(),
                        res["plain"]["ms"]["median"].as_f64(),
                        res[v]["ms"]["median"].as_f64(),
                    ) {
                        (Some(x), Some(p), Some(a)) => {
                            (format!("{x:.3}"), format!("{p:.2} → {a:.2}"))
                        }
                        _ => ("–".into(), "–".into()),
                    }
                };
                let (or, oms) = cell(Some(o));
                let (tr, tms) = cell(t);
                writeln!(md, "| {mode} | {v} | {or} | {oms} | {tr} | {tms} |")?;
            }
        }
    }
    // Params
    if let Some(o) = ours.iter().rev().find(|r| r["workload"] == "params") {
        let p = peer("params.json");
        writeln!(
            md,
            "\n## Parameter counts (ours vs the peer's `params.json`)\n"
        )?;
        writeln!(
            md,
            "| method | ours trainable | peer trainable | ours total | peer total |"
        )?;
        writeln!(md, "|---|---:|---:|---:|---:|")?;
        for m in ["seq_bn", "double_seq_bn", "head", "full"] {
            let om = &o["methods"][m];
            let pm = p.as_ref().map(|p| &p[m]);
            writeln!(
                md,
                "| {m} | {} | {} | {} | {} |",
                om["trainable_params"],
                pm.map_or(Value::Null, |p| p["trainable"].clone()),
                om["total_params"],
                pm.map_or(Value::Null, |p| p["total"].clone())
            )?;
        }
    }
    // Sizes
    if let Some(o) = ours.iter().rev().find(|r| r["workload"] == "sizes") {
        let p = peer("sizes.json");
        writeln!(
            md,
            "\n## Saved adapter size (bytes; ours: `adapter_model.safetensors` + `adapter_config.json`; peer: AdapterHub `save_adapter`/`save_head`, safetensors)\n"
        )?;
        writeln!(
            md,
            "| what | ours total | ours weights file | peer total | peer weights files | ours / peer |"
        )?;
        writeln!(md, "|---|---:|---:|---:|---:|---:|")?;
        for (ours_name, peer_name) in [
            ("seq_bn_with_head", "seq_bn_with_head_safetensors"),
            ("seq_bn_no_head", "seq_bn_no_head_safetensors"),
            (
                "double_seq_bn_with_head",
                "double_seq_bn_with_head_safetensors",
            ),
            ("double_seq_bn_no_head", "double_seq_bn_no_head_safetensors"),
            ("head_only", "ah_head_only_safetensors"),
        ] {
            let oe = &o["entries"][ours_name];
            let pe = p
                .as_ref()
                .map(|p| p["entries"][peer_name].clone())
                .unwrap_or(Value::Null);
            let peer_weights: Option<u64> = pe["files"].as_object().map(|f| {
                f.iter()
                    .filter(|(k, _)| k.ends_with(".safetensors"))
                    .filter_map(|(_, v)| v.as_u64())
                    .sum()
            });
            writeln!(
                md,
                "| {ours_name} | {} | {} | {} | {} | {} |",
                oe["total_bytes"],
                oe["files"]["adapter_model.safetensors"],
                pe["total_bytes"],
                peer_weights.map_or("–".into(), |x| x.to_string()),
                ratio(oe["total_bytes"].as_f64(), pe["total_bytes"].as_f64()),
            )?;
        }
    }
    writeln!(md, "\n## Notes\n")?;
    let notes: Vec<String> = ours
        .iter()
        .filter_map(|r| {
            let src = r["data"].as_str().unwrap_or("");
            let w = r["model"]["weights"].as_str().unwrap_or("");
            (src.starts_with("synthetic") || w.starts_with("random")).then(|| {
                format!(
                    "- {} {}: data `{src}`, weights `{w}` — not comparable with the peer.",
                    r["workload"],
                    r["method"].as_str().or(r["variant"].as_str()).unwrap_or("")
                )
            })
        })
        .collect();
    for n in notes {
        writeln!(md, "{n}")?;
    }
    if let Some(extra) = args.get("notes").filter(|p| Path::new(p).is_file()) {
        md.push_str(&std::fs::read_to_string(extra)?);
    }
    print!("{md}");
    if let Some(out) = args.get("out") {
        if let Some(parent) = Path::new(out).parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(out, &md)?;
        log(format!("wrote {out}"));
    }
    Ok(())
}

// --------------------------------------------------------------------------------- main

fn main() -> Res<()> {
    // Reuse freed tensor buffers instead of page-faulting new ones (CPU backends, glibc).
    burn_peft::device::tune_host_allocator();
    let args = Args::parse()?;
    match args.cmd.as_str() {
        "w1" => cmd_w1(&args),
        "w2" => cmd_w2(&args),
        "w3" => cmd_w3(&args),
        "overhead" => cmd_overhead(&args),
        "params" => cmd_params(&args),
        "sizes" => cmd_sizes(&args),
        "report" => cmd_report(&args),
        other => Err(format!("unknown command `{other}` (see --help)").into()),
    }
}
