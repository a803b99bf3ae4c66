//! GPT-2's `Conv1D`: a linear layer whose weight is stored `[in, out]`.
//!
//! The type is deliberately *not* named `Linear`: burn-store's `PyTorchToBurnAdapter` transposes
//! the `weight` of every module called `Linear` (PyTorch's `nn.Linear` is `[out, in]`), while
//! Hugging Face's GPT-2 `Conv1D` already stores `[in, out]`, which is burn's layout. Loading
//! these weights through a `Linear` would transpose them: silently wrong for square matrices
//! (`attn.c_proj`), a shape error for the others.

use burn::module::{Module, Param};
use burn::nn::Initializer;
use burn::tensor::{Device, Tensor};
use peft_core::{BaseLayout, LinearSite};

/// `y = x W + b` with `W` stored `[in, out]` (Hugging Face `transformers.pytorch_utils.Conv1D`).
#[derive(Module, Debug)]
pub struct Conv1D {
    /// `[in, out]`, as in the checkpoint.
    pub weight: Param<Tensor<2>>,
    /// `[out]`.
    pub bias: Param<Tensor<1>>,
}

impl Conv1D {
    /// A layer `d_in -> d_out` with weights drawn from N(0, `std`) and a zero bias (Hugging Face's
    /// GPT-2 initialisation with `std = initializer_range`).
    pub fn new(d_in: usize, d_out: usize, std: f64, device: &Device) -> Self {
        Self {
            weight: Initializer::Normal { mean: 0.0, std }.init([d_in, d_out], device),
            bias: Initializer::Zeros.init([d_out], device),
        }
    }

    /// Input width.
    pub fn d_in(&self) -> usize {
        self.weight.lazy_shape().dims::<2>()[0]
    }

    /// Output width.
    pub fn d_out(&self) -> usize {
        self.weight.lazy_shape().dims::<2>()[1]
    }

    /// This layer as a [`LinearSite`] (a LoRA target) that keeps the `Conv1D` layout in
    /// checkpoints.
    pub fn into_site(self) -> LinearSite {
        LinearSite::new(self.weight, Some(self.bias), BaseLayout::Conv1D)
    }

    /// `[..., in]` -> `[..., out]`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        burn::tensor::module::linear(x, self.weight.val(), Some(self.bias.val()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{TensorData, Tolerance};

    #[test]
    fn forward_is_x_times_w_plus_b_with_w_in_out() {
        let device = Device::flex();
        // W is [in = 2, out = 3]: a [out, in] reading would not even have the right shape.
        let layer = Conv1D {
            weight: Param::from_tensor(Tensor::from_data(
                TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3]),
                &device,
            )),
            bias: Param::from_tensor(Tensor::from_data(
                TensorData::new(vec![0.5f32, -0.5, 1.0], [3]),
                &device,
            )),
        };
        assert_eq!((layer.d_in(), layer.d_out()), (2, 3));
        let x = Tensor::<3>::from_data(
            TensorData::new(vec![1.0f32, 0.0, 0.0, 1.0, 2.0, -1.0], [1, 3, 2]),
            &device,
        );
        let y = layer.forward(x);
        assert_eq!(y.dims(), [1, 3, 3]);
        // Row x = [1, 0] -> W row 0 + b; [0, 1] -> W row 1 + b; [2, -1] -> 2 W0 - W1 + b.
        let expected = TensorData::new(
            vec![1.5f32, 1.5, 4.0, 4.5, 4.5, 7.0, -1.5, -1.5, 1.0],
            [1, 3, 3],
        );
        y.into_data()
            .assert_approx_eq::<f32>(&expected, Tolerance::absolute(1e-6));
    }

    #[test]
    fn new_has_the_requested_shapes_and_zero_bias() {
        let device = Device::flex();
        let layer = Conv1D::new(4, 12, 0.02, &device);
        assert_eq!(layer.weight.lazy_shape().dims::<2>(), [4, 12]);
        assert_eq!(layer.bias.val().abs().max().into_scalar::<f32>(), 0.0);
    }
}
