//! Models and batches of the workloads: methods, configs, data, one training step.

use super::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Method {
    SeqBn,
    DoubleSeqBn,
    Head,
    Full,
    /// W2 only: HF `BertForSequenceClassification` (pre-trained pooler + linear).
    Base,
    /// The peer's PEFT LoRA: rank 8, alpha 16, query and value, no LoRA dropout, HF's pooler
    /// head (`BertForSequenceClassification` + `modules_to_save=["classifier"]`).
    Lora,
    /// W2 only: [`Method::Lora`] merged into the frozen weights (the peer's `merge_and_unload`).
    LoraMerged,
}

impl Method {
    pub(crate) fn parse(s: &str) -> Res<Self> {
        Ok(match s {
            "seq_bn" => Self::SeqBn,
            "double_seq_bn" => Self::DoubleSeqBn,
            "head" => Self::Head,
            "full" => Self::Full,
            "base" => Self::Base,
            "lora" => Self::Lora,
            "lora_merged" => Self::LoraMerged,
            _ => return Err(format!("unknown method/variant `{s}`").into()),
        })
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::SeqBn => "seq_bn",
            Self::DoubleSeqBn => "double_seq_bn",
            Self::Head => "head",
            Self::Full => "full",
            Self::Base => "base",
            Self::Lora => "lora",
            Self::LoraMerged => "lora_merged",
        }
    }

    pub(crate) fn training(self) -> TrainingMethod {
        match self {
            Self::SeqBn => TrainingMethod::Adapter {
                config: AdapterConfig::pfeiffer(16.0),
            },
            Self::DoubleSeqBn => TrainingMethod::Adapter {
                config: AdapterConfig::houlsby(16.0),
            },
            Self::Head => TrainingMethod::HeadOnly,
            Self::Full | Self::Base => TrainingMethod::Full,
            Self::Lora | Self::LoraMerged => TrainingMethod::Lora {
                config: LoraConfig::new(8, 16.0)
                    .with_targets(vec![LinearTarget::Query, LinearTarget::Value]),
            },
        }
    }

    /// AdapterHub's head for the AdapterHub methods, HF's pooler head for `full`/`base`
    /// (`BertForSequenceClassification`), as the peer builds them.
    pub(crate) fn pooling(self) -> HeadPooling {
        match self {
            Self::SeqBn | Self::DoubleSeqBn | Self::Head => HeadPooling::DenseTanh,
            Self::Full | Self::Base | Self::Lora | Self::LoraMerged => HeadPooling::Pooler,
        }
    }

    pub(crate) fn lr(self) -> f64 {
        if self == Self::Full { 2e-5 } else { 1e-3 }
    }
}

/// MiniLM-L6-H384 (all-MiniLM-L6-v2) shapes, used only when no model directory is found.
pub(crate) fn minilm_shape() -> BertConfig {
    BertConfig::new()
        .with_hidden_size(384)
        .with_num_hidden_layers(6)
        .with_num_attention_heads(12)
        .with_intermediate_size(1536)
}

pub(crate) fn bert_config(args: &Args) -> Res<BertConfig> {
    Ok(match args.model_dir() {
        Some(dir) => BertConfig::from_hf_file(dir.join("config.json"))?,
        None => minilm_shape(),
    })
}

/// The classifier for `method` (adapters attached, frozen as the method says), seeded with
/// [`SEED`]. `dropout` overrides every dropout probability (`None`: the config's 0.1).
pub(crate) fn build_model(
    args: &Args,
    method: Method,
    dropout: Option<f64>,
    device: &Device,
) -> Res<(BertClassifier, Value)> {
    device.seed(SEED);
    let mut config = bert_config(args)?;
    if let Some(p) = dropout {
        config = config
            .with_hidden_dropout_prob(p)
            .with_attention_probs_dropout_prob(p);
    }
    let mut bert = config.init(device)?;
    let weights = match args.model_dir() {
        Some(dir) => {
            bert.load_checkpoint(find_checkpoint(&dir)?)?;
            "pretrained"
        }
        None => "random (no model directory)",
    };
    let head = ClassificationHeadConfig::new(config.hidden_size, 2)
        .with_pooling(method.pooling())
        .with_dropout(dropout.unwrap_or(0.1));
    let model = BertClassifier::new(bert, &head, device)?;
    let (mut model, _, summary) = prepare_model(
        model,
        &method.training(),
        burn_peft::core::DEFAULT_ADAPTER,
        device,
    )?;
    if method == Method::LoraMerged {
        merge_adapter(&mut model, burn_peft::core::DEFAULT_ADAPTER)?;
    }
    let info = json!({
        "weights": weights,
        "trainable_params": summary.trainable,
        "total_params": summary.total,
        "trainable_tensors": summary.trainable_tensors,
    });
    Ok((model, info))
}

/// Pre-tokenized, pre-padded batches of a workload.
pub(crate) struct Batches {
    pub(crate) batches: Vec<ClassificationBatch>,
    /// Padded and real tokens per batch.
    pub(crate) tokens: Vec<(usize, usize)>,
    pub(crate) source: String,
}

