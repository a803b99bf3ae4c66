//! The `burn-peft` binary, run as a user would, on the committed tiny BERT fixture
//! (`fixtures/tiny-bert`): the train → inspect → eval → predict → convert round trip, bad
//! command lines, generation, the README's commands and every training method (helpers:
//! `cli_common`; resuming and PEFT conversion: `cli_runs.rs`).

mod cli_common;

use std::path::PathBuf;

use cli_common::{Sandbox, eval_accuracies, fixture, json, strs};
use serde_json::Value;
use tokenizers::Tokenizer;
use tokenizers::models::wordlevel::WordLevel;
use tokenizers::pre_tokenizers::whitespace::Whitespace;

#[test]
fn train_inspect_eval_predict_convert_round_trip() {
    let sb = Sandbox::new();
    let run = sb.path("run");
    let mut args = vec!["--quiet".to_string(), "--json".into(), "train".into()];
    args.extend(sb.model_args());
    args.extend(
        [
            "--train",
            &sb.p("train.tsv"),
            "--valid",
            &sb.p("valid.tsv"),
            "--label-column",
            "sentiment",
            "--out",
            &run.display().to_string(),
            "--epochs",
            "2",
            "--batch-size",
            "16",
            "--lr",
            "1e-2",
            "--reduction-factor",
            "4",
            "--adapter-init",
            "bert",
        ]
        .map(String::from),
    );
    let report = json(&sb.ok(&strs(&args)));
    let adapter = run.join("adapter");
    let trained_acc = report["final_eval"]["accuracy"]
        .as_f64()
        .unwrap_or(f64::NAN);
    assert!(trained_acc > 75.0, "the tiny task did not train: {report}");
    // The validation set is scored once per epoch: after epoch 1 in the loop (burn-train's
    // log of it in valid/epoch-1), and the final weights once at the end (no valid/epoch-2).
    assert_eq!(report["valid_evaluations"], 2, "{report}");
    assert!(run.join("valid/epoch-1").is_dir());
    assert!(
        !run.join("valid/epoch-2").exists(),
        "the last epoch scored twice"
    );

    // metrics.csv: a row per batch (160 examples / 16 = 10 a epoch), then one per epoch, whose
    // validation accuracy at the end is the report's.
    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap_or_else(|e| panic!("{e}"));
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert!(
        csv.starts_with("kind,epoch,batch,examples,train_loss,"),
        "{csv}"
    );
    let steps: Vec<&Vec<&str>> = rows.iter().filter(|r| r[0] == "step").collect();
    let epochs: Vec<&Vec<&str>> = rows.iter().filter(|r| r[0] == "epoch").collect();
    assert_eq!((steps.len(), epochs.len()), (20, 2), "{csv}");
    assert_eq!(
        (steps[9][1], steps[9][2], steps[9][3]),
        ("1", "10", "160"),
        "{csv}"
    );
    assert!(
        steps
            .iter()
            .all(|r| r[4].parse::<f64>().is_ok_and(f64::is_finite)),
        "{csv}"
    );
    let last_valid: f64 = epochs[1][7].parse().unwrap_or(f64::NAN);
    assert!((last_valid - trained_acc).abs() < 1e-6, "{csv}");
    assert!(run.join("metrics.json").is_file());
    // curve.svg: an SVG document with the loss of each of the 20 batches as one line, and the
    // validation accuracy of each of the 2 epochs as a line and a marker each.
    let svg = std::fs::read_to_string(run.join("curve.svg")).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
        "{svg}"
    );
    let lines: Vec<usize> = svg
        .split("<polyline")
        .skip(1)
        .map(|el| {
            let points = el.split("points=\"").nth(1).unwrap_or_default();
            points[..points.find('"').unwrap_or(0)]
                .split_whitespace()
                .count()
        })
        .collect();
    assert_eq!(lines, vec![20, 2], "{svg}");
    assert_eq!(svg.matches("<circle").count(), 2, "{svg}");

    // inspect: method, head labels from the string labels (sorted), parameter count.
    let info = json(&sb.ok(&["--json", "inspect", &adapter.display().to_string()]));
    assert_eq!(info["format"], "burn-peft");
    assert_eq!(info["method"], "bottleneck");
    assert_eq!(
        info["head"]["label_names"],
        serde_json::json!(["neg", "pos"])
    );
    assert_eq!(info["base_model"]["hidden_size"], 32);
    assert_eq!(
        info["sites"],
        serde_json::json!(["layer0.feed_forward_output", "layer1.feed_forward_output"]),
        "{info}"
    );
    // Pfeiffer, width 32/4 = 8 on 2 layers: (32*8+8 + 8*32+32) * 2 = 1104; head 32*32+32 + 32*2+2.
    assert_eq!(info["parameters"], 1104 + 1056 + 66, "{info}");

    // eval: the same adapter twice, each under its own name on one base, equal to the
    // accuracy the training run reported.
    let rows = eval_accuracies(&sb, &[&adapter, &adapter]);
    assert_eq!(rows.len(), 2);
    assert_ne!(rows[0].0, rows[1].0, "one name for two adapters: {rows:?}");
    for (_, acc) in &rows {
        assert!(
            (acc - trained_acc).abs() < 1e-9,
            "{rows:?} vs {trained_acc}"
        );
    }

    // predict: a line per input, in input order, labels by name, probabilities summing to 1,
    // and as many right as the evaluation counted.
    let mut args = vec!["predict".to_string()];
    args.extend(sb.model_args());
    args.extend(
        [
            "--adapter",
            &adapter.display().to_string(),
            "--input",
            &sb.p("inputs.txt"),
            "--batch-size",
            "7",
        ]
        .map(String::from),
    );
    let stdout = sb.ok(&strs(&args));
    let inputs = std::fs::read_to_string(sb.path("inputs.txt")).unwrap_or_else(|e| panic!("{e}"));
    let truth: Vec<&str> = (160..200u32)
        .map(|k| if k % 2 == 1 { "pos" } else { "neg" })
        .collect();
    let preds: Vec<Value> = stdout.lines().map(json).collect();
    assert_eq!(preds.len(), 40);
    let mut right = 0;
    for ((p, input), t) in preds.iter().zip(inputs.lines()).zip(&truth) {
        assert_eq!(p["text"], input);
        let probs: Vec<f64> = p["probabilities"]
            .as_array()
            .unwrap_or_else(|| panic!("{p}"))
            .iter()
            .filter_map(Value::as_f64)
            .collect();
        assert_eq!(probs.len(), 2);
        assert!((probs.iter().sum::<f64>() - 1.0).abs() < 1e-5, "{p}");
        let id = usize::from(probs[1] > probs[0]);
        assert_eq!(p["label_id"], id);
        assert_eq!(p["label"], ["neg", "pos"][id]);
        right += usize::from(p["label"] == *t);
    }
    assert!((100.0 * right as f64 / 40.0 - trained_acc).abs() < 1e-9);
    // The same from stdin (`--input -`, the default): the first two inputs, same answers.
    let two: String = inputs.lines().take(2).map(|l| format!("{l}\n")).collect();
    let mut args = vec!["predict".to_string()];
    args.extend(sb.model_args());
    args.extend(["--adapter".to_string(), adapter.display().to_string()]);
    let out = sb.run_with_stdin(&strs(&args), Some(&two));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let piped: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(json)
        .collect();
    assert_eq!(piped.len(), 2);
    for (a, b) in piped.iter().zip(&preds) {
        assert_eq!((&a["text"], &a["label"]), (&b["text"], &b["label"]));
    }

    // convert to AdapterHub's format and back: the same accuracy from each.
    let hub = sb.path("hub");
    let back = sb.path("back");
    let mut args = vec![
        "convert".to_string(),
        adapter.display().to_string(),
        hub.display().to_string(),
        "--to".into(),
        "adapterhub".into(),
        "--name".into(),
        "sentiment".into(),
    ];
    args.extend(sb.model_args());
    sb.ok(&strs(&args));
    assert!(hub.join("adapter_config.json").is_file());
    assert!(hub.join("head_config.json").is_file());
    let info = json(&sb.ok(&["--json", "inspect", &hub.display().to_string()]));
    assert_eq!(info["format"], "adapterhub");
    assert_eq!(info["name"], "sentiment");
    assert_eq!(info["parameters"], 1104 + 1056 + 66, "{info}");
    assert_eq!(
        info["head"]["label_names"],
        serde_json::json!(["neg", "pos"])
    );
    let mut args = vec![
        "convert".to_string(),
        hub.display().to_string(),
        back.display().to_string(),
        "--to".into(),
        "burn-peft".into(),
    ];
    args.extend(sb.model_args());
    sb.ok(&strs(&args));
    let rows = eval_accuracies(&sb, &[&adapter, &hub, &back]);
    assert_eq!(rows[1].0, "sentiment");
    for (_, acc) in &rows {
        assert!(
            (acc - trained_acc).abs() < 1e-9,
            "{rows:?} vs {trained_acc}"
        );
    }

    // Labels the head does not know: one line naming the label and the file's line, exit 1.
    let mut args = vec!["eval".to_string()];
    args.extend(sb.model_args());
    args.extend(
        [
            "--valid",
            &sb.p("bad_labels.tsv"),
            "--label-column",
            "sentiment",
            "--adapter",
            &adapter.display().to_string(),
        ]
        .map(String::from),
    );
    sb.fails(
        &strs(&args),
        1,
        "label `neutral` is not one of the head's labels (neg, pos)",
    );
}

