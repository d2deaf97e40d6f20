//! Layers of the inference models that generated `to_inference()` returns.
//!
//! A compiler that sees the whole network can do what eager PyTorch does not: fold each BatchNorm
//! into the conv or linear before it, fuse the ReLU that follows, prepack conv weights for oneDNN
//! once, and keep activations in oneDNN's blocked layout from the first conv to the head, so no
//! layer converts its input.

use crate::nn::{BatchNorm, Conv2d, Linear};
use tch::Tensor;

/// Per-channel `(scale, shift)` of an eval-mode BatchNorm: `y = x * scale + shift`.
fn affine(norm: &BatchNorm) -> (Tensor, Tensor) {
    let scale = &norm.weight / (&norm.running_var + norm.eps).sqrt();
    let shift = &norm.bias - &norm.running_mean * &scale;
    (scale, shift)
}

/// Conv2d (+ folded BatchNorm2d) + ReLU on oneDNN tensors, with the weight prepacked.
#[derive(Debug)]
pub struct ConvReLU2d {
    /// The folded weight in oneDNN's blocked format.
    pub weight: Tensor,
    /// The folded bias as a oneDNN tensor.
    pub bias: Tensor,
    pub stride: i64,
    pub padding: i64,
}

impl ConvReLU2d {
    /// Folds `norm` (if any) into `conv` with its current statistics.
    pub fn new(conv: &Conv2d, norm: Option<&BatchNorm>) -> Self {
        tch::no_grad(|| {
            let (weight, bias) = match norm {
                Some(norm) => {
                    let (scale, shift) = affine(norm);
                    (
                        &conv.weight * scale.view([-1, 1, 1, 1]),
                        &conv.bias * &scale + shift,
                    )
                }
                None => (conv.weight.copy(), conv.bias.copy()),
            };
            let (s, p) = (conv.stride, conv.padding);
            let weight = weight
                .contiguous()
                .g_to_mkldnn(None)
                .mkldnn_reorder_conv2d_weight([p, p], [s, s], [1, 1], 1, None::<i64>);
            Self {
                weight,
                bias: bias.contiguous().g_to_mkldnn(None),
                stride: s,
                padding: p,
            }
        })
    }

    /// Takes and returns oneDNN tensors (`Tensor::to_mkldnn`).
    pub fn forward(&self, xs: &Tensor) -> Tensor {
        let (s, p) = (self.stride, self.padding);
        xs.mkldnn_convolution(&self.weight, Some(&self.bias), [p, p], [s, s], [1, 1], 1)
            .relu_()
    }
}

/// Linear (+ folded BatchNorm1d), with or without the ReLU that follows it, on dense tensors.
#[derive(Debug)]
pub struct FusedLinear {
    pub weight: Tensor,
    pub bias: Tensor,
    pub relu: bool,
}

impl FusedLinear {
    pub fn new(linear: &Linear, norm: Option<&BatchNorm>, relu: bool) -> Self {
        tch::no_grad(|| {
            let (weight, bias) = match norm {
                Some(norm) => {
                    let (scale, shift) = affine(norm);
                    (
                        &linear.weight * scale.view([-1, 1]),
                        &linear.bias * &scale + shift,
                    )
                }
                None => (linear.weight.copy(), linear.bias.copy()),
            };
            Self {
                weight: weight.contiguous(),
                bias,
                relu,
            }
        })
    }

    pub fn forward(&self, xs: &Tensor) -> Tensor {
        let mut ys = xs.linear(&self.weight, Some(&self.bias));
        if self.relu {
            ys.relu_()
        } else {
            ys
        }
    }
}