pub(crate) fn batch_from_rows(
    rows: &[Vec<i64>],
    labels: &[i64],
    pad: i64,
    device: &Device,
) -> ClassificationBatch {
    let n = rows.len();
    let len = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut ids = Vec::with_capacity(n * len);
    let mut mask = Vec::with_capacity(n * len);
    for r in rows {
        ids.extend_from_slice(r);
        ids.extend(std::iter::repeat_n(pad, len - r.len()));
        mask.extend(std::iter::repeat_n(1_i64, r.len()));
        mask.extend(std::iter::repeat_n(0_i64, len - r.len()));
    }
    ClassificationBatch {
        input_ids: Tensor::from_data(TensorData::new(ids, [n, len]), device),
        token_type_ids: Tensor::<2, Int>::zeros([n, len], device),
        attention_mask: Tensor::from_data(TensorData::new(mask, [n, len]), device),
        labels: Tensor::from_data(TensorData::new(labels.to_vec(), [n]), device),
    }
}

/// The first `n_rows` rows of `file` (SST-2, file order), tokenized and padded to the longest
/// of each batch of `batch_size`; synthetic batches of `synth_len` tokens without assets.
pub(crate) fn workload_batches(
    args: &Args,
    file: &str,
    n_rows: Option<usize>,
    batch_size: usize,
    synth_len: usize,
    order: BatchOrder,
    device: &Device,
) -> Res<Batches> {
    let tokenizer_file = args.model_dir().map(|d| d.join("tokenizer.json"));
    match (args.data_dir(), tokenizer_file.filter(|f| f.is_file())) {
        (Some(data), Some(tok)) => {
            let mut items = load_glue_tsv(data.join(file), GlueTask::Sst2)?;
            if let Some(n) = n_rows {
                if items.len() < n {
                    return Err(format!("{file} has {} rows, need {n}", items.len()).into());
                }
                items.truncate(n);
            }
            let tokenizer = Arc::new(TextTokenizer::from_file(&tok)?.with_max_len(MAX_LEN)?);
            let encoded = TokenizedDataset::new(&items, &tokenizer)?;
            let batcher = ClassificationBatcher::new(tokenizer);
            let mut batches = Vec::new();
            let mut tokens = Vec::new();
            let lengths: Vec<usize> = encoded.items().iter().map(|i| i.input_ids.len()).collect();
            for plan in batch_plan(&lengths, batch_size, order) {
                let chunk: Vec<_> = plan.iter().map(|&i| encoded.items()[i].clone()).collect();
                let chunk = chunk.as_slice();
                let padded = batcher.pad(chunk);
                let real = padded.attention_mask.iter().filter(|&&m| m == 1).count();
                tokens.push((padded.input_ids.len(), real));
                use burn::data::dataloader::batcher::Batcher;
                batches.push(batcher.batch(chunk.to_vec(), device));
            }
            Ok(Batches {
                batches,
                tokens,
                source: format!("sst2 {file}"),
            })
        }
        _ => {
            let n = n_rows.unwrap_or(872);
            device.seed(SEED);
            let mut batches = Vec::new();
            let mut tokens = Vec::new();
            let mut row = 0usize;
            while row < n {
                let b = batch_size.min(n - row);
                let ids: Tensor<2, Int> = Tensor::random(
                    [b, synth_len],
                    Distribution::Uniform(1000.0, 29000.0),
                    device,
                );
                let data = ids.into_data().convert::<i64>();
                let flat = data.try_to_vec::<i64>().map_err(|e| format!("{e:?}"))?;
                let rows: Vec<Vec<i64>> = flat.chunks(synth_len).map(<[i64]>::to_vec).collect();
                let labels: Vec<i64> = (0..b).map(|i| (i % 2) as i64).collect();
                batches.push(batch_from_rows(&rows, &labels, 0, device));
                tokens.push((b * synth_len, b * synth_len));
                row += b;
            }
            Ok(Batches {
                batches,
                tokens,
                source: format!("synthetic (no data/tokenizer found), length {synth_len}"),
            })
        }
    }
}

pub(crate) fn dropout_flag(args: &Args) -> Res<Option<f64>> {
    match args.get("dropout") {
        None => Ok(None),
        Some(v) => Ok(Some(
            v.parse::<f64>()
                .map_err(|_| format!("--dropout: cannot parse `{v}`"))?,
        )),
    }
}

// ----------------------------------------------------------------------------------- W1

pub(crate) fn train_step(
    task: ClassificationTask,
    optim: &mut burn::optim::ModuleOptimizer,
    lr: f64,
    batch: ClassificationBatch,
) -> Res<(ClassificationTask, f64)> {
    let out = TrainStep::step(&task, batch);
    let task = TrainStep::optimize(task, optim, ModuleLearningRate::from(lr), out.grads);
    // The peer reads `loss.item()` every step; it also makes asynchronous backends finish.
    let loss = out.item.loss.into_scalar::<f64>();
    Ok((task, loss))
}
