//! `peft_bench`: burn-peft on the PyTorch peer benchmark's workloads (MiniLM-L6 on SST-2).
//!
//! The workloads are those of the peer's `bench_peer.py` (see `scripts/bench_torch.py` for our
//! own PyTorch side); `scripts/bench.sh` runs both and writes `bench/results.md`.
//!
//! ```text
//! cargo bench --bench peft_bench [--features wgpu] -- <command> [flags]
//!   w1 --method seq_bn|double_seq_bn|head|full|lora [--dropout 0.1] [--repeats 3]
//!                        training throughput: batch 32, max length 64, dynamic padding,
//!                        train.tsv rows 0..2079 in file order, 5 warm-up + 60 timed steps,
//!                        AdamW (constant lr, no weight decay, eps 1e-8), cross-entropy
//!   w2 --variant base|head|seq_bn|double_seq_bn|lora|lora_merged [--passes 3] [--order input|by_length]
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

mod files;
mod measure;
mod report;
mod setup;
mod workloads;

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
    AdapterConfig, AdapterFile, AdapterMethod, LinearTarget, LoraConfig, Trainable, freeze_except,
    merge_adapter, save_adapter,
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
use files::*;
use measure::*;
use report::*;
use serde_json::{Value, json};
use setup::*;
use workloads::*;

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
        /// seq_bn, double_seq_bn, head, full or lora [default: seq_bn]
        #[arg(long, value_parser = ["seq_bn", "double_seq_bn", "head", "full", "lora"])]
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
        /// base, head, seq_bn, double_seq_bn, lora or lora_merged [default: base]
        #[arg(long, value_parser = ["base", "head", "seq_bn", "double_seq_bn", "lora", "lora_merged"])]
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
