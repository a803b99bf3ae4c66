//! The user's own labelled text files: CSV, TSV or JSON Lines with named columns, and the
//! mapping of their labels (strings or integers) to class ids, saved as the head's labels.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use super::tsv::TextClassificationItem;
use crate::error::{Result, TrainError};

/// The layout of a data file, from its extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileFormat {
    /// Comma-separated, with a header row; `"` quotes a field (`""` inside is a quote).
    Csv,
    /// Tab-separated, with a header row; no quoting.
    Tsv,
    /// One JSON object per line.
    JsonLines,
}

impl FileFormat {
    /// The format of `path` from its extension (`.csv`, `.tsv`, `.jsonl`/`.json`).
    ///
    /// # Errors
    /// [`TrainError::InvalidConfig`] for another extension.
    pub fn of(path: &Path) -> Result<Self> {
        match path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .as_deref()
        {
            Some("csv") => Ok(Self::Csv),
            Some("tsv") => Ok(Self::Tsv),
            Some("jsonl" | "json" | "ndjson") => Ok(Self::JsonLines),
            _ => Err(TrainError::InvalidConfig(format!(
                "{}: unknown data format (use a .csv, .tsv or .jsonl file)",
                path.display()
            ))),
        }
    }
}

/// Which columns (CSV/TSV header names, JSON keys) hold the texts and the label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Columns {
    /// The text. Default in the tool: `text`.
    pub text: String,
    /// The second text of a pair task. Default: none.
    pub text_pair: Option<String>,
    /// The label. Default in the tool: `label`.
    pub label: String,
}

/// One example as read: texts and the label as written (absent when the file has none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawExample {
    /// The (first) text.
    pub text_a: String,
    /// The second text.
    pub text_b: Option<String>,
    /// The label as written (an integer label is its decimal string).
    pub label: Option<String>,
    /// 1-based line of the example in its file.
    pub line: usize,
}

fn malformed(path: &Path, line: usize, message: impl Into<String>) -> TrainError {
    TrainError::MalformedRow {
        path: path.to_path_buf(),
        line,
        message: message.into(),
    }
}

/// One CSV record of a line (no embedded newlines).
fn split_csv(line: &str) -> std::result::Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (false, '"') if at_start => {
                quoted = true;
                at_start = false;
            }
            (true, '"') if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            (true, '"') => {
                quoted = false;
                if !matches!(chars.peek(), None | Some(',')) {
                    return Err("a closing quote must end its field".into());
                }
            }
            (false, ',') => {
                fields.push(std::mem::take(&mut field));
                at_start = true;
            }
            (_, c) => {
                field.push(c);
                at_start = false;
            }
        }
    }
    if quoted {
        return Err("unterminated quote (fields may not span lines)".into());
    }
    fields.push(field);
    Ok(fields)
}