#[test]
fn bad_command_lines_fail_in_one_line_before_any_download() {
    let sb = Sandbox::new();
    let hub_id = "sentence-transformers/all-MiniLM-L6-v2";
    // Flags and values, checked by the parser (exit 2).
    sb.fails(&["train", "--task", "sst2", "--epochs", "0"], 2, "--epochs");
    sb.fails(&["train", "--task", "sst2", "--lr", "-1"], 2, "--lr");
    sb.fails(
        &["train", "--task", "sst2", "--dropout", "1.5"],
        2,
        "--dropout",
    );
    sb.fails(&["train", "--task", "sst2", "--epoch", "3"], 2, "--epoch");
    sb.fails(&["train", "--task", "nosuch"], 2, "unknown GLUE task");
    sb.fails(
        &["train", "--task", "sst2", "--method", "lora2"],
        2,
        "--method",
    );
    sb.fails(
        &["train", "--task", "sst2", "--device", "tpu"],
        2,
        "--device",
    );
    sb.fails(
        &["train", "--model", "./no/such/dir", "--task", "sst2"],
        2,
        "--model",
    );
    sb.fails(
        &["train", "--task", "sst2", "--data", "/no/such/dir"],
        2,
        "--data",
    );
    sb.fails(
        &["train", "--train", "/no/such.csv", "--valid", "x.csv"],
        2,
        "--train",
    );
    sb.fails(&["train", "--model", hub_id], 2, "--task");
    sb.fails(
        &["eval", "--task", "sst2", "--adapter", "/no/such/adapter"],
        2,
        "--adapter",
    );
    sb.fails(&["eval", "--task", "sst2"], 2, "--adapter");
    sb.fails(
        &[
            "predict",
            "--adapter",
            &fixture().display().to_string(),
            "--input",
            "/no/such.txt",
        ],
        2,
        "--input",
    );
    sb.fails(&["inspect", "/no/such/dir"], 2, "DIR");
    sb.fails(
        &[
            "convert",
            &fixture().display().to_string(),
            "b",
            "--to",
            "onnx",
        ],
        2,
        "--to",
    );
    sb.fails(&["frobnicate"], 2, "frobnicate");
    // Files that exist but are not what they should be: found before the model is resolved
    // (exit 1, and the Hub id is never fetched).
    sb.fails(
        &[
            "eval",
            "--model",
            hub_id,
            "--valid",
            &sb.p("valid.tsv"),
            "--adapter",
            &sb.p("hf-none"),
        ],
        2,
        "--adapter",
    );
    std::fs::create_dir_all(sb.path("empty-adapter")).unwrap_or_else(|e| panic!("{e}"));
    sb.fails(
        &[
            "eval",
            "--model",
            hub_id,
            "--valid",
            &sb.p("valid.tsv"),
            "--adapter",
            &sb.p("empty-adapter"),
        ],
        1,
        "empty-adapter",
    );
    sb.fails(
        &[
            "train",
            "--model",
            hub_id,
            "--train",
            &sb.p("train.tsv"),
            "--valid",
            &sb.p("valid.tsv"),
        ],
        1,
        "no column `label`",
    );
    // --help everywhere, exit 0.
    for cmd in [
        &["--help"][..],
        &["train", "--help"],
        &["eval", "-h"],
        &["predict", "--help"],
        &["inspect", "--help"],
        &["convert", "--help"],
        &["generate", "--help"],
    ] {
        let out = sb.run(cmd);
        assert!(out.status.success(), "{cmd:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage:"),
            "{cmd:?}"
        );
    }
}

