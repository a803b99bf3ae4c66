//! `burn-peft ... --task stsb` (GLUE STS-B, a regression head) on the committed tiny BERT
//! fixture: train → eval (Pearson, Spearman) → predict (scores), the GLUE directory layout
//! (the committed sample in `crates/peft-train/testdata/stsb`), and the combinations that are
//! refused (helpers: `cli_common`).

mod cli_common;

use std::path::{Path, PathBuf};

use cli_common::{Sandbox, json, strs};
use serde_json::Value;

const HEADER: &str =
    "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n";

/// STS-B-layout rows the tiny model can learn: the first word of `sentence1` says whether the
/// pair is similar (w90..w97: 4.0..4.8) or not (w4..w11: 0.2..1.0).
fn write_stsb(sb: &Sandbox, name: &str, range: std::ops::Range<u32>) -> Vec<(String, String, f64)> {
    let mut text = String::from(HEADER);
    let mut rows = Vec::new();
    for k in range {
        let similar = k % 2 == 1;
        let first = if similar {
            90 + (k * 5) % 8
        } else {
            4 + (k * 7) % 8
        };
        let s1 = format!("w{first} w{}", 20 + (k * 13) % 60);
        let s2 = format!("w{} w{}", 20 + (k * 29) % 60, 30 + (k * 11) % 50);
        let score = if similar { 4.0 } else { 0.2 } + f64::from(k % 5) * 0.2;
        text.push_str(&format!(
            "{k}\tmain-captions\tMSRvid\t2012test\t{k:04}\tnone\tnone\t{s1}\t{s2}\t{score:.3}\n"
        ));
        rows.push((s1, s2, score));
    }
    std::fs::write(sb.path(name), text).unwrap_or_else(|e| panic!("{e}"));
    rows
}

fn args(sb: &Sandbox, head: &[&str], tail: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = head.iter().map(|s| s.to_string()).collect();
    v.extend(sb.model_args());
    v.extend(tail.iter().map(|s| s.to_string()));
    v
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

/// Pearson correlation, written out (the library's is tested against numpy).
fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let sxy: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let sxx: f64 = x.iter().map(|a| (a - mx).powi(2)).sum();
    let syy: f64 = y.iter().map(|b| (b - my).powi(2)).sum();
    sxy / (sxx.sqrt() * syy.sqrt())
}