fn json_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Read the examples of `path` (format from its extension). With `need_label`, every example
/// must have a label.
///
/// # Errors
/// [`TrainError::Io`]; [`TrainError::EmptyData`]; [`TrainError::MalformedRow`] naming the line
/// for a missing column, a wrong column count, invalid JSON, an empty text or a missing label.
pub fn read_examples(path: &Path, columns: &Columns, need_label: bool) -> Result<Vec<RawExample>> {
    let format = FileFormat::of(path)?;
    let text = std::fs::read_to_string(path).map_err(|source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut out = Vec::new();
    match format {
        FileFormat::JsonLines => {
            for (i, line) in text.lines().enumerate() {
                let n = i + 1;
                if line.trim().is_empty() {
                    continue;
                }
                let v: Value = serde_json::from_str(line)
                    .map_err(|e| malformed(path, n, format!("invalid JSON: {e}")))?;
                let get = |key: &str| v.get(key).and_then(json_text);
                let text_a = get(&columns.text).ok_or_else(|| {
                    malformed(path, n, format!("no text field `{}`", columns.text))
                })?;
                let text_b = match &columns.text_pair {
                    Some(k) => Some(
                        get(k).ok_or_else(|| malformed(path, n, format!("no text field `{k}`")))?,
                    ),
                    None => None,
                };
                out.push(RawExample {
                    text_a,
                    text_b,
                    label: get(&columns.label),
                    line: n,
                });
            }
        }
        FileFormat::Csv | FileFormat::Tsv => {
            let split = |line: &str| -> std::result::Result<Vec<String>, String> {
                if format == FileFormat::Csv {
                    split_csv(line)
                } else {
                    Ok(line.split('\t').map(str::to_string).collect())
                }
            };
            let mut lines = text.lines().enumerate();
            let (_, header) = lines.next().ok_or_else(|| TrainError::EmptyData {
                path: path.to_path_buf(),
            })?;
            let header = split(header.trim_end_matches('\r')).map_err(|m| malformed(path, 1, m))?;
            let find = |name: &str| {
                header.iter().position(|h| h.trim() == name).ok_or_else(|| {
                    malformed(
                        path,
                        1,
                        format!("no column `{name}` in the header ({})", header.join(", ")),
                    )
                })
            };
            let ia = find(&columns.text)?;
            let ib = columns.text_pair.as_deref().map(find).transpose()?;
            let il = if need_label {
                Some(find(&columns.label)?)
            } else {
                header.iter().position(|h| h.trim() == columns.label)
            };
            for (i, line) in lines {
                let n = i + 1;
                let line = line.trim_end_matches('\r');
                if line.trim().is_empty() {
                    continue;
                }
                let fields = split(line).map_err(|m| malformed(path, n, m))?;
                if fields.len() != header.len() {
                    return Err(malformed(
                        path,
                        n,
                        format!("{} columns, the header has {}", fields.len(), header.len()),
                    ));
                }
                out.push(RawExample {
                    text_a: fields[ia].clone(),
                    text_b: ib.map(|i| fields[i].clone()),
                    label: il.map(|i| fields[i].trim().to_string()),
                    line: n,
                });
            }
        }
    }
    if out.is_empty() {
        return Err(TrainError::EmptyData {
            path: path.to_path_buf(),
        });
    }
    for ex in &out {
        if ex.text_a.trim().is_empty() {
            return Err(malformed(path, ex.line, "empty text"));
        }
        if need_label && ex.label.as_deref().is_none_or(|l| l.is_empty()) {
            return Err(malformed(
                path,
                ex.line,
                format!("no label (column `{}`)", columns.label),
            ));
        }
    }
    Ok(out)
}

/// Class names by id: the head's labels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelMap {
    /// Names by class id.
    pub names: Vec<String>,
}

impl LabelMap {
    /// The classes of training labels: when every label is an integer, the classes are
    /// `0..=max` named by their number; else the distinct labels in sorted order.
    pub fn from_labels<'a>(labels: impl IntoIterator<Item = &'a str>) -> Self {
        let set: BTreeSet<&str> = labels.into_iter().collect();
        let ints: Option<Vec<usize>> = set.iter().map(|l| l.parse::<usize>().ok()).collect();
        let names = match ints {
            Some(ints) => {
                let max = ints.iter().copied().max().unwrap_or(0);
                (0..=max).map(|i| i.to_string()).collect()
            }
            None => set.into_iter().map(str::to_string).collect(),
        };
        Self { names }
    }

    /// The class id of `label`: its position among the names, else (for a head without
    /// names, or integer names) the integer itself when it is below `num_labels`.
    ///
    /// # Errors
    /// [`TrainError::MalformedRow`] naming the label and the head's classes.
    pub fn id(&self, label: &str, num_labels: usize, path: &Path, line: usize) -> Result<usize> {
        if let Some(i) = self.names.iter().position(|n| n == label) {
            return Ok(i);
        }
        if self.names.is_empty()
            && let Ok(i) = label.parse::<usize>()
            && i < num_labels
        {
            return Ok(i);
        }
        let known = if self.names.is_empty() {
            format!("0..{num_labels}")
        } else {
            self.names.join(", ")
        };
        Err(malformed(
            path,
            line,
            format!("label `{label}` is not one of the head's labels ({known})"),
        ))
    }
}

