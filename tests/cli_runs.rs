//! The `burn-peft` binary on an output directory that holds a run (`--resume`, `--overwrite`)
//! and converting LoRA adapters to and from Hugging Face PEFT's format, on the committed tiny
//! BERT fixture (helpers: `cli_common`).

mod cli_common;

use std::path::Path;

use cli_common::{Sandbox, fixture, json, predictions, strs};
use serde_json::Value;

/// An `--out` holding a run: refused without `--resume` or `--overwrite` (exit 2, before the
/// model is resolved: the Hub id is never fetched); `--resume` continues it exactly where it
/// stopped and needs the same settings; `--overwrite` starts over.
#[test]
fn an_earlier_run_needs_resume_or_overwrite() {
    let sb = Sandbox::new();
    let run = sb.p("run");
    let hub_id = "sentence-transformers/all-MiniLM-L6-v2";
    let fixture = fixture().display().to_string();
    let train = |model: &str, extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = [
            "--quiet",
            "--json",
            "train",
            "--model",
            model,
            "--tokenizer",
            &sb.p("tokenizer.json"),
            "--train",
            &sb.p("train.tsv"),
            "--valid",
            &sb.p("valid.tsv"),
            "--label-column",
            "sentiment",
            "--out",
            &run,
            "--batch-size",
            "16",
        ]
        .map(String::from)
        .to_vec();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    sb.fails(&strs(&train(hub_id, &["--resume"])), 2, "--resume: ");
    sb.fails(
        &strs(&train(hub_id, &["--resume", "--overwrite"])),
        2,
        "'--resume' cannot be used with '--overwrite'",
    );
    let first = json(&sb.ok(&strs(&train(&fixture, &["--epochs", "1", "--lr", "1e-2"]))));
    assert_eq!(first["steps"], 10, "{first}");
    // The same command again: a finished run, left alone.
    for extra in [&["--epochs", "1"][..], &["--epochs", "1", "--resume"]] {
        sb.fails(
            &strs(&train(hub_id, extra)),
            2,
            "holds a finished run (1 epoch(s), --epochs 1; results in",
        );
    }
    // More epochs: an unfinished run, which needs one of the two flags.
    sb.fails(
        &strs(&train(hub_id, &["--epochs", "2", "--lr", "1e-2"])),
        2,
        "holds an unfinished run (1 of 2 epoch(s), step 10): add --resume to continue it, or \
         --overwrite to start over",
    );
    // Other settings are refused when resuming (exit 1: found once the data is read).
    sb.fails(
        &strs(&train(
            &fixture,
            &["--epochs", "2", "--lr", "5e-3", "--resume"],
        )),
        1,
        "was made with",
    );
    let second = json(&sb.ok(&strs(&train(
        &fixture,
        &["--epochs", "2", "--lr", "1e-2", "--resume"],
    ))));
    assert_eq!(
        (
            &second["resumed_from_epoch"],
            &second["steps"],
            &second["valid_evaluations"]
        ),
        (
            &serde_json::json!(1),
            &serde_json::json!(20),
            &serde_json::json!(1)
        ),
        "{second}"
    );
    let third = json(&sb.ok(&strs(&train(
        &fixture,
        &["--epochs", "1", "--lr", "1e-2", "--overwrite"],
    ))));
    assert_eq!(
        (&third["resumed_from_epoch"], &third["steps"]),
        (&Value::Null, &serde_json::json!(10)),
        "{third}"
    );
    // Starting over is the first run again, bit for bit.
    for key in ["loss", "accuracy"] {
        assert_eq!(third["final_eval"][key], first["final_eval"][key], "{key}");
    }
}

