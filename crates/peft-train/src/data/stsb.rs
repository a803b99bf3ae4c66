//! GLUE STS-B (semantic textual similarity): sentence pairs with a similarity score in `[0, 5]`,
//! a regression task. Its TSV files have a header
//! `index genre filename year old_index source1 source2 sentence1 sentence2 score`
//! (`transformers`' `StsbProcessor` reads columns 7, 8 and the last); the columns are found
//! here by name, with the same strict splitting as the classification tasks
//! ([`super::load_glue_tsv`]).

use std::path::Path;

use super::tsv::{lines_of, malformed};
use crate::error::{Result, TrainError};

/// The similarity scores of STS-B lie in `[0, MAX_SCORE]`.
pub const MAX_SCORE: f32 = 5.0;

/// One STS-B example: a sentence pair and its similarity score.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredPair {
    /// `sentence1`, trailing whitespace removed.
    pub text_a: String,
    /// `sentence2`, trailing whitespace removed.
    pub text_b: String,
    /// `score`, in `[0, 5]`.
    pub score: f32,
}

/// Read an STS-B TSV file (`train.tsv` or `dev.tsv`) strictly.
///
/// # Errors
/// - [`TrainError::Io`]: the file cannot be read.
/// - [`TrainError::EmptyData`]: no data row.
/// - [`TrainError::MalformedRow`] (1-based line number): a header without `sentence1`,
///   `sentence2` or `score`, a row with another column count, invalid UTF-8, a score that is
///   not a number in `[0, 5]`.
pub fn load_stsb_tsv(path: impl AsRef<Path>) -> Result<Vec<ScoredPair>> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_stsb_tsv(&bytes, path)
}

/// Parse the bytes of an STS-B TSV file as [`load_stsb_tsv`] does; `path` only names the file
/// in errors.
///
/// # Errors
/// As [`load_stsb_tsv`], without [`TrainError::Io`].
pub fn parse_stsb_tsv(bytes: &[u8], path: &Path) -> Result<Vec<ScoredPair>> {
    let mut lines = lines_of(bytes, path);
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
                    "header lacks column {name:?} needed for STS-B (found: {})",
                    names.join(", ")
                ),
            )
        })
    };
    let (a, b, s) = (find("sentence1")?, find("sentence2")?, find("score")?);
    let mut rows = Vec::new();
    for item in lines {
        let (line, text) = item?;
        let cols: Vec<&str> = text.split('\t').collect();
        if cols.len() != names.len() {
            return Err(malformed(
                path,
                line,
                format!("{} columns, the header has {}", cols.len(), names.len()),
            ));
        }
        let raw = cols[s].trim();
        let score = raw
            .parse::<f32>()
            .ok()
            .filter(|v| (0.0..=MAX_SCORE).contains(v))
            .ok_or_else(|| {
                malformed(
                    path,
                    line,
                    format!("score `{raw}` is not a number in [0, {MAX_SCORE}]"),
                )
            })?;
        rows.push(ScoredPair {
            text_a: cols[a].trim_end().to_string(),
            text_b: cols[b].trim_end().to_string(),
            score,
        });
    }
    if rows.is_empty() {
        return Err(TrainError::EmptyData {
            path: path.to_path_buf(),
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Four rows in GLUE STS-B's layout (its real header; the sentences are made up: there is
    /// no STS-B asset here).
    const DEV: &[u8] = include_bytes!("../../testdata/stsb/dev.tsv");

    #[test]
    fn reads_pairs_and_scores_by_column_name() {
        let rows = parse_stsb_tsv(DEV, Path::new("dev.tsv")).unwrap_or_else(|e| panic!("{e}"));
        let scores: Vec<f32> = rows.iter().map(|r| r.score).collect();
        assert_eq!(scores, vec![3.8, 0.5, 5.0, 2.75]);
        assert_eq!(rows[0].text_a, "A man is playing a flute.");
        assert_eq!(rows[0].text_b, "A man is playing a bamboo flute.");
        // Quotes are ordinary characters; trailing whitespace goes.
        assert_eq!(rows[2].text_a, "\"Markets rise\" after the report");
        assert_eq!(rows[3].text_b, "You are right, I think.");
    }

    #[test]
    fn malformed_files_name_the_line() {
        let text = std::str::from_utf8(DEV).unwrap_or_default();
        let err = |bytes: &[u8]| match parse_stsb_tsv(bytes, Path::new("dev.tsv")) {
            Err(e) => e.to_string(),
            Ok(rows) => panic!("accepted: {rows:?}"),
        };
        let bad_score = text.replace("\t0.500\n", "\t5.5\n");
        assert!(
            err(bad_score.as_bytes())
                .starts_with("dev.tsv:3: score `5.5` is not a number in [0, 5]"),
            "{}",
            err(bad_score.as_bytes())
        );
        let short = text.replace("\tnone\tnone\tA cat", "\tnone\tA cat");
        assert!(err(short.as_bytes()).contains("9 columns, the header has 10"));
        let no_score = text.replacen("\tscore\n", "\tlabel\n", 1);
        assert!(err(no_score.as_bytes()).contains("header lacks column \"score\""));
        assert!(err(b"").contains("dev.tsv"));
        let header_only = text.lines().next().unwrap_or_default().to_string() + "\n";
        assert!(err(header_only.as_bytes()).contains("dev.tsv"));
    }
}