/// `generate` on the tiny GPT-2 reproduces `transformers`' greedy continuation of the
/// fixture's prompt (token `i` is the word `t{i}` in a word-level tokenizer written here).
#[test]
fn generate_reproduces_the_transformers_greedy_continuation() {
    let sb = Sandbox::new();
    let gpt2 = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/tiny-gpt2");
    let golden =
        json(&std::fs::read_to_string(gpt2.join("golden.json")).unwrap_or_else(|e| panic!("{e}")));
    let ids = |key: &str| -> Vec<u64> {
        golden[key]["data"]
            .as_array()
            .unwrap_or_else(|| panic!("{key}"))
            .iter()
            .filter_map(Value::as_u64)
            .collect()
    };
    let (prompt, expected) = (ids("greedy_prompt"), ids("greedy_output"));
    let vocab: Vec<(String, u32)> = (0..97u32).map(|i| (format!("t{i}"), i)).collect();
    let model = WordLevel::builder()
        .vocab(vocab.into_iter().collect())
        .unk_token("t0".into())
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut tok = Tokenizer::new(model);
    tok.with_pre_tokenizer(Some(Whitespace));
    tok.save(sb.path("gpt2-tokenizer.json"), false)
        .unwrap_or_else(|e| panic!("{e}"));
    let words = |ids: &[u64]| {
        ids.iter()
            .map(|i| format!("t{i}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let new_tokens = (expected.len() - prompt.len()).to_string();
    let out = json(&sb.ok(&[
        "--quiet",
        "--json",
        "generate",
        "--model",
        &gpt2.display().to_string(),
        "--tokenizer",
        &sb.p("gpt2-tokenizer.json"),
        "--prompt",
        &words(&prompt),
        "--max-new-tokens",
        &new_tokens,
    ]));
    let text = out["text"].as_str().unwrap_or_default();
    // The prompt and its continuation, as `transformers`' `generate` returns them.
    assert_eq!(text, words(&expected));
}

/// Every `burn-peft` command in the README's quickstart names a command that exists and only
/// flags that command accepts (the runs themselves need the real model and data: `.ci/run`).
#[test]
fn readme_commands_use_existing_commands_and_flags() {
    let sb = Sandbox::new();
    let readme =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("README.md"))
            .unwrap_or_else(|e| panic!("{e}"));
    let mut checked = 0;
    let mut in_sh = false;
    for line in readme.lines() {
        if line.starts_with("```") {
            in_sh = line == "```sh";
            continue;
        }
        let Some(at) = line.find("burn-peft ") else {
            continue;
        };
        if !in_sh || line.trim_start().starts_with('#') {
            continue;
        }
        let words: Vec<&str> = line[at..].split_whitespace().collect();
        let Some(cmd) = words.get(1) else { continue };
        let help = sb.ok(&[cmd, "--help"]);
        for flag in words.iter().filter(|w| w.starts_with("--")) {
            assert!(
                help.contains(&format!("{flag} ")) || help.contains(&format!("{flag}\n")),
                "README: `{line}`: {cmd} has no {flag}"
            );
        }
        checked += 1;
    }
    assert!(checked >= 7, "only {checked} README commands found");
}

/// Every `--method` of the library trains, is saved as what it is, and evaluates on one loaded
/// base under two names to exactly the accuracy the training run reported.
#[test]
fn every_adapter_method_trains_saves_and_evaluates() {
    let sb = Sandbox::new();
    for (method, extra) in [
        (
            "lora",
            &["--rank", "4", "--alpha", "8", "--targets", "query,value"][..],
        ),
        ("ia3", &[][..]),
        ("prefix", &["--prefix-length", "4"][..]),
        ("prompt", &["--prefix-length", "3"][..]),
    ] {
        let run = sb.path(&format!("run-{method}"));
        let mut args = vec!["--quiet".to_string(), "--json".into(), "train".into()];
        args.extend(sb.model_args());
        args.extend(
            [
                "--train",
                &sb.p("train.tsv"),
                "--valid",
                &sb.p("valid.tsv"),
                "--label-column",
                "sentiment",
                "--out",
                &run.display().to_string(),
                "--epochs",
                "1",
                "--batch-size",
                "16",
                "--lr",
                "1e-2",
                "--method",
                method,
            ]
            .map(String::from),
        );
        args.extend(extra.iter().map(|s| s.to_string()));
        let report = json(&sb.ok(&strs(&args)));
        let trained_acc = report["final_eval"]["accuracy"]
            .as_f64()
            .unwrap_or(f64::NAN);
        assert!(trained_acc.is_finite(), "{method}: {report}");
        // One epoch: the validation set scored once, after training (not also in the loop).
        assert_eq!(report["valid_evaluations"], 1, "{method}: {report}");
        assert!(
            !run.join("valid").exists(),
            "{method}: scored in the loop too"
        );
        let adapter = run.join("adapter");
        let info = json(&sb.ok(&["--json", "inspect", &adapter.display().to_string()]));
        let expected = match method {
            "prefix" => "prefix_tuning",
            "prompt" => "prompt_tuning",
            m => m,
        };
        assert_eq!(info["method"], expected, "{method}: {info}");
        let rows = eval_accuracies(&sb, &[&adapter, &adapter]);
        assert_eq!(rows.len(), 2, "{method}");
        assert_ne!(rows[0].0, rows[1].0, "{method}: one name for two adapters");
        for (_, acc) in &rows {
            assert!(
                (acc - trained_acc).abs() < 1e-9,
                "{method}: {rows:?} vs trained {trained_acc}"
            );
        }
        // AdapterHub's format: LoRA and prefix tuning convert, inspect and evaluate alike;
        // our default IA³ (PEFT's input scaling on the FFN output projection) and prompt
        // tuning have no AdapterHub directory here and are refused naming why.
        let hub = sb.path(&format!("hub-{method}"));
        let mut args = vec![
            "--quiet".to_string(),
            "convert".into(),
            adapter.display().to_string(),
            hub.display().to_string(),
            "--to".into(),
            "adapterhub".into(),
        ];
        args.extend(sb.model_args());
        match method {
            "ia3" => sb.fails(&strs(&args), 1, "`feedforward` is not supported"),
            "prompt" => sb.fails(&strs(&args), 1, "prompt_tuning adapter"),
            _ => {
                sb.ok(&strs(&args));
                let info = json(&sb.ok(&["--json", "inspect", &hub.display().to_string()]));
                assert_eq!(info["format"], "adapterhub", "{method}: {info}");
                assert_eq!(info["method"], expected, "{method}: {info}");
                let rows = eval_accuracies(&sb, &[&hub]);
                assert!(
                    (rows[0].1 - trained_acc).abs() < 1e-9,
                    "{method}: AdapterHub dir {rows:?} vs trained {trained_acc}"
                );
            }
        }
    }
}
