//! Guards in front of `tokenizers`: what its 0.22 parser panics on, rejected as an error
//! message before the file is handed over (found by fuzzing, see `fuzz/README.md`).

/// Rejects what `tokenizers` 0.22 panics on instead of returning an error: invalid JSON inside
/// the `decoder` section (a truncated or corrupted file), an unreadable `Precompiled` normalizer,
/// a post-processor template naming a special token it does not define (or `$B` in the
/// single-text template).
pub(super) fn check_tokenizer_json(bytes: &[u8]) -> std::result::Result<(), String> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("not valid JSON: {e}"))?;
    if let Some(normalizer) = value.get("normalizer") {
        check_precompiled(normalizer)?;
    }
    if let Some(processor) = value.get("post_processor") {
        check_templates(processor)?;
    }
    if let Some(model) = value.get("model") {
        check_bpe_merges(model)?;
    }
    Ok(())
}

/// A BPE merge `a b` with a `continuing_subword_prefix` longer than `b` (or cutting a character
/// of it) makes `tokenizers` slice out of bounds.
fn check_bpe_merges(model: &serde_json::Value) -> std::result::Result<(), String> {
    use serde_json::Value;
    let prefix = model
        .get("continuing_subword_prefix")
        .and_then(Value::as_str)
        .unwrap_or("");
    let Some(merges) = model.get("merges").and_then(Value::as_array) else {
        return Ok(());
    };
    if prefix.is_empty() {
        return Ok(());
    }
    for merge in merges {
        let second = match merge {
            Value::String(s) => s.split(' ').nth(1),
            Value::Array(pair) => pair.get(1).and_then(Value::as_str),
            _ => None,
        };
        if let Some(b) = second
            && b.get(prefix.len()..).is_none()
        {
            return Err(format!(
                "BPE merge {merge} does not fit continuing_subword_prefix {prefix:?}"
            ));
        }
    }
    Ok(())
}

fn check_templates(value: &serde_json::Value) -> std::result::Result<(), String> {
    use serde_json::Value;
    use tokenizers::processors::template::{Piece, Sequence};
    let pieces = |key: &str| {
        value
            .get(key)
            .and_then(|v| serde_json::from_value::<Vec<Piece>>(v.clone()).ok())
            .unwrap_or_default()
    };
    match value {
        Value::Object(map) => {
            // By its fields, not its `type`: `tokenizers` reads post-processors untagged, so a
            // template with a misspelt `type` is still used as one.
            if map.contains_key("single") || map.contains_key("pair") {
                let defined = map.get("special_tokens").and_then(Value::as_object);
                for (key, template) in [("single", pieces("single")), ("pair", pieces("pair"))] {
                    for piece in template {
                        match piece {
                            Piece::Sequence {
                                id: Sequence::B, ..
                            } if key == "single" => {
                                return Err("post_processor: the single template uses $B".into());
                            }
                            Piece::SpecialToken { id, .. }
                                if !defined.is_some_and(|d| d.contains_key(&id)) =>
                            {
                                return Err(format!(
                                    "post_processor: the {key} template uses special token \
                                     {id:?}, which special_tokens does not define"
                                ));
                            }
                            _ => {}
                        }
                    }
                }
            }
            map.values().try_for_each(check_templates)
        }
        Value::Array(items) => items.iter().try_for_each(check_templates),
        _ => Ok(()),
    }
}

fn check_precompiled(value: &serde_json::Value) -> std::result::Result<(), String> {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            if map.get("type").and_then(Value::as_str) == Some("Precompiled") {
                serde_json::from_value::<tokenizers::normalizers::precompiled::Precompiled>(
                    value.clone(),
                )
                .map_err(|e| format!("invalid Precompiled normalizer: {e}"))?;
            }
            map.values().try_for_each(check_precompiled)
        }
        Value::Array(items) => items.iter().try_for_each(check_precompiled),
        _ => Ok(()),
    }
}
