//! `burn-peft train`: one classification run (GLUE task or the user's files) and its outputs.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use burn::train::Interrupter;
use burn_peft::cli::table::{ResultRow, results_table};
use burn_peft::cli::{ClassifierTrainArgs, MethodArg};
use burn_peft::models::head::HeadPooling;
use burn_peft::train::data::user::{LabelMap, read_examples};
use burn_peft::train::data::{ClassificationBatcher, Split};
use burn_peft::train::render::EpochSummary;
use burn_peft::train::serve::set_head_labels;
use burn_peft::train::trainer::{ClassificationData, RunOptions, train_classifier_from_dir};
use clap::Args;

use crate::common::{
    BertArgs, CmdError, CmdResult, DataArgs, Output, TaskArg, failed, file_items, glue_items,
};

/// `burn-peft train`.
#[derive(Args, Debug)]
pub struct TrainCmd {
    #[command(flatten)]
    bert: BertArgs,
    #[command(flatten)]
    data: DataArgs,
    /// Your own training data: .csv, .tsv or .jsonl (needs --valid)
    #[arg(long, value_name = "FILE", value_parser = burn_peft::cli::existing_file,
          requires = "valid")]
    train: Option<PathBuf>,
    /// Output directory: adapter/, metrics.json, metrics.csv, curve.svg, checkpoints; one holding a run
    /// needs --resume or --overwrite [default: runs/<task or file>-<method>]
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// What the fresh head reads: `dense` (a dense + tanh layer on the [CLS] token, AdapterHub's
    /// classification head) or `pooler` (the model's pre-trained pooler, like
    /// BertForSequenceClassification: needed by `convert --to peft`) [default: dense; pooler for
    /// --method full]
    #[arg(long, value_enum, value_name = "POOLING")]
    head_pooling: Option<PoolingArg>,
    #[command(flatten)]
    knobs: ClassifierTrainArgs,
}

/// `--head-pooling`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum PoolingArg {
    /// A dense + tanh layer of the head's own on the [CLS] token.
    Dense,
    /// The base model's pooler.
    Pooler,
}

/// The run's name in the default output directory: the task, or the training file's stem.
fn run_name(cmd: &TrainCmd) -> String {
    match (cmd.data.task, &cmd.train) {
        (Some(TaskArg::Glue(task)), _) => task.name().to_string(),
        (Some(TaskArg::Stsb), _) => "stsb".to_string(),
        (None, Some(train)) => train
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "data".into()),
        (None, None) => "data".into(),
    }
}

/// What the user's data or the GLUE task gives: data, head size, class names.
struct Prepared {
    data: ClassificationData,
    num_labels: usize,
    labels: Vec<String>,
}

fn prepare(cmd: &TrainCmd, out: &Output) -> CmdResult<(Prepared, crate::common::Base)> {
    let device = cmd.bert.device()?;
    let max_len = cmd.knobs.max_len;
    if let Some(task) = cmd.data.glue_task() {
        let dir = cmd.data.glue_dir(task)?;
        let base = cmd.bert.load(device, max_len, out)?;
        let train = glue_items(&dir, task, Split::Train, &base.tokenizer)?;
        let valid = glue_items(&dir, task, Split::Validation, &base.tokenizer)?;
        let prepared = Prepared {
            data: ClassificationData {
                train,
                valid,
                first_epoch_order: None,
            },
            num_labels: task.num_labels(),
            labels: task.label_names().iter().map(|s| s.to_string()).collect(),
        };
        return Ok((prepared, base));
    }
    let (Some(train), Some(valid)) = (&cmd.train, &cmd.data.valid) else {
        return Err(CmdError::Usage(
            "train needs --task TASK, or --train FILE --valid FILE".into(),
        ));
    };
    // Both files are read and their labels mapped before the model is resolved.
    let columns = cmd.data.columns();
    let raw = read_examples(train, &columns, true)?;
    let labels = LabelMap::from_labels(raw.iter().filter_map(|r| r.label.as_deref()));
    if labels.names.len() < 2 {
        return Err(failed(format!(
            "{}: the labels ({}) name fewer than 2 classes",
            train.display(),
            labels.names.join(", ")
        )));
    }
    read_examples(valid, &columns, true)?;
    let num_labels = labels.names.len();
    let base = cmd.bert.load(device, max_len, out)?;
    let tok = &base.tokenizer;
    let data = ClassificationData {
        train: file_items(train, &columns, &labels, num_labels, tok)?,
        valid: file_items(valid, &columns, &labels, num_labels, tok)?,
        first_epoch_order: None,
    };
    Ok((
        Prepared {
            data,
            num_labels,
            labels: labels.names,
        },
        base,
    ))
}

