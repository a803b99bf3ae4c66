//! The timed workloads: W1 training, W2 inference, W3 peak RSS, adapter overhead.

use super::*;

pub(crate) fn cmd_w1(args: &Args) -> Res<()> {
    let method = Method::parse(args.str_or("method", "seq_bn"))?;
    if matches!(method, Method::Base | Method::LoraMerged) {
        return Err("w1: method must be seq_bn, double_seq_bn, head, full or lora".into());
    }
    let dropout = dropout_flag(args)?;
    let repeats: usize = args.num("repeats", 3)?;
    let warmup: usize = args.num("warmup", 5)?;
    let steps: usize = args.num("steps", 60)?;
    let batch_size: usize = args.num("batch-size", 32)?;
    let device = args.device()?.autodiff();
    let n_rows = (warmup + steps) * batch_size;

    let t0 = Instant::now();
    let data = workload_batches(
        args,
        "train.tsv",
        Some(n_rows),
        batch_size,
        SYNTH_LEN_W1,
        BatchOrder::Input,
        &device,
    )?;
    let tokenize_s = t0.elapsed().as_secs_f64();
    let timed_tokens = &data.tokens[warmup.min(data.tokens.len())..];
    let padded: usize = timed_tokens.iter().map(|t| t.0).sum();
    let real: usize = timed_tokens.iter().map(|t| t.1).sum();
    log(format!(
        "w1 {} dropout {:?}: {} batches from {}, timed padded tokens {padded}",
        method.name(),
        dropout,
        data.batches.len(),
        data.source
    ));

    let optim_config = OptimConfig::new()
        .with_lr(method.lr())
        .with_weight_decay(0.0)
        .with_epsilon(1e-8)
        .with_max_grad_norm(None)
        .with_schedule(Schedule::Constant);
    let mut reps = Vec::new();
    let mut info = Value::Null;
    for r in 0..repeats {
        let b0 = Instant::now();
        let (model, i) = build_model(args, method, dropout, &device)?;
        info = i;
        let build_s = b0.elapsed().as_secs_f64();
        let mut optim = optim_config.optimizer();
        let mut task = ClassificationTask::new(model, StepGuard::new(None, 1, None));
        for batch in &data.batches[..warmup] {
            task = train_step(task, &mut optim, method.lr(), batch.clone())?.0;
        }
        device.sync().map_err(|e| format!("{e:?}"))?;
        let mut step_ms = Vec::new();
        let mut losses = Vec::new();
        let meter = NoiseMeter::start();
        for batch in &data.batches[warmup..] {
            let s0 = Instant::now();
            let (t, loss) = train_step(task, &mut optim, method.lr(), batch.clone())?;
            task = t;
            losses.push(loss);
            step_ms.push(1000.0 * s0.elapsed().as_secs_f64());
        }
        device.sync().map_err(|e| format!("{e:?}"))?;
        let (wall, mut rec) = meter.finish();
        let n_steps = data.batches.len() - warmup;
        let eps = (n_steps * batch_size) as f64 / wall;
        log(format!(
            "w1 {} rep {r}: {eps:.1} ex/s, median step {:.0} ms, loss {:.4} -> {:.4}, foreign {}",
            method.name(),
            median(&step_ms),
            losses.first().copied().unwrap_or(f64::NAN),
            losses.last().copied().unwrap_or(f64::NAN),
            rec["foreign_cores"]
        ));
        if let Some(o) = rec.as_object_mut() {
            o.insert("repeat".into(), json!(r));
            o.insert("build_s".into(), json!(build_s));
            o.insert("examples_per_s".into(), json!(eps));
            o.insert("padded_tokens_per_s".into(), json!(padded as f64 / wall));
            o.insert("median_step_ms".into(), json!(median(&step_ms)));
            o.insert("first_loss".into(), json!(losses.first()));
            o.insert("last_loss".into(), json!(losses.last()));
        }
        reps.push(rec);
    }
    let eps: Vec<f64> = reps
        .iter()
        .filter_map(|r| r["examples_per_s"].as_f64())
        .collect();
    let ms: Vec<f64> = reps
        .iter()
        .filter_map(|r| r["median_step_ms"].as_f64())
        .collect();
    let record = json!({
        "impl": "burn-peft",
        "workload": "w1",
        "method": method.name(),
        "dropout": dropout.unwrap_or(0.1),
        "backend": backend_name(&device),
        "data": data.source,
        "model": info,
        "lr": method.lr(),
        "batch_size": batch_size,
        "warmup_steps": warmup,
        "timed_steps": data.batches.len().saturating_sub(warmup),
        "timed_padded_tokens": padded,
        "timed_real_tokens": real,
        "tokenize_s": tokenize_s,
        "examples_per_s": stats(&eps),
        "median_step_ms": median(&ms),
        "repeats": reps,
        "peak_rss_kb": peak_rss_kb(),
    });
    println!(
        "W1 {} (dropout {}): {:.1} examples/s, {:.0} ms/step, {padded} padded tokens in the timed steps",
        method.name(),
        dropout.unwrap_or(0.1),
        median(&eps),
        median(&ms)
    );
    args.emit(&record)
}

