//! Markdown tables from the JSON lines of our runs and the peer's.

use super::*;

pub(crate) fn read_jsonl(path: &Path) -> Res<Vec<Value>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text
        .lines()
        .filter(|l| l.trim_start().starts_with('{'))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

pub(crate) fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

pub(crate) fn find<'a>(
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

pub(crate) fn fmt_stat(v: &Value) -> String {
    match (v["median"].as_f64(), v["min"].as_f64(), v["max"].as_f64()) {
        (Some(m), Some(lo), Some(hi)) if v["n"].as_u64().unwrap_or(1) > 1 => {
            format!("{m:.1} ({lo:.1}–{hi:.1})")
        }
        (Some(m), _, _) => format!("{m:.1}"),
        _ => "–".into(),
    }
}

pub(crate) fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "–".into(),
    }
}

pub(crate) fn foreign(r: Option<&Value>, list: &str) -> String {
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

pub(crate) fn shell(cmd: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

pub(crate) fn machine_info(ours: &[Value]) -> String {
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

pub(crate) fn cmd_report(args: &Args) -> Res<()> {
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
    for m in ["seq_bn", "double_seq_bn", "head", "full", "lora"] {
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
    for v in [
        "base",
        "head",
        "seq_bn",
        "double_seq_bn",
        "lora",
        "lora_merged",
    ] {
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