/// A LoRA adapter (with a head on the pooler) converts to Hugging Face PEFT's format and back:
/// inspect reads the PEFT directory, and predictions from it equal the original's. Bottleneck
/// adapters, IA³ (written without its classifier) and heads with their own dense layer have no
/// PEFT form: one line each, exit 2, before the base is loaded.
#[test]
fn lora_converts_to_peft_and_back() {
    let sb = Sandbox::new();
    let hub_id = "sentence-transformers/all-MiniLM-L6-v2";
    let train = |method: &str, out: &str, pooling: &str| {
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
                &sb.p(out),
                "--batch-size",
                "16",
                "--lr",
                "1e-2",
                "--method",
                method,
                "--head-pooling",
                pooling,
                "--rank",
                "4",
                "--targets",
                "query,value,feed_forward_in",
            ]
            .map(String::from),
        );
        json(&sb.ok(&strs(&args)))
    };
    let convert = |src: &Path, dst: &Path, to: &str| {
        let mut args = vec![
            "convert".to_string(),
            src.display().to_string(),
            dst.display().to_string(),
            "--to".into(),
            to.into(),
        ];
        args.extend(sb.model_args());
        sb.ok(&strs(&args));
    };
    for (method, peft_type) in [("lora", "LORA")] {
        let run = format!("run-{method}");
        let report = train(method, &run, "pooler");
        let adapter = sb.path(&run).join("adapter");
        let peft = sb.path(&format!("peft-{method}"));
        let back = sb.path(&format!("back-{method}"));
        convert(&adapter, &peft, "peft");
        let info = json(&sb.ok(&["--json", "inspect", &peft.display().to_string()]));
        assert_eq!(
            (
                &info["format"],
                &info["method"],
                &info["config"]["peft_type"]
            ),
            (
                &Value::from("peft"),
                &Value::from(method),
                &Value::from(peft_type)
            ),
            "{info}"
        );
        assert_eq!(info["config"]["task_type"], "SEQ_CLS", "{info}");
        assert_eq!(info["head"]["num_labels"], 2, "{info}");
        // The adapter and the classifier: as many parameters as our file holds, less the head
        // parameters PEFT keeps in the base (none: the pooler is the base's).
        let ours = json(&sb.ok(&["--json", "inspect", &adapter.display().to_string()]));
        assert_eq!(info["parameters"], ours["parameters"], "{info} vs {ours}");
        convert(&peft, &back, "burn-peft");
        let original = predictions(&sb, &adapter);
        assert_eq!(original.len(), 40);
        for dir in [&peft, &back] {
            let other = predictions(&sb, dir);
            assert_eq!(other.len(), original.len(), "{method}");
            for ((la, pa), (lb, pb)) in original.iter().zip(&other) {
                assert_eq!(la, lb, "{method}: {}", dir.display());
                for (a, b) in pa.iter().zip(pb) {
                    assert!((a - b).abs() < 1e-6, "{method}: {pa:?} vs {pb:?}");
                }
            }
        }
        // PEFT saves no class names: its head is evaluated on the labels' ids (neg 0, pos 1).
        let valid = std::fs::read_to_string(sb.path("valid.tsv")).unwrap_or_else(|e| panic!("{e}"));
        let ids = valid
            .replace("\tneg\n", "\t0\n")
            .replace("\tpos\n", "\t1\n");
        std::fs::write(sb.path("valid-ids.tsv"), ids).unwrap_or_else(|e| panic!("{e}"));
        let mut args = vec!["--json".to_string(), "eval".into()];
        args.extend(sb.model_args());
        args.extend(
            [
                "--valid",
                &sb.p("valid-ids.tsv"),
                "--label-column",
                "sentiment",
                "--adapter",
                &peft.display().to_string(),
            ]
            .map(String::from),
        );
        let rows = json(&sb.ok(&strs(&args)));
        let trained = report["final_eval"]["accuracy"]
            .as_f64()
            .unwrap_or(f64::NAN);
        let acc = rows[0]["eval"]["accuracy"].as_f64().unwrap_or(f64::NAN);
        assert!(
            (acc - trained).abs() < 1e-9,
            "{method}: {rows} vs {trained}"
        );
    }
    // What PEFT cannot hold: a bottleneck adapter, a head with its own dense layer.
    train("pfeiffer", "run-pfeiffer", "pooler");
    train("lora", "run-lora-dense", "dense");
    train("ia3", "run-ia3", "pooler");
    for (run, needle) in [
        (
            "run-ia3",
            "IA³ PEFT directories are written without modules_to_save here",
        ),
        (
            "run-pfeiffer",
            "holds a bottleneck adapter; PEFT's format has LoRA and IA³ only",
        ),
        ("run-lora-dense", "train with --head-pooling pooler"),
    ] {
        let src = sb.path(run).join("adapter").display().to_string();
        let dst = sb.p(&format!("{run}-peft"));
        sb.fails(
            &["convert", &src, &dst, "--to", "peft", "--model", hub_id],
            2,
            needle,
        );
    }
}
