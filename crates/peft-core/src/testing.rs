//! A toy model with adapter sites, for this crate's tests.

use burn::module::Module;
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

use crate::attach::AdapterHost;
use crate::config::AdapterSite;
use crate::site::AdapterLayer;

#[derive(Module, Debug)]
pub struct ToySub {
    pub dense: Linear,
    pub layer_norm: LayerNorm,
    pub adapters: AdapterLayer,
}

#[derive(Module, Debug)]
pub struct ToyBlock {
    pub attention: ToySub,
    pub output: ToySub,
}

#[derive(Module, Debug)]
pub struct Toy {
    pub blocks: Vec<ToyBlock>,
    pub head: Linear,
    pub d: usize,
}

impl Toy {
    pub fn new(d: usize, layers: usize, device: &Device) -> Self {
        let sub = || ToySub {
            dense: LinearConfig::new(d, d).init(device),
            layer_norm: LayerNormConfig::new(d).init(device),
            adapters: AdapterLayer::new(),
        };
        Self {
            blocks: (0..layers)
                .map(|_| ToyBlock {
                    attention: sub(),
                    output: sub(),
                })
                .collect(),
            head: LinearConfig::new(d, 2).init(device),
            d,
        }
    }

    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let mut x = crate::replicate_batch(x, crate::parallel_channels(self));
        for b in &self.blocks {
            for s in [&b.attention, &b.output] {
                let h = s.dense.forward(x.clone());
                x = s.adapters.forward(h, x, Some(&s.layer_norm));
            }
        }
        x
    }
}

impl AdapterHost for Toy {
    fn num_layers(&self) -> usize {
        self.blocks.len()
    }
    fn d_model(&self) -> usize {
        self.d
    }
    fn adapter_layer(&self, layer: usize, site: AdapterSite) -> Option<&AdapterLayer> {
        let b = self.blocks.get(layer)?;
        Some(match site {
            AdapterSite::AttentionOutput => &b.attention.adapters,
            AdapterSite::FeedForwardOutput => &b.output.adapters,
        })
    }
    fn adapter_layer_mut(&mut self, layer: usize, site: AdapterSite) -> Option<&mut AdapterLayer> {
        let b = self.blocks.get_mut(layer)?;
        Some(match site {
            AdapterSite::AttentionOutput => &mut b.attention.adapters,
            AdapterSite::FeedForwardOutput => &mut b.output.adapters,
        })
    }
}
