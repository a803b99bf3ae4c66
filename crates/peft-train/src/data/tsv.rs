//! Strict GLUE TSV parsing into [`TextClassificationItem`]s, and the line splitting the other
//! text readers share.

use std::fs;
use std::path::Path;

use super::task::{Columns, GlueTask, LabelFormat};
use crate::error::{Result, TrainError};

/// One labelled example: a text or a text pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextClassificationItem {
    /// The (first) text, trailing whitespace removed.
    pub text_a: String,
    /// The second text of a pair task.
    pub text_b: Option<String>,
    /// Class index in `0..num_labels`.
    pub label: usize,
}

/// Reads a GLUE TSV file strictly.
///
/// Lines are split on tabs without any quoting (`"` is an ordinary character); a trailing `\r`
/// is ignored, as is a UTF-8 byte-order mark before the header. Trailing whitespace of every
/// text is removed (SST-2 sentences end in a space before the tab; the PyTorch reference strips
/// it too). Every row must have exactly as many columns as the header.
///
/// # Errors
/// - [`TrainError::Io`]: the file cannot be read.
/// - [`TrainError::EmptyData`]: no data row (an empty or header-only file).
/// - [`TrainError::MalformedRow`] (1-based line number): wrong column count, a missing header
///   column, invalid UTF-8, an empty line, an unparseable or unknown label.
/// - [`TrainError::LabelOutOfRange`]: an integer label outside `0..num_labels`.
pub fn load_glue_tsv(
    path: impl AsRef<Path>,
    task: GlueTask,
) -> Result<Vec<TextClassificationItem>> {
    let path = path.as_ref();
    let bytes = fs::read(path).map_err(|source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_glue_tsv(&bytes, path, task)
}

pub(crate) fn malformed(path: &Path, line: usize, message: String) -> TrainError {
    TrainError::MalformedRow {
        path: path.to_path_buf(),
        line,
        message,
    }
}

/// The lines of a file as `(1-based line number, text)`, without the final empty piece after a
/// trailing newline and without `\r`.
pub(crate) fn lines_of<'a>(
    bytes: &'a [u8],
    path: &'a Path,
) -> impl Iterator<Item = Result<(usize, &'a str)>> + 'a {
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let empty = bytes.is_empty();
    bytes
        .split(|&b| b == b'\n')
        .take(if empty { 0 } else { usize::MAX })
        .enumerate()
        .map(move |(i, raw)| {
            let line = i + 1;
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            std::str::from_utf8(raw)
                .map(|s| (line, s))
                .map_err(|e| malformed(path, line, format!("not valid UTF-8: {e}")))
        })
}

/// Parses the bytes of a GLUE TSV file as [`load_glue_tsv`] does; `path` only names the file in
/// errors.
///
/// # Errors
/// As [`load_glue_tsv`], without [`TrainError::Io`].
pub fn parse_glue_tsv(
    bytes: &[u8],
    path: &Path,
    task: GlueTask,
) -> Result<Vec<TextClassificationItem>> {
    let mut lines = lines_of(bytes, path).peekable();
    let (count, a_idx, b_idx, label_idx) = match task.columns() {
        Columns::Positional {
            count,
            text_a,
            label,
        } => (count, text_a, None, label),
        Columns::Header {
            text_a,
            text_b,
            label,
        } => {
            let Some(header) = lines.next() else {
                return Err(TrainError::EmptyData {
                    path: path.to_path_buf(),
                });
            };
            let (line, header) = header?;
            let header = header.strip_prefix('\u{feff}').unwrap_or(header);
            let names: Vec<&str> = header.split('\t').collect();
            let find = |name: &str| {
                names.iter().position(|&n| n == name).ok_or_else(|| {
                    malformed(
                        path,
                        line,
                        format!(
                            "header lacks column {name:?} needed for {task} (found: {})",
                            names.join(", ")
                        ),
                    )
                })
            };
            let a = find(text_a)?;
            let b = text_b.map(find).transpose()?;
            let l = find(label)?;
            (names.len(), a, b, l)
        }
    };
    let names = task.label_names();
    let mut items = Vec::new();
    for entry in lines {
        let (line, text) = entry?;
        if text.is_empty() {
            return Err(malformed(path, line, "empty line".to_string()));
        }
        let fields: Vec<&str> = text.split('\t').collect();
        if fields.len() != count {
            return Err(malformed(
                path,
                line,
                format!(
                    "expected {count} tab-separated columns for {task}, found {}",
                    fields.len()
                ),
            ));
        }
        let raw_label = fields[label_idx].trim();
        let label = match task.label_format() {
            LabelFormat::Integer => {
                let value: i64 = raw_label.parse().map_err(|_| {
                    malformed(path, line, format!("label {raw_label:?} is not an integer"))
                })?;
                match usize::try_from(value) {
                    Ok(v) if v < names.len() => v,
                    _ => {
                        return Err(TrainError::LabelOutOfRange {
                            path: path.to_path_buf(),
                            line,
                            label: value,
                            num_labels: names.len(),
                        });
                    }
                }
            }
            LabelFormat::Named => names.iter().position(|&n| n == raw_label).ok_or_else(|| {
                malformed(
                    path,
                    line,
                    format!(
                        "unknown label {raw_label:?} for {task}; expected one of {}",
                        names.join(", ")
                    ),
                )
            })?,
        };
        items.push(TextClassificationItem {
            text_a: fields[a_idx].trim_end().to_string(),
            text_b: b_idx.map(|i| fields[i].trim_end().to_string()),
            label,
        });
    }
    if items.is_empty() {
        return Err(TrainError::EmptyData {
            path: path.to_path_buf(),
        });
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Split;
    use crate::data::dataset::GlueDataset;
    use crate::data::test_util::write;

    #[test]
    fn sst2_good_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = write(
            dir.path(),
            "train.tsv",
            "sentence\tlabel\nhide new secretions from the parental units \t0\nit 's \"great\" \t1\n",
        );
        let items = load_glue_tsv(&p, GlueTask::Sst2).expect("load");
        assert_eq!(
            items,
            vec![
                TextClassificationItem {
                    text_a: "hide new secretions from the parental units".into(),
                    text_b: None,
                    label: 0
                },
                TextClassificationItem {
                    text_a: "it 's \"great\"".into(),
                    text_b: None,
                    label: 1
                },
            ]
        );
        // No trailing newline, CRLF: same result.
        let p = write(dir.path(), "crlf.tsv", "sentence\tlabel\r\na b \t1\r\nc\t0");
        let items = load_glue_tsv(&p, GlueTask::Sst2).expect("load");
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].text_a, "a b");
        assert_eq!(items[1].label, 0);
    }

    #[test]
    fn header_only_and_empty_files_are_empty_data() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, text) in [("h.tsv", "sentence\tlabel\n"), ("e.tsv", "")] {
            let p = write(dir.path(), name, text);
            assert!(
                matches!(
                    load_glue_tsv(&p, GlueTask::Sst2),
                    Err(TrainError::EmptyData { .. })
                ),
                "{name}"
            );
        }
    }

    #[test]
    fn missing_file_is_io() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = load_glue_tsv(dir.path().join("nope.tsv"), GlueTask::Sst2).expect_err("missing");
        assert!(matches!(err, TrainError::Io { .. }), "{err:?}");
        let err = GlueDataset::from_dir(dir.path(), GlueTask::Sst2, Split::Validation)
            .expect_err("missing");
        assert!(err.to_string().contains("dev.tsv"), "{err}");
    }

    #[test]
    fn malformed_rows_report_their_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cases = [
            ("sentence\tlabel\nok\t1\ntoo\tmany\t1\n", 3, "columns"),
            ("sentence\tlabel\nok\t1\nno tab\n", 3, "columns"),
            (
                "sentence\tlabel\nok\t1\nok\t0\nbad\tx\n",
                4,
                "not an integer",
            ),
            ("sentence\tlabel\nok\t1\n\nok\t0\n", 3, "empty line"),
            ("text\tlabel\nok\t1\n", 1, "sentence"),
        ];
        for (i, (text, want_line, want_msg)) in cases.into_iter().enumerate() {
            let p = write(dir.path(), &format!("m{i}.tsv"), text);
            match load_glue_tsv(&p, GlueTask::Sst2) {
                Err(e @ TrainError::MalformedRow { line, .. }) => {
                    assert_eq!(line, want_line, "case {i}: {e}");
                    let msg = e.to_string();
                    assert!(msg.contains(want_msg), "case {i}: {msg}");
                    assert!(msg.contains(&format!(":{want_line}:")), "case {i}: {msg}");
                }
                other => panic!("case {i}: expected MalformedRow, got {other:?}"),
            }
        }
        let p = dir.path().join("utf8.tsv");
        fs::write(&p, b"sentence\tlabel\nok\t1\n\xff\xfe\t0\n").expect("write");
        assert!(matches!(
            load_glue_tsv(&p, GlueTask::Sst2),
            Err(TrainError::MalformedRow { line: 3, .. })
        ));
    }

    #[test]
    fn label_out_of_range() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (text, bad) in [
            ("sentence\tlabel\nok\t1\nok\t2\n", 2_i64),
            ("sentence\tlabel\nok\t1\nok\t-1\n", -1),
        ] {
            let p = write(dir.path(), "r.tsv", text);
            match load_glue_tsv(&p, GlueTask::Sst2) {
                Err(TrainError::LabelOutOfRange {
                    line,
                    label,
                    num_labels,
                    ..
                }) => assert_eq!((line, label, num_labels), (3, bad, 2)),
                other => panic!("expected LabelOutOfRange, got {other:?}"),
            }
        }
    }

    #[test]
    fn mrpc_pairs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = write(
            dir.path(),
            "train.tsv",
            "\u{feff}Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n\
             1\t702876\t702977\tAmrozi accused his brother , whom he called \" the witness \" .\tReferring to him as only \" the witness \" , Amrozi accused his brother .\n\
             0\t2108705\t2108831\tYucaipa owned Dominick 's .\tYucaipa bought Dominick 's in 1995 .\n",
        );
        let items = load_glue_tsv(&p, GlueTask::Mrpc).expect("load");
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].label, 1);
        assert_eq!(
            items[0].text_a,
            "Amrozi accused his brother , whom he called \" the witness \" ."
        );
        assert_eq!(
            items[0].text_b.as_deref(),
            Some("Referring to him as only \" the witness \" , Amrozi accused his brother .")
        );
        assert_eq!(items[1].label, 0);
        assert!(GlueTask::Mrpc.is_pair());
    }

    #[test]
    fn cola_has_no_header() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = write(
            dir.path(),
            "train.tsv",
            "gj04\t1\t\tOur friends won't buy this analysis.\ngj04\t0\t*\tThey drank the pub.\n",
        );
        let items = load_glue_tsv(&p, GlueTask::Cola).expect("load");
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].text_a, "Our friends won't buy this analysis.");
        assert_eq!((items[0].label, items[1].label), (1, 0));
    }
}