// ----------------------------------------------------------------------------------- W2

pub(crate) fn cmd_w2(args: &Args) -> Res<()> {
    let variant = Method::parse(args.str_or("variant", "base"))?;
    if variant == Method::Full {
        return Err(
            "w2: variant must be base, head, seq_bn, double_seq_bn, lora or lora_merged".into(),
        );
    }
    let passes: usize = args.num("passes", 3)?;
    let batch_size: usize = args.num("batch-size", 64)?;
    // Inference device: no autodiff, so dropout is off (the peer's eval + inference_mode).
    let device = args.device()?;
    // `--order by_length`: length-grouped batches (reported apart, never in a ratio).
    let order = match args.str_or("order", "input") {
        "input" => BatchOrder::Input,
        "by_length" | "by-length" => BatchOrder::ByLength,
        other => return Err(format!("--order: `{other}` is not input or by_length").into()),
    };
    let data = workload_batches(
        args,
        "dev.tsv",
        None,
        batch_size,
        SYNTH_LEN_W2,
        order,
        &device,
    )?;
    let n_examples: usize = data.batches.iter().map(|b| b.labels.dims()[0]).sum();
    let padded: usize = data.tokens.iter().map(|t| t.0).sum();
    let (model, info) = build_model(args, variant, None, &device)?;
    let task = ClassificationTask::new(model, StepGuard::default());
    let one_pass = || -> Res<()> {
        for batch in &data.batches {
            let out = InferenceStep::step(&task, batch.clone());
            let _logits = out.output.into_data();
        }
        Ok(())
    };
    one_pass()?; // untimed warm-up pass
    let mut reps = Vec::new();
    for p in 0..passes {
        let meter = NoiseMeter::start();
        one_pass()?;
        device.sync().map_err(|e| format!("{e:?}"))?;
        let (wall, mut rec) = meter.finish();
        let eps = n_examples as f64 / wall;
        log(format!(
            "w2 {} pass {p}: {eps:.1} ex/s ({wall:.2} s)",
            variant.name()
        ));
        if let Some(o) = rec.as_object_mut() {
            o.insert("pass".into(), json!(p));
            o.insert("examples_per_s".into(), json!(eps));
        }
        reps.push(rec);
    }
    let eps: Vec<f64> = reps
        .iter()
        .filter_map(|r| r["examples_per_s"].as_f64())
        .collect();
    println!(
        "W2 {}: {:.1} examples/s over {n_examples} examples ({padded} padded tokens)",
        variant.name(),
        median(&eps)
    );
    args.emit(&json!({
        "impl": "burn-peft",
        "workload": "w2",
        "variant": variant.name(),
        "order": if order == BatchOrder::ByLength { "by_length" } else { "input" },
        "backend": backend_name(&device),
        "data": data.source,
        "model": info,
        "batch_size": batch_size,
        "n_examples": n_examples,
        "padded_tokens": padded,
        "examples_per_s": stats(&eps),
        "passes": reps,
    }))
}

// ----------------------------------------------------------------------------------- W3

pub(crate) fn cmd_w3(args: &Args) -> Res<()> {
    let method = Method::parse(args.str_or("method", "seq_bn"))?;
    let tries: usize = args.num("tries", 1)?;
    let exe = std::env::current_exe()?;
    let mut runs = Vec::new();
    for t in 0..tries {
        let mut cmd = std::process::Command::new(&exe);
        cmd.args(["w1", "--method", method.name(), "--repeats", "1"]);
        for flag in ["device", "model", "data", "dropout"] {
            if let Some(v) = args.get(flag) {
                cmd.arg(format!("--{flag}={v}"));
            }
        }
        let out = cmd.stderr(std::process::Stdio::inherit()).output()?;
        if !out.status.success() {
            return Err(format!("w3 child failed: {}", out.status).into());
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let last = stdout
            .lines()
            .rev()
            .find(|l| l.starts_with('{'))
            .ok_or("w3: the child printed no JSON line")?;
        let child: Value = serde_json::from_str(last)?;
        let kb = child["peak_rss_kb"]
            .as_f64()
            .ok_or("w3: the child could not read its peak RSS (/proc/self/status VmHWM)")?;
        log(format!(
            "w3 {} try {t}: peak RSS {:.1} MB",
            method.name(),
            kb / 1024.0
        ));
        runs.push(
            json!({"try": t, "max_rss_kb": kb, "max_rss_mb": kb / 1024.0,
                         "examples_per_s": child["examples_per_s"]["median"]}),
        );
    }
    let mb: Vec<f64> = runs
        .iter()
        .filter_map(|r| r["max_rss_mb"].as_f64())
        .collect();
    println!("W3 {}: peak RSS {:.1} MB", method.name(), median(&mb));
    args.emit(&json!({
        "impl": "burn-peft",
        "workload": "w3",
        "method": method.name(),
        "backend": backend_name(&args.device()?),
        "what": "VmHWM of a child process running `w1 --repeats 1`",
        "max_rss_mb": stats(&mb),
        "runs": runs,
    }))
}

// ----------------------------------------------------------------------------- overhead

#[derive(Clone, Copy)]
pub(crate) enum LayerVariant {
    Plain,
    Adapter(Method),
}

impl LayerVariant {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Plain => "plain",
            Self::Adapter(m) => m.name(),
        }
    }
}

