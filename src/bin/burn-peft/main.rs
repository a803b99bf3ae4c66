//! `burn-peft`: train, evaluate, predict with, inspect and convert adapters, and generate with
//! GPT-2, without writing Rust.
//!
//! ```text
//! burn-peft train --task sst2 --out runs/sst2            # GLUE task (downloaded once)
//! burn-peft train --task stsb --data glue/STS-B --out runs/stsb   # regression: Pearson/Spearman
//! burn-peft train --train train.csv --valid dev.csv --label-column sentiment --out runs/mine
//! burn-peft eval --adapter runs/sst2/adapter --adapter hub-dir --task sst2
//! echo "a gripping film" | burn-peft predict --adapter runs/sst2/adapter
//! burn-peft inspect runs/sst2/adapter
//! burn-peft convert runs/sst2/adapter hub-dir --to adapterhub
//! burn-peft convert runs/sst2-lora/adapter peft-dir --to peft   # LoRA, --head-pooling pooler
//! burn-peft generate --model gpt2 --prompt "Once upon a time"
//! ```
//!
//! Exit codes: 0 success; 1 a failure while working (I/O, model, data, training); 2 an invalid
//! command line (unknown flag, bad value, missing file, incompatible flags), reported before
//! anything is loaded or downloaded.

mod common;
mod eval;
mod generate;
mod inspect;
mod stsb;
mod train;

use std::process::ExitCode;

use burn_peft::cli::{EXIT_FAILURE, EXIT_USAGE};
use clap::{Parser, Subcommand};

/// Parameter-efficient fine-tuning for Burn: train, evaluate, predict, inspect, convert,
/// generate.
#[derive(Parser, Debug)]
#[command(
    name = "burn-peft",
    version,
    after_help = "Exit codes: 0 success; 1 failure while working (I/O, model, data, training); \
                  2 invalid command line (nothing was loaded or downloaded)."
)]
struct Cli {
    /// Print no progress on stderr (errors still go there)
    #[arg(long, short, global = true)]
    quiet: bool,
    /// Print the result as JSON on stdout (predict always writes JSON Lines)
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train an adapter (or head, or the whole model) on a GLUE task (stsb: regression) or your own data
    Train(Box<train::TrainCmd>),
    /// Evaluate one or more saved adapters on one loaded base: a row each (accuracy; Pearson and
    /// Spearman for --task stsb)
    Eval(eval::EvalCmd),
    /// Predict labels and probabilities (or a regression head's score) for text lines (JSON Lines out)
    Predict(eval::PredictCmd),
    /// Describe an adapter directory (ours, AdapterHub's or PEFT's)
    Inspect(inspect::InspectCmd),
    /// Convert an adapter directory between our format, AdapterHub's and PEFT's (LoRA)
    Convert(inspect::ConvertCmd),
    /// Continue a prompt with GPT-2, optionally with an adapter
    Generate(generate::GenerateCmd),
}

fn main() -> ExitCode {
    // Reuse freed tensor buffers instead of page-faulting new ones (CPU backends, glibc).
    burn_peft::device::tune_host_allocator();
    let cli: Cli = burn_peft::cli::parse_or_exit();
    let out = common::Output {
        quiet: cli.quiet,
        json: cli.json,
    };
    let result = match cli.command {
        Command::Train(c) => train::run(*c, &out),
        Command::Eval(c) => eval::run_eval(c, &out),
        Command::Predict(c) => eval::run_predict(c, &out),
        Command::Inspect(c) => inspect::run_inspect(c, &out),
        Command::Convert(c) => inspect::run_convert(c, &out),
        Command::Generate(c) => generate::run(c, &out),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(common::CmdError::Usage(m)) => {
            eprintln!("error: {m}");
            ExitCode::from(EXIT_USAGE)
        }
        Err(common::CmdError::Failed(e)) => {
            let message = e.to_string().replace('\n', " ");
            eprintln!("error: {message}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}