/// `examples` with their labels mapped through `labels` (a head of `num_labels` classes).
///
/// # Errors
/// A label not in the head ([`LabelMap::id`]); an example without a label.
pub fn labelled_items(
    examples: &[RawExample],
    labels: &LabelMap,
    num_labels: usize,
    path: &Path,
) -> Result<Vec<TextClassificationItem>> {
    examples
        .iter()
        .map(|ex| {
            let label = ex
                .label
                .as_deref()
                .ok_or_else(|| malformed(path, ex.line, "no label"))?;
            Ok(TextClassificationItem {
                text_a: ex.text_a.clone(),
                text_b: ex.text_b.clone(),
                label: labels.id(label, num_labels, path, ex.line)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_keep_quoted_commas_and_quotes() {
        assert_eq!(
            split_csv(r#"a,"b, c","say ""hi""",1"#),
            Ok(vec![
                "a".to_string(),
                "b, c".to_string(),
                "say \"hi\"".to_string(),
                "1".to_string()
            ])
        );
        assert!(split_csv(r#"a,"b"#).is_err());
    }

    fn columns(pair: bool) -> Columns {
        Columns {
            text: "q".into(),
            text_pair: pair.then(|| "a".into()),
            label: "y".into(),
        }
    }

    #[test]
    fn csv_tsv_and_json_lines_read_the_named_columns() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap_or_else(|e| panic!("{e}"));
            p
        };
        let expected = vec![
            RawExample {
                text_a: "why, though?".into(),
                text_b: Some("because".into()),
                label: Some("yes".into()),
                line: 2,
            },
            RawExample {
                text_a: "how".into(),
                text_b: Some("so \"quoted\"".into()),
                label: Some("1".into()),
                line: 3,
            },
        ];
        let csv = write(
            "d.csv",
            "id,q,a,y\r\n7,\"why, though?\",because,yes\r\n8,how,\"so \"\"quoted\"\"\",1\r\n",
        );
        assert_eq!(
            read_examples(&csv, &columns(true), true).ok(),
            Some(expected.clone())
        );
        let tsv = write(
            "d.tsv",
            "q\ta\ty\nwhy, though?\tbecause\tyes\nhow\tso \"quoted\"\t1\n",
        );
        assert_eq!(
            read_examples(&tsv, &columns(true), true).ok(),
            Some(expected.clone())
        );
        let jsonl = write(
            "d.jsonl",
            "{\"q\": \"x\"}\n{\"q\": \"why, though?\", \"a\": \"because\", \"y\": \"yes\"}\n{\"q\": \"how\", \"a\": \"so \\\"quoted\\\"\", \"y\": 1}\n",
        );
        let err = read_examples(&jsonl, &columns(true), true).map_err(|e| e.to_string());
        assert_eq!(
            err,
            Err(format!("{}:1: no text field `a`", jsonl.display()))
        );
        let jsonl = write(
            "e.jsonl",
            "\n{\"q\": \"why, though?\", \"a\": \"because\", \"y\": \"yes\"}\n{\"q\": \"how\", \"a\": \"so \\\"quoted\\\"\", \"y\": 1}\n",
        );
        assert_eq!(
            read_examples(&jsonl, &columns(true), true).ok(),
            Some(expected)
        );
        // A missing label column, a short row, an unknown extension.
        let err = read_examples(
            &tsv,
            &Columns {
                label: "z".into(),
                ..columns(false)
            },
            true,
        )
        .map_err(|e| e.to_string());
        assert!(err.is_err_and(|e| e.contains(":1: no column `z`")));
        let short = write("s.tsv", "q\ty\nonly one\n");
        let err = read_examples(&short, &columns(false), true).map_err(|e| e.to_string());
        assert!(err.is_err_and(|e| e.contains(":2: 1 columns, the header has 2")));
        let txt = write("d.txt", "q\n");
        assert!(read_examples(&txt, &columns(false), true).is_err());
    }

    #[test]
    fn labels_map_ints_by_value_and_strings_sorted() {
        let ints = LabelMap::from_labels(["2", "0", "2"]);
        assert_eq!(ints.names, vec!["0", "1", "2"]);
        let words = LabelMap::from_labels(["pos", "neg", "pos"]);
        assert_eq!(words.names, vec!["neg", "pos"]);
        let p = Path::new("x.csv");
        assert_eq!(words.id("pos", 2, p, 3).ok(), Some(1));
        let err = words.id("neutral", 2, p, 3).map_err(|e| e.to_string());
        assert_eq!(
            err,
            Err("x.csv:3: label `neutral` is not one of the head's labels (neg, pos)".into())
        );
        let unnamed = LabelMap { names: vec![] };
        assert_eq!(unnamed.id("1", 2, p, 1).ok(), Some(1));
        assert!(unnamed.id("2", 2, p, 1).is_err());
    }
}
