//! The GLUE tasks: names, label sets, file names, download URLs and where each task's columns
//! are in its TSV files.

use std::fmt;
use std::str::FromStr;

use crate::error::{Result, TrainError};

/// How a task's labels are written in its TSV files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LabelFormat {
    /// Integers `0..num_labels`.
    Integer,
    /// One of the label names (e.g. `entailment`), mapped to its index.
    Named,
}

/// Where a task's columns are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Columns {
    /// The first line is a header; columns are found by name.
    Header {
        text_a: &'static str,
        text_b: Option<&'static str>,
        label: &'static str,
    },
    /// No header line; fixed positions (CoLA).
    Positional {
        count: usize,
        text_a: usize,
        label: usize,
    },
}

/// A GLUE classification task (STS-B, a regression task, is not included).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GlueTask {
    /// SST-2, binary sentiment: `sentence\tlabel`.
    Sst2,
    /// CoLA, grammatical acceptability: no header, `source\tlabel\torig_label\tsentence`.
    Cola,
    /// MRPC, paraphrase pairs: `Quality\t#1 ID\t#2 ID\t#1 String\t#2 String`.
    Mrpc,
    /// RTE, entailment pairs: `index\tsentence1\tsentence2\tlabel` with string labels.
    Rte,
    /// QNLI, question/sentence entailment: `index\tquestion\tsentence\tlabel`, string labels.
    Qnli,
    /// QQP, duplicate questions: `id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate`.
    Qqp,
    /// MNLI, three-way entailment (`sentence1`, `sentence2`, `gold_label`); validation is
    /// `dev_matched.tsv`.
    Mnli,
    /// WNLI: `index\tsentence1\tsentence2\tlabel`.
    Wnli,
}

/// The dev-set metric GLUE reports for a classification task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GlueMetric {
    /// Accuracy (SST-2, RTE, QNLI, MNLI, WNLI).
    Accuracy,
    /// F1 of the positive class (MRPC, QQP; GLUE lists accuracy beside it).
    F1,
    /// Matthews correlation (CoLA).
    Matthews,
}

impl GlueMetric {
    /// The metric's name as reports print it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Accuracy => "accuracy",
            Self::F1 => "f1",
            Self::Matthews => "matthews",
        }
    }
}

impl GlueTask {
    /// The metric GLUE reports for this task's dev set (the GLUE paper, Wang et al. 2018,
    /// Table 1): Matthews correlation for CoLA, F1 for MRPC and QQP, accuracy otherwise.
    pub fn metric(self) -> GlueMetric {
        match self {
            GlueTask::Cola => GlueMetric::Matthews,
            GlueTask::Mrpc | GlueTask::Qqp => GlueMetric::F1,
            _ => GlueMetric::Accuracy,
        }
    }

    /// All supported tasks.
    pub const ALL: [GlueTask; 8] = [
        GlueTask::Sst2,
        GlueTask::Cola,
        GlueTask::Mrpc,
        GlueTask::Rte,
        GlueTask::Qnli,
        GlueTask::Qqp,
        GlueTask::Mnli,
        GlueTask::Wnli,
    ];

