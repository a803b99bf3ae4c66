//! `--task stsb` (GLUE STS-B, a regression head) for `burn-peft train`, `eval`, and the
//! regression side of `predict`: scores, not labels; Pearson and Spearman, not accuracy.

use std::path::{Path, PathBuf};

use burn::train::Interrupter;
use burn_peft::core::ProblemType;
use burn_peft::models::head::{BertClassifier, HeadPooling};
use burn_peft::train::data::ClassificationBatcher;
use burn_peft::train::data::stsb::load_stsb_tsv;
use burn_peft::train::regression::{
    RegressionBatcher, RegressionData, RegressionEval, ScoredItem, evaluate_regression,
    tokenize_scored, train_regressor_from_dir,
};
use burn_peft::train::serve::{DirHead, activate, free_name, load_adapter_as};
use burn_peft::train::trainer::{ClassifierTrainingConfig, RunOptions};
use serde::Serialize;

use crate::common::{Base, CmdError, CmdResult, DataArgs, Output, failed};

/// Error (exit 2) for what STS-B training cannot do, before anything is read.
pub fn check_train(
    config: &ClassifierTrainingConfig,
    data: &DataArgs,
    train: Option<&PathBuf>,
) -> CmdResult {
    if config.method == burn_peft::train::trainer::TrainingMethod::Full {
        return Err(CmdError::Usage(
            "--task stsb trains adapters or the head: --method full is for classification".into(),
        ));
    }
    if config.early_stopping_patience.is_some() {
        return Err(CmdError::Usage(
            "early stopping watches accuracy: not available with --task stsb".into(),
        ));
    }
    match data.stsb_files(train)? {
        (Some(_), _) => Ok(()),
        (None, _) => Err(CmdError::Usage(
            "train --task stsb needs --data DIR (train.tsv, dev.tsv) or --train FILE --valid FILE"
                .into(),
        )),
    }
}

/// Error unless every adapter's head agrees with the task: a regression head for `--task
/// stsb`, a classifier head otherwise (one line naming the directory).
pub fn check_heads(dirs: &[PathBuf], heads: &[DirHead], stsb: bool) -> CmdResult {
    for (dir, h) in dirs.iter().zip(heads) {
        let regression = h.problem_type == ProblemType::Regression;
        if stsb && !regression {
            return Err(failed(format!(
                "{}: a classifier head ({} classes); --task stsb needs a regression head (one \
                 trained with --task stsb)",
                dir.display(),
                h.num_labels
            )));
        }
        if !stsb && regression {
            return Err(failed(format!(
                "{}: a regression head (STS-B): evaluate it with --task stsb",
                dir.display()
            )));
        }
    }
    Ok(())
}

fn scored(path: &Path, base: &Base) -> CmdResult<Vec<ScoredItem>> {
    Ok(tokenize_scored(&load_stsb_tsv(path)?, &base.tokenizer)?)
}

/// What `burn-peft train --task stsb` was given.
pub struct TrainSpec<'a> {
    /// The data flags.
    pub data: &'a DataArgs,
    /// `--train`.
    pub train_file: Option<&'a PathBuf>,
    /// The run's settings.
    pub config: &'a ClassifierTrainingConfig,
    /// What the fresh head reads.
    pub pooling: HeadPooling,
    /// `--out`.
    pub run_dir: &'a Path,
    /// `--overwrite`.
    pub overwrite: bool,
}

/// `burn-peft train --task stsb`: train, then write the run's files and print the result.
pub fn train(spec: TrainSpec<'_>, base: &Base, out: &Output) -> CmdResult {
    let TrainSpec {
        data,
        train_file,
        config,
        pooling,
        run_dir,
        overwrite,
    } = spec;
    let (Some(train_path), valid_path) = data.stsb_files(train_file)? else {
        return Err(CmdError::Usage(
            "train --task stsb needs --data DIR or --train FILE --valid FILE".into(),
        ));
    };
    let data = RegressionData {
        train: scored(&train_path, base)?,
        valid: scored(&valid_path, base)?,
    };
    out.info(format!(
        "data: {} train / {} validation pairs (STS-B, regression)",
        data.train.len(),
        data.valid.len()
    ));
    let interrupter = Interrupter::new();
    let on_ctrl_c = interrupter.clone();
    let _ = ctrlc::set_handler(move || {
        eprintln!("\nCtrl-C: stopping after the current step (rerun with --resume to continue)...");
        on_ctrl_c.stop(Some("Ctrl-C"));
    });
    let (_, report) = train_regressor_from_dir(
        &base.dir,
        pooling,
        &base.device,
        &data,
        RegressionBatcher::new(ClassificationBatcher::new(base.tokenizer.clone())),
        config,
        run_dir,
        RunOptions {
            interrupter: Some(interrupter),
            quiet: out.quiet,
            overwrite,
            ..RunOptions::default()
        },
    )?;
    crate::train::write_file(
        &run_dir.join("metrics.csv"),
        crate::train::metrics_csv(&report.epochs).as_bytes(),
    )?;
    let curve = burn_peft::cli::curve::regression_curve_svg(&report.epochs).map_err(failed)?;
    crate::train::write_file(&run_dir.join("curve.svg"), curve.as_bytes())?;
    if out.json {
        return out.print_json(&report);
    }
    let e = &report.final_eval;
    println!(
        "stsb ({}, {} steps): pearson {:.4} | spearman {:.4} | score (mean) {:.4} | mse {:.4} | {} pairs",
        report.method, report.steps, e.pearson, e.spearman, e.score, e.mse, e.examples
    );
    println!(
        "adapter: {} | metrics: {}, {} | curves: {}",
        report.adapter_dir.display(),
        run_dir.join("metrics.json").display(),
        run_dir.join("metrics.csv").display(),
        run_dir.join("curve.svg").display()
    );
    Ok(())
}

/// One adapter's STS-B scores.
#[derive(Serialize)]
struct Row {
    adapter: PathBuf,
    #[serde(flatten)]
    eval: RegressionEval,
}

/// `burn-peft eval --task stsb`: Pearson, Spearman, their mean and the MSE per adapter.
pub fn eval(
    data: &DataArgs,
    adapters: &[PathBuf],
    first: &DirHead,
    batch_size: usize,
    base: &Base,
    out: &Output,
) -> CmdResult {
    let (_, valid) = data.stsb_files(None)?;
    let items = scored(&valid, base)?;
    let (mut model, _) =
        BertClassifier::from_pretrained(&base.dir, 1, first.pooling, &base.device)?;
    let batcher = ClassificationBatcher::new(base.tokenizer.clone());
    let mut rows = Vec::new();
    for dir in adapters {
        let name = free_name(&model, dir)?;
        let loaded = load_adapter_as(&mut model, dir, &name, &base.device)?;
        activate(&mut model, &loaded)?;
        let eval = evaluate_regression(&model, &items, &batcher, batch_size, &base.device)?;
        rows.push(Row {
            adapter: dir.clone(),
            eval,
        });
    }
    if out.json {
        return out.print_json(&rows);
    }
    println!("| adapter | pearson | spearman | score (mean) | mse | pairs |");
    println!("|---|---|---|---|---|---|");
    for r in &rows {
        let e = &r.eval;
        println!(
            "| {} | {:.4} | {:.4} | {:.4} | {:.4} | {} |",
            r.adapter.display(),
            e.pearson,
            e.spearman,
            e.score,
            e.mse,
            e.examples
        );
    }
    Ok(())
}
