//! `burn-peft eval` (several adapters on one base, a row each) and `burn-peft predict`.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Instant;

use burn_peft::cli::table::{ResultRow, results_table};
use burn_peft::core::ProblemType;
use burn_peft::models::head::BertClassifier;
use burn_peft::train::data::ClassificationBatcher;
use burn_peft::train::data::user::{LabelMap, RawExample, labelled_items, read_examples};
use burn_peft::train::data::{Split, TokenizedDataset};
use burn_peft::train::regression::predict_scores;
use burn_peft::train::serve::{
    activate, dir_head, evaluate_adapter_dirs, free_name, load_adapter_as, predict_proba,
};
use clap::Args;
use serde_json::json;

use crate::common::{
    BertArgs, CmdError, CmdResult, DataArgs, Output, failed, glue_items, unlabelled_items,
};

/// `burn-peft eval`.
#[derive(Args, Debug)]
pub struct EvalCmd {
    #[command(flatten)]
    bert: BertArgs,
    #[command(flatten)]
    data: DataArgs,
    /// A saved adapter directory (ours or AdapterHub's); repeat for several, each loaded under
    /// its own name on the one base
    #[arg(long, value_name = "DIR", required = true, value_parser = burn_peft::cli::existing_dir)]
    adapter: Vec<PathBuf>,
    /// Evaluation batch size
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = burn_peft::cli::positive_usize)]
    batch_size: usize,
    /// Maximum tokens per example
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = burn_peft::cli::positive_usize)]
    max_len: usize,
}

/// Run `burn-peft eval`.
pub fn run_eval(cmd: EvalCmd, out: &Output) -> CmdResult {
    if cmd.data.task.is_none() && cmd.data.valid.is_none() {
        return Err(CmdError::Usage(
            "eval needs --task TASK or --valid FILE".into(),
        ));
    }
    cmd.data.check_sources(None)?;
    let device = cmd.bert.device()?;
    // Every adapter's head is read before the base is resolved.
    let heads = cmd
        .adapter
        .iter()
        .map(|d| dir_head(d))
        .collect::<Result<Vec<_>, _>>()?;
    let first = &heads[0];
    crate::stsb::check_heads(&cmd.adapter, &heads, cmd.data.is_stsb())?;
    if cmd.data.is_stsb() {
        cmd.data.stsb_files(None)?;
        let base = cmd.bert.load(device, cmd.max_len, out)?;
        return crate::stsb::eval(&cmd.data, &cmd.adapter, first, cmd.batch_size, &base, out);
    }
    if let Some(task) = cmd.data.glue_task()
        && let Some((dir, h)) = cmd
            .adapter
            .iter()
            .zip(&heads)
            .find(|(_, h)| h.num_labels != task.num_labels())
    {
        return Err(failed(format!(
            "{}: its head has {} classes, {} has {}",
            dir.display(),
            h.num_labels,
            task.name(),
            task.num_labels()
        )));
    }
    // The user's labels are mapped through the first adapter's head (its names, or its ids)
    // before the base is resolved.
    let valid_items = match &cmd.data.valid {
        Some(f) => {
            let raw = read_examples(f, &cmd.data.columns(), true)?;
            let labels = LabelMap {
                names: first.labels.clone(),
            };
            Some(labelled_items(&raw, &labels, first.num_labels, f)?)
        }
        None => None,
    };
    let glue_dir = cmd
        .data
        .glue_task()
        .map(|t| cmd.data.glue_dir(t))
        .transpose()?;
    let base = cmd.bert.load(device, cmd.max_len, out)?;
    let items = match (cmd.data.glue_task(), glue_dir, valid_items) {
        (Some(task), Some(dir), _) => glue_items(&dir, task, Split::Validation, &base.tokenizer)?,
        (_, _, Some(items)) => TokenizedDataset::new(&items, &base.tokenizer)?
            .items()
            .to_vec(),
        _ => return Err(failed("no validation data")),
    };
    let started = Instant::now();
    let (mut model, report) =
        BertClassifier::from_pretrained(&base.dir, first.num_labels, first.pooling, &base.device)?;
    out.info(format!("{report}"));
    out.info(format!(
        "base loaded in {:.2}s",
        started.elapsed().as_secs_f64()
    ));
    let batcher = ClassificationBatcher::new(base.tokenizer.clone());
    let evals = evaluate_adapter_dirs(
        &mut model,
        &cmd.adapter,
        &items,
        &batcher,
        cmd.batch_size,
        &base.device,
    )?;
    if out.json {
        return out.print_json(&evals);
    }
    let metric = cmd.data.glue_task().map(|t| t.metric());
    let rows: Vec<ResultRow> = evals
        .iter()
        .map(|e| {
            let row = ResultRow::from_eval(e);
            match metric {
                Some(m) => row.with_metric(&e.eval, m),
                None => row,
            }
        })
        .collect();
    println!("{}", results_table(&rows, base.bytes));
    for e in &evals {
        if let (Some(f1), Some(mcc)) = (e.eval.f1, e.eval.matthews) {
            println!(
                "{}: accuracy {:.2}%, f1 {f1:.2}, matthews {mcc:.2} (x100, class 1 positive)",
                e.adapter.dir.display(),
                e.eval.accuracy
            );
        }
        println!(
            "{}: loaded as `{}` in {:.3}s; switching to it took {:.6}s (the base stays loaded)",
            e.adapter.dir.display(),
            e.adapter.name,
            e.adapter.load_seconds,
            e.activate_seconds
        );
    }
    Ok(())
}