pub(crate) fn bert_layer(
    config: &BertConfig,
    variant: LayerVariant,
    device: &Device,
) -> Res<BertLayer> {
    device.seed(SEED);
    let mut layer = BertLayer::new(config, device);
    if let LayerVariant::Adapter(m) = variant {
        let TrainingMethod::Adapter { config: ac } = m.training() else {
            return Err("overhead: not an adapter method".into());
        };
        let d = config.hidden_size;
        let width = ac.width_for_layer(0, d)?;
        let wiring = ac.placement.wiring();
        let name = burn_peft::core::DEFAULT_ADAPTER;
        let setup = Some(burn_peft::core::Setup::single(name));
        for site in &ac.placement.sites {
            let adapter = ac.bottleneck.init(d, width, wiring, device)?;
            let slot = match site {
                burn_peft::core::AdapterSite::AttentionOutput => {
                    &mut layer.attention.output.adapters
                }
                burn_peft::core::AdapterSite::FeedForwardOutput => &mut layer.output.adapters,
            };
            slot.insert(name, ac.clone(), adapter);
            slot.set_active(setup.clone());
        }
    }
    Ok(freeze_except(layer, &Trainable::adapters())?)
}

pub(crate) fn cmd_overhead(args: &Args) -> Res<()> {
    let reps: usize = args.num("reps", 30)?;
    let rounds: usize = args.num("rounds", 5)?;
    let batch: usize = args.num("batch-size", 32)?;
    let seq: usize = args.num("seq", SYNTH_LEN_W1)?;
    let config = bert_config(args)?;
    let base = args.device()?;
    let variants = [
        LayerVariant::Plain,
        LayerVariant::Adapter(Method::SeqBn),
        LayerVariant::Adapter(Method::DoubleSeqBn),
    ];
    let mut results = serde_json::Map::new();
    for (mode, device) in [("infer", base.clone()), ("train", base.clone().autodiff())] {
        let layers: Vec<BertLayer> = variants
            .iter()
            .map(|&v| bert_layer(&config, v, &device))
            .collect::<Res<_>>()?;
        device.seed(SEED + 1);
        let x: Tensor<3> = Tensor::random(
            [batch, seq, config.hidden_size],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        let bias: Tensor<4> = Tensor::zeros([batch, 1, 1, seq], &device);
        let run = |layer: &BertLayer| {
            if mode == "train" {
                // The backward of a middle layer in adapter training: gradients flow to the
                // input (and into the adapter weights), not into the frozen weights.
                let x = x.clone().require_grad();
                let y = layer.forward(x.clone(), bias.clone());
                let grads = y.sum().backward();
                let _ = x.grad(&grads).map(|g| g.into_data());
            } else {
                let _ = layer.forward(x.clone(), bias.clone()).into_data();
            }
        };
        for layer in &layers {
            for _ in 0..3 {
                run(layer);
            }
        }
        let mut times: Vec<Vec<f64>> = vec![Vec::new(); layers.len()];
        for r in 0..rounds {
            // Rotate the order every round against drift.
            for k in 0..layers.len() {
                let i = (k + r) % layers.len();
                let t0 = Instant::now();
                for _ in 0..reps {
                    run(&layers[i]);
                }
                times[i].push(1000.0 * t0.elapsed().as_secs_f64() / reps as f64);
            }
        }
        let plain = median(&times[0]);
        let mut m = serde_json::Map::new();
        for (i, v) in variants.iter().enumerate() {
            let ms = median(&times[i]);
            log(format!(
                "overhead {mode} {}: {ms:.2} ms/forward, ratio {:.3}",
                v.name(),
                ms / plain
            ));
            m.insert(
                v.name().into(),
                json!({"ms": stats(&times[i]), "ratio_vs_plain": ms / plain}),
            );
        }
        results.insert(mode.into(), Value::Object(m));
    }
    for mode in ["infer", "train"] {
        for v in ["seq_bn", "double_seq_bn"] {
            println!(
                "overhead {mode} {v}: {:.3}x the plain layer",
                results[mode][v]["ratio_vs_plain"]
                    .as_f64()
                    .unwrap_or(f64::NAN)
            );
        }
    }
    args.emit(&json!({
        "impl": "burn-peft",
        "workload": "overhead",
        "backend": backend_name(&base),
        "input": [batch, seq, config.hidden_size],
        "what": "one BERT layer; infer = forward without autodiff, train = forward + backward to the input (base frozen)",
        "reps_per_round": reps,
        "rounds": rounds,
        "results": results,
    }))
}
