//! `burn-peft inspect DIR` and `burn-peft convert SRC DST --to FORMAT`.

use std::path::{Path, PathBuf};

use burn_peft::core::adapterhub::{self, HubFile};
use burn_peft::core::{AdapterFile, AdapterMethod, DEFAULT_ADAPTER, read_adapter_file};
use burn_peft::models::adapterhub::save_adapterhub_classifier;
use burn_peft::models::head::{BertClassifier, ClassificationHeadConfig, HeadPooling};
use burn_peft::models::peft::save_peft_classifier;
use burn_peft::train::serve::{DirFormat, activate, dir_head, load_adapter_as};
use clap::{Args, ValueEnum};
use serde_json::{Value, json};

use crate::common::{BertArgs, CmdError, CmdResult, Output, failed};

/// `burn-peft inspect`.
#[derive(Args, Debug)]
pub struct InspectCmd {
    /// An adapter directory: ours (burn_peft_adapter.json), AdapterHub's or PEFT's
    /// (adapter_config.json)
    #[arg(value_name = "DIR", value_parser = burn_peft::cli::existing_dir)]
    dir: PathBuf,
}

fn file_sizes(dir: &Path) -> CmdResult<Vec<(String, u64)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            files.push((
                entry.file_name().to_string_lossy().into_owned(),
                entry.metadata()?.len(),
            ));
        }
    }
    files.sort();
    Ok(files)
}

/// Parameters in a safetensors file (from its header: no tensor is read).
fn safetensors_params(path: &Path) -> CmdResult<Option<u64>> {
    if !path.is_file() || path.extension().is_none_or(|e| e != "safetensors") {
        return Ok(None);
    }
    let bytes = std::fs::read(path)?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| failed(format!("{}: {e}", path.display())))?;
    Ok(Some(
        meta.tensors()
            .values()
            .map(|t| t.shape.iter().product::<usize>() as u64)
            .sum(),
    ))
}

fn describe_ours(dir: &Path, file: &AdapterFile) -> CmdResult<Value> {
    let method = file.adapter.name();
    let config = match &file.adapter {
        AdapterMethod::Bottleneck(c) => serde_json::to_value(c)?,
        AdapterMethod::Lora(c) => serde_json::to_value(c)?,
        AdapterMethod::Ia3(c) => serde_json::to_value(c)?,
        AdapterMethod::PrefixTuning(c) => serde_json::to_value(c)?,
        AdapterMethod::PromptTuning(c) => serde_json::to_value(c)?,
        AdapterMethod::HeadOnly => Value::Null,
        AdapterMethod::Fusion { adapters, config } => {
            json!({"adapters": adapters, "fusion": serde_json::to_value(config)?})
        }
    };
    let weights = burn_peft::core::file::weights_file(dir);
    // Where the adapter sits: `layer<i>.<site>` for every layer of the base it targets.
    let sites: Vec<String> = match &file.adapter {
        AdapterMethod::Bottleneck(c) => (0..file.base_model.num_layers)
            .flat_map(|l| {
                burn_peft::core::AdapterSite::ALL
                    .into_iter()
                    .filter(move |&s| c.placement.targets(l, s))
                    .map(move |s| format!("layer{l}.{}", s.name()))
            })
            .collect(),
        _ => Vec::new(),
    };
    Ok(json!({
        "format": "burn-peft",
        "method": method,
        "sites": sites,
        "config": config,
        "base_model": file.base_model,
        "head": file.head,
        "saved_patterns": file.saved_patterns,
        "parameters": safetensors_params(&weights)?,
        "library": file.library,
    }))
}

fn describe_hub(dir: &Path) -> CmdResult<Value> {
    let file = HubFile::read(dir.join(adapterhub::CONFIG_FILE))?;
    let head = dir_head(dir)?;
    let model = file.model();
    // Adapter and head weights (safetensors only: a `.bin` is not parsed here).
    let mut params = None;
    for f in [
        adapterhub::WEIGHTS_SAFETENSORS,
        adapterhub::HEAD_WEIGHTS_SAFETENSORS,
    ] {
        if let Some(n) = safetensors_params(&dir.join(f))? {
            params = Some(params.unwrap_or(0) + n);
        }
    }
    Ok(json!({
        "format": "adapterhub",
        "name": file.name(),
        "method": file.method(),
        "config": file.config_value()?,
        "base_model": {
            "model_type": model.model_type,
            "model_name": model.model_name,
            "model_class": model.model_class,
            "hidden_size": model.hidden_size,
        },
        "head": dir.join(adapterhub::HEAD_CONFIG_FILE).is_file().then(|| json!({
            "num_labels": head.num_labels,
            "label_names": head.labels,
        })),
        "parameters": params,
        "version": model.version,
        "unknown_keys": file.unknown_keys(),
    }))
}