/// `burn-peft predict`.
#[derive(Args, Debug)]
pub struct PredictCmd {
    #[command(flatten)]
    bert: BertArgs,
    /// The saved adapter directory (ours or AdapterHub's)
    #[arg(long, value_name = "DIR", value_parser = burn_peft::cli::existing_dir)]
    adapter: PathBuf,
    /// Input: one text per line, or JSON Lines / CSV / TSV by extension (`-`: stdin, text lines)
    #[arg(long, value_name = "FILE|-", default_value = "-")]
    input: String,
    /// The text column/key of a JSON Lines, CSV or TSV input
    #[arg(long, value_name = "NAME", default_value = "text")]
    text_column: String,
    /// The second text column/key (pair tasks)
    #[arg(long, value_name = "NAME")]
    text_pair_column: Option<String>,
    /// Batch size (inputs are grouped by length; the output keeps the input order)
    #[arg(long, value_name = "N", default_value_t = 32, value_parser = burn_peft::cli::positive_usize)]
    batch_size: usize,
    /// Maximum tokens per input
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = burn_peft::cli::positive_usize)]
    max_len: usize,
}

fn read_inputs(cmd: &PredictCmd) -> CmdResult<Vec<RawExample>> {
    let lines_of = |text: &str| -> Vec<RawExample> {
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| RawExample {
                text_a: l.to_string(),
                text_b: None,
                label: None,
                line: i + 1,
            })
            .collect()
    };
    if cmd.input == "-" {
        let mut text = String::new();
        for line in std::io::stdin().lock().lines() {
            text.push_str(&line?);
            text.push('\n');
        }
        return Ok(lines_of(&text));
    }
    let path = burn_peft::cli::existing_file(&cmd.input)
        .map_err(|m| CmdError::Usage(format!("--input {m}")))?;
    let columns = burn_peft::train::data::user::Columns {
        text: cmd.text_column.clone(),
        text_pair: cmd.text_pair_column.clone(),
        label: "label".into(),
    };
    match burn_peft::train::data::user::FileFormat::of(&path) {
        Ok(_) => Ok(read_examples(&path, &columns, false)?),
        Err(_) => Ok(lines_of(&std::fs::read_to_string(&path)?)),
    }
}

/// Run `burn-peft predict`: a JSON line per input, in input order.
pub fn run_predict(cmd: PredictCmd, out: &Output) -> CmdResult {
    if cmd.input != "-" {
        burn_peft::cli::existing_file(&cmd.input)
            .map_err(|m| CmdError::Usage(format!("--input {m}")))?;
    }
    let device = cmd.bert.device()?;
    let head = dir_head(&cmd.adapter)?;
    let inputs = read_inputs(&cmd)?;
    if inputs.is_empty() {
        return Err(failed(format!("--input {}: no text", cmd.input)));
    }
    let base = cmd.bert.load(device, cmd.max_len, out)?;
    let items = unlabelled_items(&inputs, &base.tokenizer)?;
    let (mut model, _) =
        BertClassifier::from_pretrained(&base.dir, head.num_labels, head.pooling, &base.device)?;
    let name = free_name(&model, &cmd.adapter)?;
    let loaded = load_adapter_as(&mut model, &cmd.adapter, &name, &base.device)?;
    activate(&mut model, &loaded)?;
    let batcher = ClassificationBatcher::new(base.tokenizer.clone());
    let started = Instant::now();
    if head.problem_type == ProblemType::Regression {
        let scores = predict_scores(&model, &items, &batcher, cmd.batch_size, &base.device)?;
        let stdout = std::io::stdout();
        let mut w = std::io::BufWriter::new(stdout.lock());
        for (input, score) in inputs.iter().zip(&scores) {
            let line = json!({"text": input.text_a, "text_pair": input.text_b, "score": score});
            writeln!(w, "{line}")?;
        }
        w.flush()?;
        out.info(format!(
            "{} scores in {:.2}s",
            scores.len(),
            started.elapsed().as_secs_f64()
        ));
        return Ok(());
    }
    let probs = predict_proba(&model, &items, &batcher, cmd.batch_size, &base.device)?;
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::new(stdout.lock());
    for (input, p) in inputs.iter().zip(&probs) {
        let (best, _) =
            p.iter().enumerate().fold(
                (0, f32::NEG_INFINITY),
                |acc, (i, &v)| {
                    if v > acc.1 { (i, v) } else { acc }
                },
            );
        let label = loaded
            .labels
            .get(best)
            .cloned()
            .unwrap_or_else(|| best.to_string());
        let line = json!({
            "text": input.text_a,
            "text_pair": input.text_b,
            "label": label,
            "label_id": best,
            "probabilities": p,
        });
        writeln!(w, "{line}")?;
    }
    w.flush()?;
    out.info(format!(
        "{} predictions in {:.2}s",
        probs.len(),
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}
