//! An epoch-aware data loader for pre-tokenized examples, generic over the item and batch
//! types (classification: [`EncodedItem`] -> [`ClassificationBatch`], the defaults; causal LM:
//! [`crate::lm::LmBlock`] -> [`crate::lm::LmBatch`]).
//!
//! burn's `DataLoaderBuilder::shuffle` draws each epoch's order from one RNG stream, so a run
//! resumed at epoch `k` would see a different order than an uninterrupted one. [`EpochLoader`]
//! derives epoch `e`'s order from `(seed, e)` alone, and reseeds the device RNG (dropout masks)
//! the same way, which makes a resumed run continue exactly.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataloader::{DataLoader, DataLoaderIterator, Progress};
use burn::data::dataset::DatasetError;
use burn::tensor::Device;

use crate::data::{ClassificationBatch, EncodedItem, shuffled_indices};

/// The order in which an epoch visits the examples.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EpochOrder {
    /// File order every epoch.
    Sequential,
    /// A fresh permutation per epoch, from `(seed, epoch)`.
    Shuffled {
        /// Base seed.
        seed: u64,
    },
    /// A given permutation for the first epoch (e.g. the PyTorch peer's `randperm`), then
    /// shuffled from `(seed, epoch)`.
    FirstThenShuffled {
        /// Indices of the first epoch.
        first: Vec<usize>,
        /// Base seed for later epochs.
        seed: u64,
    },
}

/// The items a run trains on and their epoch order: with `max_steps`, the first
/// `max_steps * batch_size` items of the first-epoch order (`first` when it covers every item,
/// else the seed's shuffle) visited sequentially; otherwise every item, `first` then shuffles
/// from `seed` (or shuffles from the start).
pub fn epoch_plan<T: Clone>(
    items: &[T],
    max_steps: Option<usize>,
    batch_size: usize,
    first: Option<&Vec<usize>>,
    seed: u64,
) -> (Vec<T>, EpochOrder) {
    match (max_steps.map(|s| s * batch_size), first) {
        (Some(n), first) => {
            let order = first
                .filter(|o| o.len() == items.len())
                .cloned()
                .unwrap_or_else(|| shuffled_indices(items.len(), seed));
            let cut = order
                .iter()
                .take(n)
                .filter_map(|&i| items.get(i).cloned())
                .collect();
            (cut, EpochOrder::Sequential)
        }
        (None, Some(first)) => (
            items.to_vec(),
            EpochOrder::FirstThenShuffled {
                first: first.clone(),
                seed,
            },
        ),
        (None, None) => (items.to_vec(), EpochOrder::Shuffled { seed }),
    }
}