fn describe_peft(dir: &Path) -> CmdResult<Value> {
    let path = dir.join(burn_peft::core::peft::CONFIG_FILE);
    let config: Value = serde_json::from_str(&std::fs::read_to_string(&path)?)
        .map_err(|e| failed(format!("{}: {e}", path.display())))?;
    let method = match config["peft_type"].as_str() {
        Some("LORA") => "lora",
        Some("IA3") => "ia3",
        _ => "unknown",
    };
    let labels = burn_peft::models::peft::peft_classifier_labels(dir)?;
    Ok(json!({
        "format": "peft",
        "method": method,
        "config": config,
        "base_model": {"model_name": config["base_model_name_or_path"]},
        "task_type": config["task_type"],
        "head": labels.map(|n| json!({"num_labels": n, "label_names": []})),
        "parameters": safetensors_params(&dir.join(burn_peft::core::peft::WEIGHTS_FILE))?,
    }))
}

/// Run `burn-peft inspect`.
pub fn run_inspect(cmd: InspectCmd, out: &Output) -> CmdResult {
    let dir = &cmd.dir;
    let mut info = match DirFormat::of(dir) {
        DirFormat::AdapterHub => describe_hub(dir)?,
        DirFormat::Peft => describe_peft(dir)?,
        DirFormat::BurnPeft => describe_ours(dir, &read_adapter_file(dir)?)?,
    };
    let files = file_sizes(dir)?;
    info["files"] = json!(
        files
            .iter()
            .map(|(n, b)| json!({"name": n, "bytes": b}))
            .collect::<Vec<_>>()
    );
    if out.json {
        return out.print_json(&info);
    }
    println!("{}", dir.display());
    if let Value::Object(map) = &info {
        for (k, v) in map {
            match v {
                Value::Null => {}
                Value::String(s) => println!("  {k}: {s}"),
                other => println!("  {k}: {other}"),
            }
        }
    }
    Ok(())
}

/// The formats `convert` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// AdapterHub's `save_adapter` directory (`adapters` 1.3 `load_adapter` reads it)
    Adapterhub,
    /// Hugging Face PEFT's `save_pretrained` directory, `SEQ_CLS` task (LoRA with a head on
    /// the pooler: `train --head-pooling pooler`; `PeftModel.from_pretrained` reads it)
    Peft,
    /// Ours (`burn_peft_adapter.json` + `.safetensors`)
    BurnPeft,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Self::Adapterhub => "adapterhub",
            Self::Peft => "peft",
            Self::BurnPeft => "burn-peft",
        }
    }
}

/// Error (naming `--to`) unless `src` can be written as `to`: PEFT has LoRA and IA³ (no
/// bottleneck adapters, prefixes or prompts; IA³ is written without `modules_to_save`, so only
/// LoRA keeps its classifier), and its `SEQ_CLS` classifier sits on the pooler.
/// Read from the source's files only, before the base is loaded.
fn check_target(src: &Path, from: DirFormat, to: Format) -> CmdResult {
    if from == DirFormat::Peft && to == Format::Peft
        || from == DirFormat::AdapterHub && to == Format::Adapterhub
        || from == DirFormat::BurnPeft && to == Format::BurnPeft
    {
        return Err(CmdError::Usage(format!(
            "--to {}: {} is already in that format",
            to.name(),
            src.display()
        )));
    }
    if to != Format::Peft {
        return Ok(());
    }
    let method = match from {
        DirFormat::AdapterHub => "bottleneck".to_string(),
        _ => read_adapter_file(src)?.adapter.name().to_string(),
    };
    match method.as_str() {
        "lora" => {}
        "ia3" => {
            return Err(CmdError::Usage(format!(
                "--to peft: {} holds an IA³ adapter; IA³ PEFT directories are written without \
                 modules_to_save here, which would drop its classifier (LoRA converts)",
                src.display()
            )));
        }
        _ => {
            return Err(CmdError::Usage(format!(
                "--to peft: {} holds a {method} adapter; PEFT's format has LoRA and IA³ only",
                src.display()
            )));
        }
    }
    if dir_head(src)?.pooling != HeadPooling::Pooler {
        return Err(CmdError::Usage(format!(
            "--to peft: the head in {} has its own dense layer; PEFT's SEQ_CLS classifier sits \
             on the pooler (train with --head-pooling pooler)",
            src.display()
        )));
    }
    Ok(())
}

