//! What the commands share: output settings, errors, the BERT base and its tokenizer, data.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::tensor::Device;
use burn_peft::models::bert::BertConfig;
use burn_peft::models::hub::resolve_model_dir;
use burn_peft::models::tokenizer::TextTokenizer;
use burn_peft::train::data::user::{Columns, LabelMap, RawExample, labelled_items, read_examples};
use burn_peft::train::data::{
    EncodedItem, GlueDataset, GlueTask, Split, TextClassificationItem, TokenizedDataset,
    download_glue,
};
use clap::Args;

/// Where results and progress go.
pub struct Output {
    /// No progress on stderr.
    pub quiet: bool,
    /// JSON on stdout.
    pub json: bool,
}

impl Output {
    /// A progress line on stderr, unless quiet.
    pub fn info(&self, message: impl AsRef<str>) {
        if !self.quiet {
            eprintln!("{}", message.as_ref());
        }
    }

    /// Print `value` as one JSON line.
    pub fn print_json(&self, value: &impl serde::Serialize) -> Result<(), CmdError> {
        let line = serde_json::to_string(value).map_err(|e| CmdError::Failed(e.into()))?;
        println!("{line}");
        Ok(())
    }
}

/// How a command failed: its exit code follows.
#[derive(Debug)]
pub enum CmdError {
    /// The command line is invalid (exit 2); checked before anything is loaded.
    Usage(String),
    /// Something failed while working (exit 1).
    Failed(Box<dyn std::error::Error>),
}

impl<E: std::error::Error + 'static> From<E> for CmdError {
    fn from(e: E) -> Self {
        Self::Failed(Box::new(e))
    }
}

/// A command's result.
pub type CmdResult<T = ()> = Result<T, CmdError>;

/// A failure with a message.
pub fn failed(message: impl Into<String>) -> CmdError {
    CmdError::Failed(message.into().into())
}

/// The base model flags of the BERT commands.
#[derive(Args, Debug, Clone)]
pub struct BertArgs {
    /// A Hugging Face BERT-family model directory or Hub id (honours HF_ENDPOINT)
    #[arg(long, value_name = "DIR|HUB_ID", default_value = "sentence-transformers/all-MiniLM-L6-v2",
          value_parser = burn_peft::cli::model_spec)]
    pub model: String,
    /// A tokenizer.json [default: the one in the model directory]
    #[arg(long, value_name = "FILE", value_parser = burn_peft::cli::existing_file)]
    pub tokenizer: Option<PathBuf>,
    /// flex, ndarray, wgpu, vulkan, metal, cuda [default: the compiled-in backend, or BURN_DEVICE]
    #[arg(long, value_parser = burn_peft::cli::device_name)]
    pub device: Option<String>,
}

/// The base, resolved (downloaded if it is a Hub id), with its tokenizer.
pub struct Base {
    /// The model directory.
    pub dir: PathBuf,
    /// The tokenizer, with the length limit applied and fitted to the model.
    pub tokenizer: Arc<TextTokenizer>,
    /// The device.
    pub device: Device,
    /// Size of the checkpoint file.
    pub bytes: u64,
}

impl BertArgs {
    /// The device (checked before anything is downloaded).
    pub fn device(&self) -> CmdResult<Device> {
        Ok(burn_peft::device::select_device(self.device.as_deref())?)
    }

    /// Resolve the model directory (downloaded if it is a Hub id) without its tokenizer.
    pub fn resolve_dir(&self) -> CmdResult<PathBuf> {
        Ok(resolve_model_dir(
            &self.model,
            &["config.json", "model.safetensors"],
        )?)
    }

    /// Resolve the model and load its tokenizer, truncating to `max_len` tokens.
    pub fn load(&self, device: Device, max_len: usize, out: &Output) -> CmdResult<Base> {
        let mut files = vec!["config.json", "model.safetensors"];
        if self.tokenizer.is_none() {
            files.push("tokenizer.json");
        }
        let dir = resolve_model_dir(&self.model, &files)?;
        let limits = BertConfig::from_hf_file(dir.join("config.json"))?.input_limits();
        let tokenizer = match &self.tokenizer {
            Some(f) => TextTokenizer::from_file(f)?,
            None => TextTokenizer::from_pretrained_dir(&dir)?,
        };
        let tokenizer = Arc::new(tokenizer.with_max_len(max_len)?.fit_to_model(&limits)?);
        let bytes = burn_peft::models::find_checkpoint(&dir)
            .ok()
            .and_then(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .unwrap_or(0);
        out.info(format!("model: {} | device: {device:?}", dir.display()));
        Ok(Base {
            dir,
            tokenizer,
            device,
            bytes,
        })
    }
}

/// Where labelled data comes from: a GLUE task or the user's files.
#[derive(Args, Debug, Clone)]
pub struct DataArgs {
    /// A GLUE task: sst2, cola, mrpc, rte, qnli, qqp, mnli, wnli, or stsb (regression: a
    /// one-output head, Pearson/Spearman; its data from --data DIR or --train/--valid files in
    /// the GLUE STS-B layout)
    #[arg(long, value_name = "TASK", value_parser = task_arg)]
    pub task: Option<TaskArg>,
    /// The task's directory (train.tsv, dev.tsv, ...) [default: download it once; stsb: required
    /// unless --train/--valid are given]
    #[arg(long, value_name = "DIR", value_parser = burn_peft::cli::existing_dir, requires = "task")]
    pub data: Option<PathBuf>,
    /// Your own validation data: .csv, .tsv or .jsonl with a header / keys
    #[arg(long, value_name = "FILE", value_parser = burn_peft::cli::existing_file)]
    pub valid: Option<PathBuf>,
    /// The text column of --train/--valid/--input files
    #[arg(long, value_name = "NAME", default_value = "text")]
    pub text_column: String,
    /// The second text column (pair tasks)
    #[arg(long, value_name = "NAME")]
    pub text_pair_column: Option<String>,
    /// The label column (strings or integers)
    #[arg(long, value_name = "NAME", default_value = "label")]
    pub label_column: String,
}

/// `--task`: a GLUE classification task or STS-B (regression).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskArg {
    /// A classification task.
    Glue(GlueTask),
    /// GLUE STS-B: sentence-pair similarity in [0, 5], a regression head.
    Stsb,
}