/// Train 3 epochs on learnable pairs: the report has Pearson and Spearman (and learnt
/// something); the saved head is a regression head; `eval --task stsb` gives the same numbers;
/// `predict` gives one `{"score"}` per input pair, in order, whose correlation is eval's.
#[test]
fn stsb_train_eval_predict() {
    let sb = Sandbox::new();
    write_stsb(&sb, "stsb_train.tsv", 0..96);
    let dev = write_stsb(&sb, "stsb_dev.tsv", 96..128);
    let run = sb.path("run");
    let run_s = run.display().to_string();
    let (train_f, dev_f) = (sb.p("stsb_train.tsv"), sb.p("stsb_dev.tsv"));
    let report = json(&sb.ok(&strs(&args(
        &sb,
        &["--quiet", "--json", "train"],
        &[
            "--task",
            "stsb",
            "--train",
            &train_f,
            "--valid",
            &dev_f,
            "--out",
            &run_s,
            "--epochs",
            "3",
            "--batch-size",
            "16",
            "--lr",
            "1e-2",
        ],
    ))));
    assert_eq!(report["problem_type"], "regression", "{report}");
    assert_eq!(report["steps"], 18, "{report}");
    let fe = &report["final_eval"];
    assert_eq!(fe["examples"], 32, "{report}");
    let (p, s) = (num(&fe["pearson"]), num(&fe["spearman"]));
    assert!(p > 0.5 && s > 0.5, "did not learn: {report}");
    assert!(
        (num(&fe["score"]) - (p + s) / 2.0).abs() < 1e-12,
        "{report}"
    );
    // metrics.csv: a row per batch (6 per epoch) and per epoch; the last epoch's validation
    // loss is the final MSE. curve.svg: the 18 batch losses and 3 validation MSEs.
    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        csv.lines().filter(|l| l.starts_with("step,")).count(),
        18,
        "{csv}"
    );
    let last = csv
        .lines()
        .rfind(|l| l.starts_with("epoch,3,"))
        .unwrap_or_default();
    let valid_mse: f64 = last
        .split(',')
        .nth(6)
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN);
    assert!(
        (valid_mse - num(&fe["mse"])).abs() < 1e-9,
        "{last} vs {report}"
    );
    let svg = std::fs::read_to_string(run.join("curve.svg")).unwrap_or_else(|e| panic!("{e}"));
    assert!(svg.contains("validation MSE per epoch"), "{svg}");

    let config = json(
        &std::fs::read_to_string(run.join("adapter/burn_peft_adapter.json"))
            .unwrap_or_else(|e| panic!("{e}")),
    );
    assert_eq!(config["head"]["problem_type"], "regression", "{config}");
    assert_eq!(config["head"]["num_labels"], 1, "{config}");

    let adapter = run.join("adapter").display().to_string();
    let rows = json(&sb.ok(&strs(&args(
        &sb,
        &["--json", "eval"],
        &["--task", "stsb", "--valid", &dev_f, "--adapter", &adapter],
    ))));
    let row = &rows[0];
    assert!((num(&row["pearson"]) - p).abs() < 1e-9, "{row} vs {report}");
    assert!(
        (num(&row["spearman"]) - s).abs() < 1e-9,
        "{row} vs {report}"
    );
    // To AdapterHub's format (a one-label head: regression, by Hugging Face's rule) and back:
    // still a regression head, the same correlations.
    let hub = sb.p("hub");
    let back = sb.p("back");
    sb.ok(&strs(&args(
        &sb,
        &["--quiet", "convert"],
        &[&adapter, &hub, "--to", "adapterhub"],
    )));
    sb.ok(&strs(&args(
        &sb,
        &["--quiet", "convert"],
        &[&hub, &back, "--to", "burn-peft"],
    )));
    for dir in [&hub, &back] {
        let rows = json(&sb.ok(&strs(&args(
            &sb,
            &["--json", "eval"],
            &["--task", "stsb", "--valid", &dev_f, "--adapter", dir],
        ))));
        assert!(
            (num(&rows[0]["pearson"]) - p).abs() < 1e-5,
            "{dir}: {rows} vs {report}"
        );
    }
    let table = sb.ok(&strs(&args(
        &sb,
        &["eval"],
        &["--task", "stsb", "--valid", &dev_f, "--adapter", &adapter],
    )));
    assert!(table.contains("| pearson | spearman |"), "{table}");

    let lines: Vec<Value> = sb
        .ok(&strs(&args(
            &sb,
            &["predict"],
            &[
                "--adapter",
                &adapter,
                "--input",
                &dev_f,
                "--text-column",
                "sentence1",
                "--text-pair-column",
                "sentence2",
            ],
        )))
        .lines()
        .map(json)
        .collect();
    assert_eq!(lines.len(), dev.len());
    for (line, (s1, s2, _)) in lines.iter().zip(&dev) {
        assert_eq!(line["text"], s1.as_str(), "{line}");
        assert_eq!(line["text_pair"], s2.as_str(), "{line}");
        assert!(line.get("probabilities").is_none(), "{line}");
    }
    let scores: Vec<f64> = lines.iter().map(|l| num(&l["score"])).collect();
    let targets: Vec<f64> = dev.iter().map(|r| r.2).collect();
    assert!((pearson(&scores, &targets) - p).abs() < 1e-4, "{scores:?}");
}