/// `burn-peft convert`.
#[derive(Args, Debug)]
pub struct ConvertCmd {
    /// The adapter directory to convert (ours, AdapterHub's or PEFT's)
    #[arg(value_name = "SRC", value_parser = burn_peft::cli::existing_dir)]
    src: PathBuf,
    /// The directory to write (must not exist, or be empty)
    #[arg(value_name = "DST")]
    dst: PathBuf,
    /// The format to write
    #[arg(long, value_enum)]
    to: Format,
    /// The adapter's name in an AdapterHub directory [default: the source's name]
    #[arg(long, value_name = "NAME", value_parser = burn_peft::cli::task_name)]
    name: Option<String>,
    #[command(flatten)]
    bert: BertArgs,
}

/// Run `burn-peft convert`: the adapter is loaded onto the base (so every tensor is checked
/// and mapped by the model's own key tables), then saved in the other format.
pub fn run_convert(cmd: ConvertCmd, out: &Output) -> CmdResult {
    if cmd.dst.exists()
        && std::fs::read_dir(&cmd.dst)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(CmdError::Usage(format!(
            "DST {} exists and is not empty",
            cmd.dst.display()
        )));
    }
    check_target(&cmd.src, DirFormat::of(&cmd.src), cmd.to)?;
    let device = cmd.bert.device()?;
    let head = dir_head(&cmd.src)?;
    let base_dir = cmd.bert.resolve_dir()?;
    out.info(format!(
        "model: {} | device: {device:?}",
        base_dir.display()
    ));
    let (bert, _) = burn_peft::models::bert::BertModel::from_pretrained(&base_dir, &device)?;
    let head_config =
        ClassificationHeadConfig::new(bert.hidden_size, head.num_labels).with_pooling(head.pooling);
    // The base head gets a name no adapter uses; the adapter is loaded as the target's name.
    let mut model = BertClassifier::new_named(bert, "burn_peft_base_head", &head_config, &device)?;
    let name = match cmd.to {
        Format::BurnPeft | Format::Peft => DEFAULT_ADAPTER.to_string(),
        Format::Adapterhub => match &cmd.name {
            Some(n) => n.clone(),
            None => burn_peft::train::serve::free_name(&model, &cmd.src)?,
        },
    };
    let loaded = load_adapter_as(&mut model, &cmd.src, &name, &device)?;
    activate(&mut model, &loaded)?;
    model.delete_head("burn_peft_base_head")?;
    match cmd.to {
        Format::Adapterhub => {
            if !loaded.has_adapter {
                return Err(failed(format!(
                    "{}: a head-only save has no adapter for AdapterHub's format",
                    cmd.src.display()
                )));
            }
            save_adapterhub_classifier(&model, &name, &cmd.dst)?;
        }
        Format::Peft => {
            save_peft_classifier(&model, &name, &cmd.dst, Some(&cmd.bert.model))?;
        }
        Format::BurnPeft => {
            let config = burn_peft::core::adapters(&model)
                .into_iter()
                .find(|a| a.name == name)
                .map(|a| a.config)
                .ok_or_else(|| failed("the converted adapter is missing"))?;
            let file = AdapterFile::new(
                AdapterMethod::of(&config),
                model.base_info(),
                &BertClassifier::task_trainable(&name),
            )
            .with_head(burn_peft::core::HeadInfo {
                problem_type: head.problem_type,
                ..model.head_info()
            });
            burn_peft::core::save_adapter(&model, &cmd.dst, &file)?;
        }
    }
    if out.json {
        return out.print_json(&json!({
            "src": cmd.src, "dst": cmd.dst, "to": cmd.to.name(),
            "name": name,
        }));
    }
    println!(
        "{} -> {} ({})",
        cmd.src.display(),
        cmd.dst.display(),
        cmd.to.name()
    );
    Ok(())
}
