//! `burn-peft generate`: GPT-2 continuation of a prompt, with an optional adapter.

use std::path::PathBuf;

use burn_peft::cli::{GenerationArgs, continue_prompt};
use burn_peft::core::adapterhub::is_hub_dir;
use burn_peft::models::adapterhub::load_adapterhub;
use burn_peft::models::gpt2::Gpt2Model;
use burn_peft::models::hub::resolve_model_dir;
use burn_peft::models::tokenizer::TextTokenizer;
use clap::Args;
use serde_json::json;

use crate::common::{CmdResult, Output, failed};

/// `burn-peft generate`.
#[derive(Args, Debug)]
pub struct GenerateCmd {
    /// A Hugging Face GPT-2 directory or Hub id
    #[arg(long, value_name = "DIR|HUB_ID", default_value = "gpt2", value_parser = burn_peft::cli::model_spec)]
    model: String,
    /// A tokenizer.json [default: the one in the model directory]
    #[arg(long, value_name = "FILE", value_parser = burn_peft::cli::existing_file)]
    tokenizer: Option<PathBuf>,
    /// An AdapterHub adapter directory for this GPT-2 (e.g. from `model.save_adapter`)
    #[arg(long, value_name = "DIR", value_parser = burn_peft::cli::existing_dir)]
    adapter: Option<PathBuf>,
    /// flex, ndarray, wgpu, vulkan, metal, cuda [default: the compiled-in backend, or BURN_DEVICE]
    #[arg(long, value_parser = burn_peft::cli::device_name)]
    device: Option<String>,
    /// Sampling seed
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[command(flatten)]
    generation: GenerationArgs,
}

/// Run `burn-peft generate`.
pub fn run(cmd: GenerateCmd, out: &Output) -> CmdResult {
    let device = burn_peft::device::select_device(cmd.device.as_deref())?;
    if let Some(dir) = &cmd.adapter
        && !is_hub_dir(dir)
    {
        return Err(crate::common::CmdError::Usage(format!(
            "--adapter {}: generate reads AdapterHub directories (adapter_config.json)",
            dir.display()
        )));
    }
    let generation = cmd.generation.config(cmd.seed);
    generation.validate()?;
    let mut files = vec!["config.json", "model.safetensors"];
    if cmd.tokenizer.is_none() {
        files.push("tokenizer.json");
    }
    let dir = resolve_model_dir(&cmd.model, &files)?;
    let tokenizer_file = cmd
        .tokenizer
        .clone()
        .unwrap_or_else(|| dir.join("tokenizer.json"));
    let tokenizer = TextTokenizer::from_file(&tokenizer_file)?;
    let (mut model, report) = Gpt2Model::from_pretrained(&dir, &device)?;
    out.info(format!("{report}"));
    if tokenizer.vocab_size() > model.vocab_size {
        return Err(failed(format!(
            "the tokenizer has {} tokens, the model only {}: they do not belong together",
            tokenizer.vocab_size(),
            model.vocab_size
        )));
    }
    if let Some(adapter) = &cmd.adapter {
        let loaded = load_adapterhub(&mut model, adapter, None, &device)?;
        burn_peft::core::set_active(
            &mut model,
            Some(burn_peft::core::Setup::single(&loaded.name)),
        )?;
        out.info(format!("{loaded}"));
    }
    let prompt_ids = tokenizer.encode_plain(&cmd.generation.prompt)?;
    if prompt_ids.is_empty() {
        return Err(failed("--prompt encodes to no token"));
    }
    let text = continue_prompt(&model, &tokenizer, &prompt_ids, &generation)
        .map_err(crate::common::CmdError::Failed)?;
    if out.json {
        return out.print_json(&json!({"prompt": cmd.generation.prompt, "text": text}));
    }
    println!("{text}");
    Ok(())
}
