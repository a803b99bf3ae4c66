//! Two task adapters on one frozen base, a mixed batch routed per example, then AdapterFusion.
//!
//! ```text
//! cargo run --release --example multi_task -- [flags]
//! ```
//!
//! 1. Trains a Pfeiffer adapter and head named after task A (SST-2), then one named after
//!    task B (a second GLUE task), on the same loaded base: training B freezes A.
//! 2. Evaluates each on its dev set, then the two dev sets interleaved in mixed batches where
//!    every example is routed to its own task's adapter and head (`Setup::Route`), and checks
//!    that the mixed run equals running each task alone.
//! 3. Adds an AdapterFusion layer over both adapters and trains it (with a fresh head) on task A,
//!    the adapters frozen (AdapterHub's `train_adapter_fusion`).
//!
//! Flags (all optional; `--help` lists them with their defaults):
//! - `--model DIR|HUB_ID` (default `sentence-transformers/all-MiniLM-L6-v2`), `--device NAME`
//! - `--data-a DIR`: SST-2 (`train.tsv`, `dev.tsv`; default: download GLUE SST-2)
//! - `--task-b cola|sst2|mrpc|qqp|stsb|mnli|qnli|rte|wnli` (default `mrpc`), `--data-b DIR`
//!   (default: download it), `--name-b NAME` (default: the task's name)
//! - `--max-steps N` (batches per epoch, default 200), `--batch-size N` (32), `--lr F` (1e-3),
//!   `--max-len N` (64), `--seed N` (42), `--out DIR` (default `runs/multi-task`), `--overwrite`

mod common;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use burn::data::dataloader::batcher::Batcher;
use burn::module::Module;
use burn::tensor::Device;
use burn_peft::core::{AdapterConfig, FusionConfig, Setup, set_active};
use burn_peft::models::bert::{BertConfig, BertInput, BertModel};
use burn_peft::models::head::{BertClassifier, ClassificationHeadConfig};
use burn_peft::models::hub::resolve_model_dir;
use burn_peft::models::tokenizer::TextTokenizer;
use burn_peft::train::data::{
    ClassificationBatcher, EncodedItem, GlueDataset, GlueTask, Split, TokenizedDataset,
    download_glue,
};
use burn_peft::train::optim::OptimConfig;
use burn_peft::train::trainer::{
    ClassificationData, ClassifierTrainingConfig, RunOptions, TrainingMethod, evaluate,
    train_classifier,
};
use clap::Parser;

type AnyError = Box<dyn std::error::Error>;

/// Two task adapters on one base, per-example routing, then AdapterFusion (see the doc comment
/// of examples/multi_task.rs).
#[derive(Parser, Debug)]
#[command(name = "multi_task")]
struct Cli {
    /// A Hugging Face model directory or Hub id
    #[arg(long, value_name = "DIR|HUB_ID", default_value = "sentence-transformers/all-MiniLM-L6-v2",
          value_parser = burn_peft::cli::model_spec)]
    model: String,
    /// flex, ndarray, wgpu, vulkan, metal, cuda [default: the compiled-in backend, or BURN_DEVICE]
    #[arg(long, value_parser = burn_peft::cli::device_name)]
    device: Option<String>,
    /// SST-2 directory (train.tsv, dev.tsv) [default: download GLUE SST-2]
    #[arg(long, value_name = "DIR", value_parser = burn_peft::cli::existing_dir)]
    data_a: Option<PathBuf>,
    /// The second GLUE task
    #[arg(long, value_name = "TASK", default_value = "mrpc", value_parser = burn_peft::cli::glue_task)]
    task_b: GlueTask,
    /// Task B's data directory [default: download it]
    #[arg(long, value_name = "DIR", value_parser = burn_peft::cli::existing_dir)]
    data_b: Option<PathBuf>,
    /// Task B's adapter and head name [default: the task's name]
    #[arg(long, value_name = "NAME", value_parser = burn_peft::cli::task_name)]
    name_b: Option<String>,
    /// Batches per epoch
    #[arg(long, value_name = "N", default_value_t = 200, value_parser = burn_peft::cli::positive_usize)]
    max_steps: usize,
    /// Training batch size
    #[arg(long, value_name = "N", default_value_t = 32, value_parser = burn_peft::cli::positive_usize)]
    batch_size: usize,
    /// Peak learning rate
    #[arg(long, value_name = "F", default_value_t = 1e-3, value_parser = burn_peft::cli::positive_f64)]
    lr: f64,
    /// Maximum tokens per example
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = burn_peft::cli::positive_usize)]
    max_len: usize,
    /// Seed
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Output directory
    #[arg(long, value_name = "DIR", default_value = "runs/multi-task")]
    out: PathBuf,
    /// Start over in --out
    #[arg(long)]
    overwrite: bool,
}

