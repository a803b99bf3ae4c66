//! Putting saved adapters onto a loaded classifier, and swapping them.

use std::path::Path;

use burn::tensor::Device;
use peft_core::{
    AdapterFile, AdapterMethod, PeftError, attach_adapters, load_adapter_weights,
    read_adapter_file, remove_adapters,
};
use peft_models::head::BertClassifier;

use crate::error::Result;

/// Put the adapter saved in `dir` onto `model` (a classifier on a loaded base), replacing the
/// adapters and head weights it had: checks that the adapter was made for this base and head
/// size, attaches adapters as the file says, and loads adapter and head weights.
///
/// Swapping tasks on one loaded base is calling this again with another directory; the base
/// is never reloaded.
pub fn load_classifier_adapter(
    model: &mut BertClassifier,
    dir: impl AsRef<Path>,
    device: &Device,
) -> Result<AdapterFile> {
    let dir = dir.as_ref();
    let file = read_adapter_file(dir)?;
    file.check_base(&model.base_info(), dir)?;
    if let Some(head) = &file.head
        && head.num_labels != model.head.num_labels()
    {
        return Err(PeftError::Incompatible {
            path: dir.to_path_buf(),
            message: format!(
                "the adapter's head has {} classes, the model's {}",
                head.num_labels,
                model.head.num_labels()
            ),
        }
        .into());
    }
    match &file.adapter {
        AdapterMethod::Bottleneck(config) => {
            attach_adapters(model, config, device)?;
        }
        AdapterMethod::HeadOnly => {
            remove_adapters(model);
        }
    }
    load_adapter_weights(model, dir, &file)?;
    Ok(file)
}
