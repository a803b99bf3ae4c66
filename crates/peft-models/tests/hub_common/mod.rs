//! Helpers shared by the AdapterHub directory tests (`adapterhub.rs`, `adapterhub_methods.rs`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::{Device, Tensor, Tolerance};
use peft_core::{Setup, set_active};
use peft_models::bert::head::{BertClassifier, ClassificationHeadConfig};
use peft_models::bert::{BertInput, BertModel};
use peft_models::golden::Golden;

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}
pub fn device() -> Device {
    Device::flex()
}
pub fn golden(rel: &str) -> Golden {
    Golden::from_file(fixtures().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}
pub fn bert() -> BertModel {
    let (model, _) = BertModel::from_pretrained(fixtures().join("tiny-bert"), &device())
        .unwrap_or_else(|e| panic!("{e}"));
    model.valid()
}
pub fn classifier() -> BertClassifier {
    let b = bert();
    let head = ClassificationHeadConfig::new(b.hidden_size, 2);
    BertClassifier::new(b, &head, &device()).unwrap_or_else(|e| panic!("{e}"))
}
pub fn bert_input(g: &Golden) -> BertInput {
    let d = device();
    let t = |k: &str| g.int::<2>(k, &d).unwrap_or_else(|e| panic!("{e}"));
    BertInput::new(t("input_ids"))
        .with_token_type_ids(t("token_type_ids"))
        .with_attention_mask(t("attention_mask"))
}
pub fn assert_close<const D: usize>(got: Tensor<D>, want: Tensor<D>, tol: f64, what: &str) {
    let diff = (got.clone() - want.clone())
        .abs()
        .max()
        .into_scalar::<f64>();
    assert!(diff <= tol, "{what}: max abs diff {diff} > {tol}");
    got.into_data()
        .assert_approx_eq::<f32>(&want.into_data(), Tolerance::absolute(tol));
}
pub fn active<M: peft_core::AdapterHost>(m: &mut M, setup: Setup) {
    set_active(m, Some(setup)).unwrap_or_else(|e| panic!("{e}"));
}
/// Copy an AdapterHub directory into a temporary one, replacing some of its files.
pub fn doctored(src: &Path, replace: &[(&str, Vec<u8>)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    for entry in std::fs::read_dir(src)
        .unwrap_or_else(|e| panic!("{e}"))
        .flatten()
    {
        std::fs::copy(entry.path(), dir.path().join(entry.file_name()))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    for (name, bytes) in replace {
        std::fs::write(dir.path().join(name), bytes).unwrap_or_else(|e| panic!("{e}"));
    }
    dir
}
pub fn read(p: PathBuf) -> Vec<u8> {
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}
pub fn tensor_json<const D: usize>(t: Tensor<D>) -> serde_json::Value {
    let shape = t.dims().to_vec();
    let data = t
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap_or_default();
    serde_json::json!({"shape": shape, "data": data.iter().map(|&v| f64::from(v)).collect::<Vec<_>>()})
}
/// One top-level key per line, like scripts/make_fixtures.py's `write_json`.
pub fn write_json(path: &Path, rec: &serde_json::Map<String, serde_json::Value>) {
    let mut keys: Vec<&String> = rec.keys().collect();
    keys.sort();
    let lines: Vec<String> = keys
        .iter()
        .map(|k| {
            format!(
                "{}: {}",
                serde_json::Value::from(k.as_str()),
                rec[k.as_str()]
            )
        })
        .collect();
    std::fs::create_dir_all(path.parent().unwrap_or(Path::new("."))).ok();
    std::fs::write(path, format!("{{\n{}\n}}\n", lines.join(",\n")))
        .unwrap_or_else(|e| panic!("{e}"));
}
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
    {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}
pub fn copy_tree(from: &Path, to: &Path) {
    for f in files(from) {
        let rel = f.strip_prefix(from).unwrap_or(&f);
        let dest = to.join(rel);
        std::fs::create_dir_all(dest.parent().unwrap_or(to)).ok();
        std::fs::copy(&f, &dest).unwrap_or_else(|e| panic!("{e}"));
    }
}