/// The GLUE directory layout (`train.tsv`, `dev.tsv` under `--data`): the committed sample
/// of the real files, 8 training and 4 dev pairs; `--resume` continues the run.
#[test]
fn stsb_reads_the_glue_layout() {
    let sb = Sandbox::new();
    let data: PathBuf =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/peft-train/testdata/stsb");
    let data = data.display().to_string();
    let run = sb.p("run");
    let report = json(&sb.ok(&strs(&args(
        &sb,
        &["--quiet", "--json", "train"],
        &[
            "--task",
            "STS-B",
            "--data",
            &data,
            "--out",
            &run,
            "--batch-size",
            "4",
        ],
    ))));
    assert_eq!(report["steps"], 2, "{report}");
    assert_eq!(report["final_eval"]["examples"], 4, "{report}");
    assert!(num(&report["final_eval"]["mse"]) > 0.0, "{report}");
    // The finished run is extended by one epoch with --resume (2 more steps), not redone.
    let resumed = json(&sb.ok(&strs(&args(
        &sb,
        &["--quiet", "--json", "train"],
        &[
            "--task",
            "stsb",
            "--data",
            &data,
            "--out",
            &run,
            "--batch-size",
            "4",
            "--epochs",
            "2",
            "--resume",
        ],
    ))));
    assert_eq!(resumed["steps"], 4, "{resumed}");
}

/// Classifier heads with `--task stsb` and regression heads without it are one-line errors;
/// STS-B training without data or with full fine-tuning is refused (exit 2)
/// before the model is touched; a GLUE task with `--train`/`--valid` too.
#[test]
fn stsb_bad_combinations() {
    let sb = Sandbox::new();
    write_stsb(&sb, "stsb.tsv", 0..16);
    let stsb_f = sb.p("stsb.tsv");
    let hub = ["--model", "sentence-transformers/all-MiniLM-L6-v2"];
    let usage = |extra: &[&str], needle: &str| {
        let mut a: Vec<&str> = vec!["train"];
        a.extend(hub);
        a.extend(extra);
        sb.fails(&a, 2, needle);
    };
    usage(&["--task", "stsb"], "--task stsb needs --data DIR");
    usage(
        &[
            "--task", "stsb", "--train", &stsb_f, "--valid", &stsb_f, "--method", "full",
        ],
        "--method full",
    );
    usage(
        &["--task", "sst2", "--train", &stsb_f, "--valid", &stsb_f],
        "--task sst2 cannot be used with --train",
    );

    // A classifier adapter, and a regression one.
    let cls = sb.p("cls");
    sb.ok(&strs(&args(
        &sb,
        &["--quiet", "train"],
        &[
            "--train",
            &sb.p("train.tsv"),
            "--valid",
            &sb.p("valid.tsv"),
            "--label-column",
            "sentiment",
            "--out",
            &cls,
            "--max-steps",
            "1",
            "--method",
            "head-only",
        ],
    )));
    let reg = sb.p("reg");
    sb.ok(&strs(&args(
        &sb,
        &["--quiet", "train"],
        &[
            "--task",
            "stsb",
            "--train",
            &stsb_f,
            "--valid",
            &stsb_f,
            "--out",
            &reg,
            "--max-steps",
            "1",
            "--method",
            "head-only",
        ],
    )));
    let (cls_a, reg_a) = (format!("{cls}/adapter"), format!("{reg}/adapter"));
    sb.fails(
        &strs(&args(
            &sb,
            &["eval"],
            &["--task", "stsb", "--valid", &stsb_f, "--adapter", &cls_a],
        )),
        1,
        "a classifier head (2 classes); --task stsb needs a regression head",
    );
    sb.fails(
        &strs(&args(
            &sb,
            &["eval"],
            &[
                "--valid",
                &sb.p("valid.tsv"),
                "--label-column",
                "sentiment",
                "--adapter",
                &reg_a,
            ],
        )),
        1,
        "a regression head (STS-B): evaluate it with --task stsb",
    );
}
