//! Layers of the inference models that generated `to_inference()` returns.
//!
//! A compiler that sees the whole network can do what eager PyTorch does not: fold each BatchNorm
//! into the conv or linear before it, fuse the ReLU that follows, and prepack conv weights for
//! oneDNN once. Activations then take the layout that measured fastest for their batch size
//! (BENCHMARKS.md): small batches run in channels-last dense tensors through oneDNN's fused
//! conv + ReLU kernel (`mkldnn::_convolution_pointwise`, what torch.compile emits, reached
//! through [`crate::ops`]); large batches stay in oneDNN's blocked layout from the first conv to
//! the head, so no layer converts its input. Models that oneDNN can't run (f64, f16 or bf16
//! weights, a GPU, a libtorch without oneDNN) run the folded weights on plain tensors.

use crate::nn::{BatchNorm, Conv2d, Linear};
use crate::ops;
use tch::{Device, Kind, Tensor};

/// Per-channel `(scale, shift)` of an eval-mode BatchNorm: `y = x * scale + shift`.
fn affine(norm: &BatchNorm) -> (Tensor, Tensor) {
    let scale = &norm.weight / (&norm.running_var + norm.eps).sqrt();
    let shift = &norm.bias - &norm.running_mean * &scale;
    (scale, shift)
}

/// From this batch size on, activations travel in oneDNN's blocked layout; below it, in
/// channels-last dense tensors.
pub const BLOCKED_FROM_BATCH: i64 = 16;

/// Whether tensors like `t` can run on oneDNN: f32 on the CPU, with a libtorch built with oneDNN
/// (f64 has no oneDNN format; f16 and bf16 need CPU extensions to prepack). Conv layers prepack
/// their weights exactly when their weights pass, so a batch that passes meets prepacked weights
/// of its own kind.
fn onednn_runs(t: &Tensor) -> bool {
    t.kind() == Kind::Float && t.device() == Device::Cpu && tch::utils::has_mkldnn()
}

/// Puts a batch in the layout the inference layers run it in.
pub fn enter(xs: &Tensor) -> Tensor {
    if !onednn_runs(xs) || xs.dim() != 4 {
        xs.shallow_clone()
    } else if xs.size()[0] >= BLOCKED_FROM_BATCH {
        xs.to_mkldnn()
    } else {
        // NCHW sizes over NHWC memory: PyTorch's channels_last format.
        xs.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
    }
}

/// Back to a plain, contiguous NCHW tensor (what flattening needs), whichever layout `enter` chose.
pub fn leave(xs: Tensor) -> Tensor {
    if xs.is_mkldnn() {
        xs.to_dense(None, false)
    } else {
        xs.contiguous()
    }
}

/// Conv2d (+ folded BatchNorm2d) + ReLU, with the folded weight also prepacked for oneDNN where
/// its layout can run.
#[derive(Debug)]
pub struct ConvReLU2d {
    /// The folded weight.
    pub weight: Tensor,
    /// The folded bias.
    pub bias: Tensor,
    /// `weight` prepacked in oneDNN's format and `bias` as a oneDNN tensor; `None` where oneDNN
    /// can't run the weights' kind and device.
    pub packed: Option<(Tensor, Tensor)>,
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
            let (weight, bias) = (weight.contiguous(), bias.contiguous());
            let packed = onednn_runs(&weight).then(|| {
                let packed_weight = weight.to_mkldnn().mkldnn_reorder_conv2d_weight(
                    [p, p],
                    [s, s],
                    [1, 1],
                    1,
                    None::<i64>,
                );
                (packed_weight, bias.to_mkldnn())
            });
            Self {
                weight,
                bias,
                packed,
                stride: s,
                padding: p,
            }
        })
    }

    /// Runs in the layout of `xs` (see [`enter`]). Like tch's own layers, panics where libtorch
    /// refuses the input (a batch of the wrong shape or kind).
    pub fn forward(&self, xs: &Tensor) -> Tensor {
        let (s, p) = (self.stride, self.padding);
        match &self.packed {
            Some((w, b)) if xs.is_mkldnn() => xs
                .mkldnn_convolution(w, Some(b), [p, p], [s, s], [1, 1], 1)
                .relu_(),
            Some((w, _)) if ops::has_conv2d_relu() => ops::conv2d_relu(xs, w, &self.bias, s, p)
                .unwrap_or_else(|e| panic!("oneDNN conv2d + ReLU failed: {e}")),
            _ => xs
                .conv2d(&self.weight, Some(&self.bias), [s, s], [p, p], [1, 1], 1)
                .relu_(),
        }
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
