//! Parameter counts and saved adapter sizes.

use super::*;

pub(crate) fn cmd_params(args: &Args) -> Res<()> {
    // On an autodiff device: `require_grad` (what the count reads) exists only there.
    let device = args.device()?.autodiff();
    let mut out = serde_json::Map::new();
    for m in [
        Method::SeqBn,
        Method::DoubleSeqBn,
        Method::Head,
        Method::Full,
        Method::Lora,
    ] {
        let (_, info) = build_model(args, m, None, &device)?;
        println!(
            "params {}: {} trainable of {}",
            m.name(),
            info["trainable_params"],
            info["total_params"]
        );
        out.insert(m.name().into(), info);
    }
    args.emit(&json!({"impl": "burn-peft", "workload": "params", "methods": out}))
}

pub(crate) fn dir_listing(dir: &Path) -> Res<Value> {
    let mut files = serde_json::Map::new();
    let mut total = 0u64;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let len = entry.metadata()?.len();
        total += len;
        files.insert(entry.file_name().to_string_lossy().into_owned(), json!(len));
    }
    Ok(json!({"total_bytes": total, "files": files}))
}

pub(crate) fn cmd_sizes(args: &Args) -> Res<()> {
    let device = args.device()?;
    let tmp = tempfile::tempdir()?;
    let mut entries = serde_json::Map::new();
    for m in [Method::SeqBn, Method::DoubleSeqBn, Method::Head] {
        let (model, _) = build_model(args, m, None, &device)?;
        let method = match m.training() {
            TrainingMethod::Adapter { config } => AdapterMethod::Bottleneck(config),
            _ => AdapterMethod::HeadOnly,
        };
        let first = if m == Method::Head {
            "only"
        } else {
            "with_head"
        };
        let mut variants = vec![(
            first,
            m.training().trainable(burn_peft::core::DEFAULT_ADAPTER),
            true,
        )];
        if m != Method::Head {
            variants.push(("no_head", Trainable::adapters(), false));
        }
        for (suffix, trainable, head) in variants {
            let mut file = AdapterFile::new(method.clone(), model.base_info(), &trainable);
            if head {
                file = file.with_head(model.head_info());
            }
            let name = format!("{}_{suffix}", m.name());
            let dir = tmp.path().join(&name);
            save_adapter(&model, &dir, &file)?;
            let listing = dir_listing(&dir)?;
            println!("sizes {name}: {} bytes", listing["total_bytes"]);
            entries.insert(name, listing);
        }
    }
    let base = args
        .model_dir()
        .and_then(|d| find_checkpoint(&d).ok())
        .and_then(|p| std::fs::metadata(p).ok())
        .map(|m| m.len());
    args.emit(&json!({
        "impl": "burn-peft",
        "workload": "sizes",
        "entries": entries,
        "original_model_bytes": base,
    }))
}