/// Parse a [`TaskArg`] (`stsb`, `STS-B`, or a GLUE task as [`burn_peft::cli::glue_task`]).
fn task_arg(s: &str) -> Result<TaskArg, String> {
    if s.to_ascii_lowercase().replace(['-', '_'], "") == "stsb" {
        return Ok(TaskArg::Stsb);
    }
    burn_peft::cli::glue_task(s)
        .map(TaskArg::Glue)
        .map_err(|m| format!("{m} (or stsb)"))
}

impl DataArgs {
    /// The GLUE classification task of `--task`, if it names one.
    pub fn glue_task(&self) -> Option<GlueTask> {
        match self.task {
            Some(TaskArg::Glue(t)) => Some(t),
            _ => None,
        }
    }

    /// Whether `--task stsb` was given.
    pub fn is_stsb(&self) -> bool {
        self.task == Some(TaskArg::Stsb)
    }

    /// Error (exit 2) when a classification `--task` comes with `--valid` or `--train` (only
    /// stsb reads its own files).
    pub fn check_sources(&self, train: Option<&PathBuf>) -> CmdResult {
        if let Some(task) = self.glue_task() {
            let flag = match (train, &self.valid) {
                (Some(_), _) => "--train",
                (None, Some(_)) => "--valid",
                (None, None) => return Ok(()),
            };
            return Err(CmdError::Usage(format!(
                "--task {} cannot be used with {flag} (a GLUE task reads its own data; --task \
                 stsb takes --train/--valid files)",
                task.name()
            )));
        }
        Ok(())
    }

    /// The STS-B train and dev files: `--train`/`--valid`, or `train.tsv`/`dev.tsv` in `--data`.
    pub fn stsb_files(&self, train: Option<&PathBuf>) -> CmdResult<(Option<PathBuf>, PathBuf)> {
        match (&self.data, train, &self.valid) {
            (_, train, Some(valid)) => Ok((train.cloned(), valid.clone())),
            (Some(dir), train, None) => Ok((
                Some(train.cloned().unwrap_or_else(|| dir.join("train.tsv"))),
                dir.join("dev.tsv"),
            )),
            (None, _, None) => Err(CmdError::Usage(
                "--task stsb needs --data DIR (train.tsv, dev.tsv) or --valid FILE (and --train \
                 FILE to train)"
                    .into(),
            )),
        }
    }

    /// The columns of the user's files.
    pub fn columns(&self) -> Columns {
        Columns {
            text: self.text_column.clone(),
            text_pair: self.text_pair_column.clone(),
            label: self.label_column.clone(),
        }
    }

    /// The GLUE directory of `--task` (downloaded once when `--data` is absent).
    pub fn glue_dir(&self, task: GlueTask) -> CmdResult<PathBuf> {
        Ok(match &self.data {
            Some(d) => d.clone(),
            None => download_glue(task, None)?,
        })
    }
}

/// A GLUE split, tokenized.
pub fn glue_items(
    dir: &Path,
    task: GlueTask,
    split: Split,
    tok: &TextTokenizer,
) -> CmdResult<Vec<EncodedItem>> {
    let data = GlueDataset::from_dir(dir, task, split)?;
    Ok(TokenizedDataset::from_glue(&data, tok)?.items().to_vec())
}

/// The user's file, labels mapped through `labels` (a head of `num_labels` classes), tokenized.
pub fn file_items(
    path: &Path,
    columns: &Columns,
    labels: &LabelMap,
    num_labels: usize,
    tok: &TextTokenizer,
) -> CmdResult<Vec<EncodedItem>> {
    let raw = read_examples(path, columns, true)?;
    let items = labelled_items(&raw, labels, num_labels, path)?;
    Ok(TokenizedDataset::new(&items, tok)?.items().to_vec())
}

/// Unlabelled texts as items (label 0), tokenized.
pub fn unlabelled_items(raw: &[RawExample], tok: &TextTokenizer) -> CmdResult<Vec<EncodedItem>> {
    let items: Vec<TextClassificationItem> = raw
        .iter()
        .map(|r| TextClassificationItem {
            text_a: r.text_a.clone(),
            text_b: r.text_b.clone(),
            label: 0,
        })
        .collect();
    Ok(TokenizedDataset::new(&items, tok)?.items().to_vec())
}
