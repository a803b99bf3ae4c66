//! Non-linearities available inside a bottleneck adapter.

use std::fmt;
use std::str::FromStr;

use burn::tensor::{Tensor, activation};
use serde::{Deserialize, Serialize};

use crate::error::PeftError;

/// The non-linearity between the down- and up-projection of an adapter.
///
/// Serialised with AdapterHub's names (`relu`, `gelu`, `gelu_new`, `swish`, `tanh`,
/// `leaky_relu`); `silu` and `gelu_tanh` are accepted as aliases.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// `max(0, x)`.
    Relu,
    /// GELU, exact erf form (BERT's `gelu`).
    Gelu,
    /// GELU, tanh approximation (GPT-2's `gelu_new`).
    #[serde(alias = "gelu_tanh")]
    GeluNew,
    /// SiLU / swish, `x * sigmoid(x)` (AdapterHub's Houlsby preset).
    #[serde(rename = "swish", alias = "silu")]
    Silu,
    /// Hyperbolic tangent.
    Tanh,
    /// Leaky ReLU with PyTorch's default negative slope 0.01.
    LeakyRelu,
}

impl Activation {
    /// Apply the non-linearity element-wise.
    pub fn forward<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Self::Relu => activation::relu(x),
            Self::Gelu => activation::gelu(x),
            Self::GeluNew => activation::gelu_approximate(x),
            Self::Silu => activation::silu(x),
            Self::Tanh => activation::tanh(x),
            Self::LeakyRelu => activation::leaky_relu(x, 0.01),
        }
    }

    /// The canonical (serialised) name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Relu => "relu",
            Self::Gelu => "gelu",
            Self::GeluNew => "gelu_new",
            Self::Silu => "swish",
            Self::Tanh => "tanh",
            Self::LeakyRelu => "leaky_relu",
        }
    }
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Activation {
    type Err = PeftError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "relu" => Ok(Self::Relu),
            "gelu" => Ok(Self::Gelu),
            "gelu_new" | "gelu_tanh" | "gelu_approximate" => Ok(Self::GeluNew),
            "silu" | "swish" => Ok(Self::Silu),
            "tanh" => Ok(Self::Tanh),
            "leaky_relu" | "leakyrelu" => Ok(Self::LeakyRelu),
            _ => Err(PeftError::UnknownActivation(s.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData, Tolerance};

    #[test]
    fn names_round_trip_and_unknown_is_an_error() {
        for a in [
            Activation::Relu,
            Activation::Gelu,
            Activation::GeluNew,
            Activation::Silu,
            Activation::Tanh,
            Activation::LeakyRelu,
        ] {
            assert_eq!(a.name().parse::<Activation>().ok(), Some(a));
            let json = serde_json::to_string(&a).ok();
            assert_eq!(json, Some(format!("\"{}\"", a.name())));
        }
        assert_eq!("silu".parse::<Activation>().ok(), Some(Activation::Silu));
        assert!(matches!(
            "sigmoidish".parse::<Activation>(),
            Err(PeftError::UnknownActivation(_))
        ));
        assert!(serde_json::from_str::<Activation>("\"sigmoidish\"").is_err());
    }

    #[test]
    fn values_match_pytorch() {
        let device = Device::flex();
        let x = Tensor::<1>::from_floats([-2.0, -0.5, 0.0, 1.5], &device);
        // torch.nn.functional.{silu, gelu, gelu(approximate="tanh"), leaky_relu} on the same input.
        let cases: [(Activation, [f32; 4]); 4] = [
            (
                Activation::Silu,
                [-0.238_405_85, -0.188_770_94, 0.0, 1.226_361_2],
            ),
            (
                Activation::Gelu,
                [-0.045_500_26, -0.154_268_53, 0.0, 1.399_789_5],
            ),
            (
                Activation::GeluNew,
                [-0.045_402_31, -0.154_286, 0.0, 1.399_572_3],
            ),
            (Activation::LeakyRelu, [-0.02, -0.005, 0.0, 1.5]),
        ];
        for (act, expected) in cases {
            act.forward(x.clone())
                .into_data()
                .assert_approx_eq::<f32>(&TensorData::from(expected), Tolerance::absolute(1e-5));
        }
    }
}