    /// Short lower-case name (`sst2`), as accepted by [`FromStr`].
    pub fn name(self) -> &'static str {
        match self {
            GlueTask::Sst2 => "sst2",
            GlueTask::Cola => "cola",
            GlueTask::Mrpc => "mrpc",
            GlueTask::Rte => "rte",
            GlueTask::Qnli => "qnli",
            GlueTask::Qqp => "qqp",
            GlueTask::Mnli => "mnli",
            GlueTask::Wnli => "wnli",
        }
    }

    /// The folder name in the GLUE distribution (`SST-2`).
    pub fn dir_name(self) -> &'static str {
        match self {
            GlueTask::Sst2 => "SST-2",
            GlueTask::Cola => "CoLA",
            GlueTask::Mrpc => "MRPC",
            GlueTask::Rte => "RTE",
            GlueTask::Qnli => "QNLI",
            GlueTask::Qqp => "QQP",
            GlueTask::Mnli => "MNLI",
            GlueTask::Wnli => "WNLI",
        }
    }

    /// Label names, index = class id.
    pub fn label_names(self) -> &'static [&'static str] {
        match self {
            GlueTask::Sst2 => &["negative", "positive"],
            GlueTask::Cola => &["unacceptable", "acceptable"],
            GlueTask::Mrpc => &["not_equivalent", "equivalent"],
            GlueTask::Rte | GlueTask::Qnli => &["entailment", "not_entailment"],
            GlueTask::Qqp => &["not_duplicate", "duplicate"],
            GlueTask::Mnli => &["entailment", "neutral", "contradiction"],
            GlueTask::Wnli => &["not_entailment", "entailment"],
        }
    }

    /// Number of classes.
    pub fn num_labels(self) -> usize {
        self.label_names().len()
    }

    /// Whether items are sentence pairs.
    pub fn is_pair(self) -> bool {
        match self.columns() {
            Columns::Header { text_b, .. } => text_b.is_some(),
            Columns::Positional { .. } => false,
        }
    }

    /// The file of a split inside the task's folder.
    pub fn file_name(self, split: Split) -> &'static str {
        match (self, split) {
            (_, Split::Train) => "train.tsv",
            (GlueTask::Mnli, Split::Validation) => "dev_matched.tsv",
            (_, Split::Validation) => "dev.tsv",
        }
    }

    /// The environment variable overriding the download URL, e.g. `BURN_PEFT_GLUE_SST2_URL`.
    pub fn url_env_var(self) -> &'static str {
        match self {
            GlueTask::Sst2 => "BURN_PEFT_GLUE_SST2_URL",
            GlueTask::Cola => "BURN_PEFT_GLUE_COLA_URL",
            GlueTask::Mrpc => "BURN_PEFT_GLUE_MRPC_URL",
            GlueTask::Rte => "BURN_PEFT_GLUE_RTE_URL",
            GlueTask::Qnli => "BURN_PEFT_GLUE_QNLI_URL",
            GlueTask::Qqp => "BURN_PEFT_GLUE_QQP_URL",
            GlueTask::Mnli => "BURN_PEFT_GLUE_MNLI_URL",
            GlueTask::Wnli => "BURN_PEFT_GLUE_WNLI_URL",
        }
    }

    /// The zip GLUE's own download script uses, when there is one (MRPC has none: it is
    /// assembled from Microsoft's files).
    pub fn default_url(self) -> Option<&'static str> {
        match self {
            GlueTask::Sst2 => Some("https://dl.fbaipublicfiles.com/glue/data/SST-2.zip"),
            GlueTask::Cola => Some("https://dl.fbaipublicfiles.com/glue/data/CoLA.zip"),
            GlueTask::Mrpc => None,
            GlueTask::Rte => Some("https://dl.fbaipublicfiles.com/glue/data/RTE.zip"),
            GlueTask::Qnli => Some("https://dl.fbaipublicfiles.com/glue/data/QNLIv2.zip"),
            GlueTask::Qqp => Some("https://dl.fbaipublicfiles.com/glue/data/QQP-clean.zip"),
            GlueTask::Mnli => Some("https://dl.fbaipublicfiles.com/glue/data/MNLI.zip"),
            GlueTask::Wnli => Some("https://dl.fbaipublicfiles.com/glue/data/WNLI.zip"),
        }
    }

    pub(super) fn label_format(self) -> LabelFormat {
        match self {
            GlueTask::Rte | GlueTask::Qnli | GlueTask::Mnli => LabelFormat::Named,
            _ => LabelFormat::Integer,
        }
    }

    pub(super) fn columns(self) -> Columns {
        match self {
            GlueTask::Sst2 => Columns::Header {
                text_a: "sentence",
                text_b: None,
                label: "label",
            },
            GlueTask::Cola => Columns::Positional {
                count: 4,
                text_a: 3,
                label: 1,
            },
            GlueTask::Mrpc => Columns::Header {
                text_a: "#1 String",
                text_b: Some("#2 String"),
                label: "Quality",
            },
            GlueTask::Rte | GlueTask::Wnli => Columns::Header {
                text_a: "sentence1",
                text_b: Some("sentence2"),
                label: "label",
            },
            GlueTask::Qnli => Columns::Header {
                text_a: "question",
                text_b: Some("sentence"),
                label: "label",
            },
            GlueTask::Qqp => Columns::Header {
                text_a: "question1",
                text_b: Some("question2"),
                label: "is_duplicate",
            },
            GlueTask::Mnli => Columns::Header {
                text_a: "sentence1",
                text_b: Some("sentence2"),
                label: "gold_label",
            },
        }
    }
}

impl fmt::Display for GlueTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for GlueTask {
    type Err = TrainError;

    /// Case-insensitive, with or without `-`/`_`: `sst2`, `SST-2`, `mnli`, ...
    fn from_str(s: &str) -> Result<Self> {
        let key: String = s
            .chars()
            .filter(|c| !matches!(c, '-' | '_'))
            .flat_map(char::to_lowercase)
            .collect();
        GlueTask::ALL
            .into_iter()
            .find(|t| t.name() == key)
            .ok_or_else(|| {
                let names: Vec<&str> = GlueTask::ALL.iter().map(|t| t.name()).collect();
                TrainError::InvalidConfig(format!(
                    "unknown GLUE task {s:?}; expected one of {}",
                    names.join(", ")
                ))
            })
    }
}

/// Which part of a GLUE task (the test sets have no labels and are not supported).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    /// `train.tsv`.
    Train,
    /// `dev.tsv` (`dev_matched.tsv` for MNLI).
    Validation,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_names_parse() {
        for task in GlueTask::ALL {
            assert_eq!(task.name().parse::<GlueTask>().expect("name"), task);
            assert_eq!(task.dir_name().parse::<GlueTask>().expect("dir"), task);
        }
        assert!("stsb".parse::<GlueTask>().is_err());
        assert_eq!(GlueTask::Sst2.num_labels(), 2);
        assert_eq!(GlueTask::Mnli.num_labels(), 3);
        assert_eq!(
            GlueTask::Mnli.file_name(Split::Validation),
            "dev_matched.tsv"
        );
    }
}