/// `metrics.csv`: a `step` row per training batch, then an `epoch` row per epoch (with the
/// validation numbers).
pub(crate) fn metrics_csv(epochs: &[EpochSummary]) -> String {
    let mut s = String::from(
        "kind,epoch,batch,examples,train_loss,train_accuracy,valid_loss,valid_accuracy,train_seconds\n",
    );
    let opt = |v: Option<f64>| v.map(|v| format!("{v}")).unwrap_or_default();
    for e in epochs {
        for p in &e.steps {
            let _ = writeln!(
                s,
                "step,{},{},{},{},{},,,",
                e.epoch,
                p.batch,
                p.examples,
                opt(p.loss),
                opt(p.accuracy)
            );
        }
        let _ = writeln!(
            s,
            "epoch,{},,{},{},{},{},{},{}",
            e.epoch,
            e.train_examples,
            opt(e.train_loss),
            opt(e.train_accuracy),
            opt(e.valid_loss),
            opt(e.valid_accuracy),
            e.train_seconds
        );
    }
    s
}

/// Run `burn-peft train`.
pub fn run(cmd: TrainCmd, out: &Output) -> CmdResult {
    if cmd.data.task.is_none() && cmd.train.is_none() {
        return Err(CmdError::Usage(
            "train needs --task TASK, or --train FILE --valid FILE".into(),
        ));
    }
    cmd.data.check_sources(cmd.train.as_ref())?;
    if cmd.knobs.train_order.is_some() {
        return Err(CmdError::Usage(
            "--train-order is for the sst2 example (the PyTorch peer's order)".into(),
        ));
    }
    let config = cmd.knobs.config(&cmd.bert.model);
    config
        .validate()
        .map_err(|e| CmdError::Usage(e.to_string()))?;
    let run_dir = cmd.out.clone().unwrap_or_else(|| {
        PathBuf::from(format!(
            "runs/{}-{}",
            run_name(&cmd),
            cmd.knobs.adapter.method.name()
        ))
    });
    if cmd.data.is_stsb() {
        crate::stsb::check_train(&config, &cmd.data, cmd.train.as_ref())?;
    }
    // An earlier run there: continue it (--resume) or start over (--overwrite), decided
    // before any file is read or model loaded.
    cmd.knobs
        .run_dir
        .check(&run_dir, cmd.knobs.epochs)
        .map_err(CmdError::Usage)?;
    let pooling = match (cmd.head_pooling, cmd.knobs.adapter.method) {
        (Some(PoolingArg::Pooler), _) | (None, MethodArg::Full) => HeadPooling::Pooler,
        _ => HeadPooling::DenseTanh,
    };
    if cmd.data.is_stsb() {
        let base = cmd.bert.load(cmd.bert.device()?, cmd.knobs.max_len, out)?;
        let spec = crate::stsb::TrainSpec {
            data: &cmd.data,
            train_file: cmd.train.as_ref(),
            config: &config,
            pooling,
            run_dir: &run_dir,
            overwrite: cmd.knobs.run_dir.overwrite,
        };
        return crate::stsb::train(spec, &base, out);
    }
    let (prepared, base) = prepare(&cmd, out)?;
    out.info(format!(
        "data: {} train / {} validation examples, {} classes",
        prepared.data.train.len(),
        prepared.data.valid.len(),
        prepared.num_labels
    ));
    let interrupter = Interrupter::new();
    let on_ctrl_c = interrupter.clone();
    let _ = ctrlc::set_handler(move || {
        eprintln!(
            "\nCtrl-C: stopping after the current step and checkpointing it (rerun with --resume to continue)..."
        );
        on_ctrl_c.stop(Some("Ctrl-C"));
    });
    let batcher = ClassificationBatcher::new(base.tokenizer.clone());
    let result = train_classifier_from_dir(
        &base.dir,
        prepared.num_labels,
        pooling,
        &base.device,
        &prepared.data,
        batcher,
        &config,
        &run_dir,
        RunOptions {
            interrupter: Some(interrupter),
            quiet: out.quiet,
            overwrite: cmd.knobs.run_dir.overwrite,
            ..RunOptions::default()
        },
    );
    let (_, report) = result?;
    if report
        .adapter_dir
        .join(burn_peft::core::file::CONFIG_FILE)
        .is_file()
    {
        set_head_labels(&report.adapter_dir, &prepared.labels)?;
    }
    write_file(
        &run_dir.join("metrics.csv"),
        metrics_csv(&report.epochs).as_bytes(),
    )?;
    let curve = burn_peft::cli::curve::curve_svg(&report).map_err(failed)?;
    write_file(&run_dir.join("curve.svg"), curve.as_bytes())?;
    if out.json {
        return out.print_json(&report);
    }
    let mut row = ResultRow::from_training(&report);
    if let Some(task) = cmd.data.glue_task() {
        row = row.with_metric(&report.final_eval, task.metric());
    }
    println!("{}", results_table(&[row], base.bytes));
    println!(
        "adapter: {} | metrics: {}, {} | curves: {}",
        report.adapter_dir.display(),
        run_dir.join("metrics.json").display(),
        run_dir.join("metrics.csv").display(),
        run_dir.join("curve.svg").display()
    );
    Ok(())
}

pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> CmdResult {
    burn_peft::core::file::write_atomic(path, bytes)?;
    Ok(())
}