fn mix(seed: u64, epoch: usize) -> u64 {
    // SplitMix64 finaliser of seed + epoch: distinct, well-spread seeds per epoch.
    let mut z = seed.wrapping_add((epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Batches items of type `I` into `O` with a [`Batcher`], in an [`EpochOrder`]. The defaults
/// are the classification types: [`EncodedItem`]s padded to the longest of each batch by a
/// [`crate::data::ClassificationBatcher`].
pub struct EpochLoader<I = EncodedItem, O = ClassificationBatch> {
    items: Arc<Vec<I>>,
    batcher: Arc<dyn Batcher<I, O>>,
    batch_size: usize,
    order: EpochOrder,
    epoch: Arc<AtomicUsize>,
    /// Batches to skip at the start of the next epoch (a mid-epoch resume); consumed once.
    skip: Arc<AtomicUsize>,
    device: Device,
    reseed_device: Option<u64>,
}

impl<I, O> EpochLoader<I, O>
where
    I: Clone + Send + Sync + 'static,
    O: 'static,
{
    /// A loader over `items`, batched by `batcher`; `device` receives the batches.
    pub fn new(
        items: Vec<I>,
        batcher: impl Batcher<I, O> + 'static,
        batch_size: usize,
        order: EpochOrder,
        device: Device,
    ) -> Self {
        Self {
            items: Arc::new(items),
            batcher: Arc::new(batcher),
            batch_size: batch_size.max(1),
            order,
            epoch: Arc::new(AtomicUsize::new(0)),
            skip: Arc::new(AtomicUsize::new(0)),
            device,
            reseed_device: None,
        }
    }

    /// Reseed `device`'s RNG from `(seed, epoch, batch)` before every batch, so dropout masks
    /// do not depend on what ran before (a resumed run draws the same masks).
    pub fn with_device_reseed(mut self, seed: u64) -> Self {
        self.reseed_device = Some(seed);
        self
    }

    /// Start counting epochs at `epoch` (0-based): for resuming after `epoch` finished epochs.
    pub fn starting_at_epoch(self, epoch: usize) -> Self {
        self.epoch.store(epoch, Ordering::SeqCst);
        self
    }

    /// Start at epoch `epoch` (0-based) with its first `batches` batches already trained: the
    /// first epoch iterated continues epoch `epoch`'s order at batch `batches` (for resuming a
    /// run interrupted mid-epoch).
    pub fn resuming_at(self, epoch: usize, batches: usize) -> Self {
        self.skip.store(batches, Ordering::SeqCst);
        self.starting_at_epoch(epoch)
    }

    /// Number of batches per epoch.
    pub fn num_batches(&self) -> usize {
        self.items.len().div_ceil(self.batch_size)
    }

    /// The example order of epoch `epoch` (0-based).
    pub fn order_for_epoch(&self, epoch: usize) -> Vec<usize> {
        let n = self.items.len();
        match &self.order {
            EpochOrder::Sequential => (0..n).collect(),
            EpochOrder::Shuffled { seed } => shuffled_indices(n, mix(*seed, epoch)),
            EpochOrder::FirstThenShuffled { first, seed } => {
                if epoch == 0 && first.len() == n {
                    first.clone()
                } else {
                    shuffled_indices(n, mix(*seed, epoch))
                }
            }
        }
    }
}

struct EpochIter<'a, I, O> {
    loader: &'a EpochLoader<I, O>,
    order: Vec<usize>,
    pos: usize,
    epoch: usize,
    batch: usize,
}

impl<I: Clone, O> Iterator for EpochIter<'_, I, O> {
    type Item = Result<O, DatasetError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.order.len() {
            return None;
        }
        let end = (self.pos + self.loader.batch_size).min(self.order.len());
        let items: Vec<I> = self.order[self.pos..end]
            .iter()
            .filter_map(|&i| self.loader.items.get(i).cloned())
            .collect();
        self.pos = end;
        if let Some(seed) = self.loader.reseed_device {
            self.loader
                .device
                .seed(mix(mix(seed ^ 0xD0D0_CAFE, self.epoch), self.batch));
        }
        self.batch += 1;
        Some(Ok(self.loader.batcher.batch(items, &self.loader.device)))
    }
}

impl<I: Clone, O> DataLoaderIterator<O> for EpochIter<'_, I, O> {
    fn progress(&self) -> Progress {
        Progress::new(self.pos, self.order.len(), Some("examples".to_string()))
    }
}

impl<I, O> DataLoader<O> for EpochLoader<I, O>
where
    I: Clone + Send + Sync + 'static,
    O: 'static,
{
    fn iter<'a>(&'a self) -> Box<dyn DataLoaderIterator<O> + 'a> {
        let epoch = self.epoch.fetch_add(1, Ordering::SeqCst);
        let order = self.order_for_epoch(epoch);
        let skip = self.skip.swap(0, Ordering::SeqCst);
        let pos = skip.saturating_mul(self.batch_size).min(order.len());
        Box::new(EpochIter {
            loader: self,
            order,
            pos,
            epoch,
            batch: skip,
        })
    }

    fn num_items(&self) -> usize {
        self.items.len()
    }

    fn to_device(&self, device: &Device) -> Arc<dyn DataLoader<O>> {
        Arc::new(Self {
            items: self.items.clone(),
            batcher: self.batcher.clone(),
            batch_size: self.batch_size,
            order: self.order.clone(),
            epoch: self.epoch.clone(),
            skip: self.skip.clone(),
            device: device.clone(),
            reseed_device: self.reseed_device,
        })
    }

    fn slice(&self, start: usize, end: usize) -> Arc<dyn DataLoader<O>> {
        let end = end.min(self.items.len());
        let start = start.min(end);
        Arc::new(Self {
            items: Arc::new(self.items[start..end].to_vec()),
            batcher: self.batcher.clone(),
            batch_size: self.batch_size,
            order: EpochOrder::Sequential,
            epoch: Arc::new(AtomicUsize::new(self.epoch.load(Ordering::SeqCst))),
            skip: Arc::new(AtomicUsize::new(0)),
            device: self.device.clone(),
            reseed_device: None,
        })
    }
}
