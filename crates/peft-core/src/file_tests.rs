//! Tests of the adapter file format (`file.rs`).

use super::*;
use crate::attach::attach_adapters;
use crate::freeze::randomize_matching;
use crate::testing::Toy;
use burn::tensor::{Device, Distribution, Tensor};

fn base(toy: &Toy) -> BaseModelInfo {
    BaseModelInfo {
        architecture: "toy".into(),
        hidden_size: toy.d,
        num_layers: toy.blocks.len(),
        name_or_path: None,
    }
}

fn trained_pair() -> (Toy, Toy, AdapterFile) {
    let device = Device::flex();
    device.seed(5);
    let config = AdapterConfig::houlsby(2.0);
    let mut toy = Toy::new(8, 2, &device);
    attach_adapters(&mut toy, &config, &device).unwrap_or_else(|e| panic!("{e}"));
    let fresh = toy.clone();
    let saved = Trainable::adapters().with_pattern(r"^head\.");
    let toy = randomize_matching(toy, r"adapters\.|^head\.", 0.3).unwrap_or_else(|e| panic!("{e}"));
    let file = AdapterFile::new(AdapterMethod::Bottleneck(config), base(&toy), &saved);
    (toy, fresh, file)
}

#[test]
fn round_trip_gives_identical_outputs_and_saves_only_adapters() {
    let (toy, mut fresh, file) = trained_pair();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    save_adapter(&toy, dir.path(), &file).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .map(|r| {
            r.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(names.len(), 2, "no temporary files left: {names:?}");

    let read = read_adapter_file(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read, file);
    read.check_base(&base(&fresh), dir.path())
        .unwrap_or_else(|e| panic!("{e}"));
    let x = Tensor::<3>::random([2, 3, 8], Distribution::Normal(0.0, 1.0), &Device::flex());
    assert_ne!(
        fresh.forward(x.clone()).into_data(),
        toy.forward(x.clone()).into_data()
    );
    let report =
        load_adapter_weights(&mut fresh, dir.path(), &read).unwrap_or_else(|e| panic!("{e}"));
    // 4 adapters x 4 tensors + head weight and bias.
    assert_eq!(report.loaded.len(), 18);
    assert_eq!(
        fresh.forward(x.clone()).into_data(),
        toy.forward(x).into_data()
    );
    assert_eq!(
        fresh.head.weight.val().into_data(),
        toy.head.weight.val().into_data()
    );
}

#[test]
fn mismatches_are_clear_errors() {
    let (toy, _, file) = trained_pair();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    save_adapter(&toy, dir.path(), &file).unwrap_or_else(|e| panic!("{e}"));
    let device = Device::flex();

    let wider = Toy::new(16, 2, &device);
    assert!(matches!(
        file.check_base(&base(&wider), dir.path()),
        Err(PeftError::Incompatible { .. })
    ));
    // Weights of another width: shape errors name the tensor.
    let mut wider = wider;
    attach_adapters(&mut wider, &AdapterConfig::houlsby(2.0), &device)
        .unwrap_or_else(|e| panic!("{e}"));
    let err = load_adapter_weights(&mut wider, dir.path(), &file);
    assert!(
        matches!(&err, Err(PeftError::Incompatible { message, .. }) if message.contains("adapter_down")),
        "{err:?}"
    );
    // A model without adapters has no place for the file's tensors.
    let mut bare = Toy::new(8, 2, &device);
    let err = load_adapter_weights(&mut bare, dir.path(), &file);
    assert!(
        matches!(&err, Err(PeftError::Incompatible { message, .. }) if message.contains("lacks")),
        "{err:?}"
    );
    // A model with more adapters than the file.
    let mut more = Toy::new(8, 3, &device);
    attach_adapters(&mut more, &AdapterConfig::houlsby(2.0), &device)
        .unwrap_or_else(|e| panic!("{e}"));
    let before = more.clone();
    let err = load_adapter_weights(&mut more, dir.path(), &file);
    assert!(
        matches!(&err, Err(PeftError::Incompatible { message, .. }) if message.contains("blocks.2")),
        "{err:?}"
    );
    // No half-applied load: blocks 0 and 1, which the file fits, keep their (identity)
    // adapters instead of the file's non-zero ones.
    let x = Tensor::<3>::random([2, 3, 8], Distribution::Normal(0.0, 1.0), &device);
    assert_eq!(
        more.forward(x.clone()).into_data(),
        before.forward(x).into_data(),
        "a failed load must leave the model untouched"
    );
}

#[test]
fn own_file_names_and_old_directories() {
    let (toy, fresh, file) = trained_pair();
    let pristine = fresh.clone();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    save_adapter(&toy, dir.path(), &file).unwrap_or_else(|e| panic!("{e}"));
    // Not PEFT's names.
    assert!(dir.path().join("burn_peft_adapter.json").is_file());
    assert!(dir.path().join("burn_peft_adapter.safetensors").is_file());
    assert!(!dir.path().join("adapter_config.json").exists());
    // A directory written before issue 10 (PEFT's names) still loads.
    for (new, old) in [
        (CONFIG_FILE, LEGACY_CONFIG_FILE),
        (WEIGHTS_FILE, LEGACY_WEIGHTS_FILE),
    ] {
        std::fs::rename(dir.path().join(new), dir.path().join(old))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let read = read_adapter_file(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read, file);
    let mut fresh = fresh;
    load_adapter_weights(&mut fresh, dir.path(), &read).unwrap_or_else(|e| panic!("{e}"));
    let x = Tensor::<3>::random([2, 3, 8], Distribution::Normal(0.0, 1.0), &Device::flex());
    assert_eq!(
        fresh.forward(x.clone()).into_data(),
        toy.forward(x).into_data()
    );
    // The tensor names of that time: one unnamed adapter per site (`.adapter.`).
    let weights = dir.path().join(LEGACY_WEIGHTS_FILE);
    let bytes = std::fs::read(&weights).unwrap_or_default();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap_or_else(|e| panic!("{e}"));
    let old_names: Vec<(String, safetensors::tensor::TensorView<'_>)> = st
        .tensors()
        .into_iter()
        .map(|(k, v)| (k.replace(".adapters.default.", ".adapter."), v))
        .collect();
    assert!(
        old_names
            .iter()
            .any(|(k, _)| k.contains(".adapter.adapter_down."))
    );
    let old_bytes =
        safetensors::tensor::serialize(old_names, None).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&weights, old_bytes).unwrap_or_else(|e| panic!("{e}"));
    let mut fresh2 = pristine;
    load_adapter_weights(&mut fresh2, dir.path(), &read).unwrap_or_else(|e| panic!("{e}"));
    let x = Tensor::<3>::random([2, 3, 8], Distribution::Normal(0.0, 1.0), &Device::flex());
    assert_eq!(
        fresh2.forward(x.clone()).into_data(),
        toy.forward(x).into_data()
    );
    // Another library's adapter_config.json says which loader to use.
    let hub = dir.path().join(LEGACY_CONFIG_FILE);
    std::fs::write(&hub, r#"{"config": {"mh_adapter": false}, "name": "a"}"#).ok();
    assert!(matches!(
        read_adapter_file(dir.path()),
        Err(PeftError::ForeignAdapterDir { message, .. }) if message.contains("AdapterHub")
    ));
    std::fs::write(&hub, r#"{"peft_type": "LORA", "r": 8}"#).ok();
    assert!(matches!(
        read_adapter_file(dir.path()),
        Err(PeftError::ForeignAdapterDir { message, .. }) if message.contains("PEFT")
    ));
}

#[test]
fn layer_widths_survive_a_round_trip() {
    // JSON object keys are strings: the per-layer widths must still read back.
    let (toy, _, mut file) = trained_pair();
    let AdapterMethod::Bottleneck(config) = &mut file.adapter else {
        panic!("bottleneck");
    };
    config
        .layer_widths
        .insert(1, crate::config::BottleneckWidth::BottleneckDim(3));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    save_adapter(&toy, dir.path(), &file).unwrap_or_else(|e| panic!("{e}"));
    let read = read_adapter_file(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read, file);
}

#[test]
fn bad_config_files_are_typed_errors() {
    let (toy, _, file) = trained_pair();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    save_adapter(&toy, dir.path(), &file).unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path).unwrap_or_default();

    std::fs::write(
        &path,
        text.replace("\"format_version\": 1", "\"format_version\": 9"),
    )
    .ok();
    assert!(matches!(
        read_adapter_file(dir.path()),
        Err(PeftError::UnsupportedVersion { found: 9, .. })
    ));
    std::fs::write(&path, &text[..text.len() / 2]).ok();
    assert!(matches!(
        read_adapter_file(dir.path()),
        Err(PeftError::MalformedJson { .. })
    ));
    std::fs::write(
        &path,
        text.replace("\"library\"", "\"surprise\": 1, \"library\""),
    )
    .ok();
    assert!(matches!(
        read_adapter_file(dir.path()),
        Err(PeftError::MalformedJson { .. })
    ));
    std::fs::write(&path, text.replace("\"swish\"", "\"sigmoidish\"")).ok();
    assert!(matches!(
        read_adapter_file(dir.path()),
        Err(PeftError::MalformedJson { .. })
    ));

    let weights = dir.path().join(WEIGHTS_FILE);
    let bytes = std::fs::read(&weights).unwrap_or_default();
    std::fs::write(&weights, &bytes[..bytes.len() / 2]).ok();
    let mut fresh = toy.clone();
    let err = load_adapter_weights(&mut fresh, dir.path(), &file);
    assert!(matches!(err, Err(PeftError::Weights { .. })), "{err:?}");
    std::fs::remove_file(&weights).ok();
    assert!(matches!(
        load_adapter_weights(&mut fresh, dir.path(), &file),
        Err(PeftError::Io { .. })
    ));
}