fn main() -> ExitCode {
    burn_peft::device::tune_host_allocator();
    let cli: Cli = burn_peft::cli::parse_or_exit();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A task: its name (adapter and head), GLUE task and tokenized splits.
struct Task {
    name: String,
    glue: GlueTask,
    train: Vec<EncodedItem>,
    dev: Vec<EncodedItem>,
}

fn load_task(
    name: String,
    glue: GlueTask,
    dir: Option<PathBuf>,
    tok: &TextTokenizer,
) -> Result<Task, AnyError> {
    let dir = match dir {
        Some(d) => d,
        None => download_glue(glue, None)?,
    };
    let split = |s| -> Result<Vec<EncodedItem>, AnyError> {
        let data = GlueDataset::from_dir(&dir, glue, s)?;
        Ok(TokenizedDataset::from_glue(&data, tok)?.items().to_vec())
    };
    Ok(Task {
        name,
        glue,
        train: split(Split::Train)?,
        dev: split(Split::Validation)?,
    })
}

fn run(cli: Cli) -> Result<(), AnyError> {
    let device = burn_peft::device::select_device(cli.device.as_deref())?;
    let model_spec = cli.model.clone();
    let task_b = cli.task_b;
    let name_b = cli
        .name_b
        .clone()
        .unwrap_or_else(|| task_b.name().to_string());
    let data_a = cli.data_a.clone();
    let data_b = cli.data_b.clone();
    let max_steps = cli.max_steps;
    let max_len = cli.max_len;
    let seed = cli.seed;
    let out = cli.out.clone();
    let config = ClassifierTrainingConfig::new()
        .with_method(TrainingMethod::Adapter {
            config: AdapterConfig::pfeiffer(16.0),
        })
        .with_optim(OptimConfig::new().with_lr(cli.lr))
        .with_batch_size(cli.batch_size)
        .with_max_steps(Some(max_steps))
        .with_seed(seed)
        .with_model_id(Some(model_spec.clone()));
    let overwrite = cli.overwrite;
    let name_a = GlueTask::Sst2.name().to_string();
    if name_a == name_b {
        return Err(format!("task B needs another name than `{name_a}`: pass --name-b").into());
    }
    config.clone().with_task(name_b.clone()).validate()?;

    let model_dir = resolve_model_dir(
        &model_spec,
        &["config.json", "model.safetensors", "tokenizer.json"],
    )?;
    let limits = BertConfig::from_hf_file(model_dir.join("config.json"))?.input_limits();
    let tok = Arc::new(
        TextTokenizer::from_pretrained_dir(&model_dir)?
            .with_max_len(max_len)?
            .fit_to_model(&limits)?,
    );
    let tasks = [
        load_task(name_a, GlueTask::Sst2, data_a, &tok)?,
        load_task(name_b, task_b, data_b, &tok)?,
    ];
    let batcher = ClassificationBatcher::new(tok.clone());
    let train_device = device.clone().autodiff();
    train_device.seed(seed);
    let (bert, report) = BertModel::from_pretrained(&model_dir, &train_device)?;
    eprintln!("{report}");
    let head =
        |task: &Task| ClassificationHeadConfig::new(bert.hidden_size, task.glue.num_labels());
    let mut model = BertClassifier::new_named(
        bert.clone(),
        &tasks[0].name,
        &head(&tasks[0]),
        &train_device,
    )?;
    model.add_head(&tasks[1].name, &head(&tasks[1]), &train_device)?;

    // 1. One adapter and head per task; training one freezes every other.
    let options = || RunOptions {
        overwrite,
        ..RunOptions::default()
    };
    for task in &tasks {
        let data = ClassificationData {
            train: task.train.clone(),
            valid: task.dev.clone(),
            first_epoch_order: None,
        };
        let c = config.clone().with_task(task.name.clone());
        let (trained, report) = train_classifier(
            model,
            &data,
            batcher.clone(),
            &c,
            out.join(&task.name),
            options(),
        )?;
        println!(
            "{}: dev accuracy {:.2}%",
            task.name, report.final_eval.accuracy
        );
        // The trained model comes back for inference; the next task trains on autodiff again.
        model = trained.train();
    }

    // 2. Mixed batches, each example routed to its task's adapter and head.
    let mut eval_model = model.valid();
    let mut model = model.train();
    let plain = device.clone();
    let alone: Vec<f64> = tasks
        .iter()
        .map(|t| -> Result<f64, AnyError> {
            set_active(&mut eval_model, Some(Setup::single(t.name.clone())))?;
            eval_model.set_active_head(&t.name)?;
            Ok(evaluate(&eval_model, &t.dev, &batcher, 64, &plain)?.accuracy)
        })
        .collect::<Result<_, _>>()?;
    let started = Instant::now();
    let (mixed, max_diff) = mixed_accuracy(&mut eval_model, &tasks, &batcher, &plain)?;
    println!(
        "mixed batches (per-example routing, {:.1}s): {} | alone: {} | max |logit difference| {max_diff:.2e}",
        started.elapsed().as_secs_f64(),
        summary(&tasks, &mixed),
        summary(&tasks, &alone),
    );

    // 3. AdapterFusion over both adapters, trained on task A with a fresh head.
    let fused = format!("{}_fusion", tasks[0].name);
    model.add_head(&fused, &head(&tasks[0]), &train_device)?;
    let fusion = config
        .clone()
        .with_task(fused.clone())
        .with_method(TrainingMethod::Fusion {
            adapters: tasks.iter().map(|t| t.name.clone()).collect(),
            config: FusionConfig::dynamic(),
        });
    let data = ClassificationData {
        train: tasks[0].train.clone(),
        valid: tasks[0].dev.clone(),
        first_epoch_order: None,
    };
    let (_, report) =
        train_classifier(model, &data, batcher, &fusion, out.join(&fused), options())?;
    println!(
        "fusion of {} on {}: dev accuracy {:.2}% (adapters frozen; saved in {})",
        tasks
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>()
            .join(" + "),
        tasks[0].name,
        report.final_eval.accuracy,
        report.adapter_dir.display()
    );
    Ok(())
}

fn summary(tasks: &[Task], accuracy: &[f64]) -> String {
    tasks
        .iter()
        .zip(accuracy)
        .map(|(t, a)| format!("{} {a:.2}%", t.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Accuracy per task over batches that interleave the tasks' dev examples, each example routed
/// to its own task, and the largest difference to running each example's task alone.
fn mixed_accuracy(
    model: &mut BertClassifier,
    tasks: &[Task],
    batcher: &ClassificationBatcher,
    device: &Device,
) -> Result<(Vec<f64>, f32), AnyError> {
    let mut items: Vec<(usize, EncodedItem)> = Vec::new();
    let longest = tasks.iter().map(|t| t.dev.len()).max().unwrap_or(0);
    for i in 0..longest {
        for (k, t) in tasks.iter().enumerate() {
            if let Some(item) = t.dev.get(i) {
                items.push((k, item.clone()));
            }
        }
    }
    let mut correct = vec![0usize; tasks.len()];
    let mut max_diff = 0f32;
    for chunk in items.chunks(64) {
        let batch = batcher.batch(chunk.iter().map(|(_, i)| i.clone()).collect(), device);
        let input = BertInput::new(batch.input_ids)
            .with_token_type_ids(batch.token_type_ids)
            .with_attention_mask(batch.attention_mask);
        let labels: Vec<i64> = batch.labels.into_data().convert::<i64>().try_to_vec()?;
        let routes = chunk
            .iter()
            .map(|(k, _)| Some(Setup::single(tasks[*k].name.clone())))
            .collect();
        set_active(model, Some(Setup::Route(routes)))?;
        for out in model.forward_heads(input.clone())? {
            let k = tasks.iter().position(|t| t.name == out.head).unwrap_or(0);
            // The same rows with the task activated for the whole batch.
            set_active(model, Some(Setup::single(out.head.clone())))?;
            let whole = model.forward(input.clone());
            let idx = burn::tensor::Tensor::<1, burn::tensor::Int>::from_data(
                burn::tensor::TensorData::new(
                    out.rows.iter().map(|&r| r as i64).collect::<Vec<_>>(),
                    [out.rows.len()],
                ),
                device,
            );
            let diff = (whole.select(0, idx) - out.logits.clone())
                .abs()
                .max()
                .into_scalar::<f32>();
            max_diff = max_diff.max(diff);
            let predicted: Vec<i64> = out
                .logits
                .argmax(1)
                .into_data()
                .convert::<i64>()
                .try_to_vec()?;
            for (&row, p) in out.rows.iter().zip(predicted) {
                if labels.get(row) == Some(&p) {
                    correct[k] += 1;
                }
            }
            let routes = chunk
                .iter()
                .map(|(k, _)| Some(Setup::single(tasks[*k].name.clone())))
                .collect();
            set_active(model, Some(Setup::Route(routes)))?;
        }
    }
    Ok((
        tasks
            .iter()
            .zip(&correct)
            .map(|(t, &c)| 100.0 * c as f64 / t.dev.len().max(1) as f64)
            .collect(),
        max_diff,
    ))
}
