//! Layers of the inference models that generated `to_inference()` returns.
//!
//! A compiler that sees the whole network can do what eager PyTorch does not: fold each BatchNorm
//! into the conv or linear before it, fuse the ReLU that follows, prepack conv weights for oneDNN
//! once, and keep activations in oneDNN's blocked layout from the first conv to the head, so no
//! layer converts its input. Small batches gain nothing from the blocked layout (measured in
//! BENCHMARKS.md), so they run the folded weights on plain tensors instead, as do models the
//! layout can't run: f64, f16 or bf16 weights, a GPU, or a libtorch without oneDNN.

use crate::nn::{BatchNorm, Conv2d, Linear};
use tch::{Device, Kind, Tensor};

/// Per-channel `(scale, shift)` of an eval-mode BatchNorm: `y = x * scale + shift`.
fn affine(norm: &BatchNorm) -> (Tensor, Tensor) {
    let scale = &norm.weight / (&norm.running_var + norm.eps).sqrt();
    let shift = &norm.bias - &norm.running_mean * &scale;
    (scale, shift)
}

/// From this batch size on, activations travel in oneDNN's blocked layout.
pub const BLOCKED_FROM_BATCH: i64 = 16;

/// Whether tensors like `t` can run in oneDNN's blocked layout: f32 on the CPU, with a libtorch
/// built with oneDNN (f64 has no oneDNN format; f16 and bf16 need CPU extensions to prepack).
/// Conv layers prepack their weights exactly when their weights pass, so a batch that passes
/// meets prepacked weights of its own kind.
fn blocked_layout_runs(t: &Tensor) -> bool {
    t.kind() == Kind::Float && t.device() == Device::Cpu && tch::utils::has_mkldnn()
}

/// Puts a batch in the layout the inference layers run it in.
pub fn enter(xs: &Tensor) -> Tensor {
    if xs.size().first().is_some_and(|&n| n >= BLOCKED_FROM_BATCH) && blocked_layout_runs(xs) {
        xs.g_to_mkldnn(None)
    } else {
        xs.shallow_clone()
    }
}

/// Back to a plain tensor, whichever layout `enter` chose.
pub fn leave(xs: Tensor) -> Tensor {
    if xs.is_mkldnn() {
        xs.to_dense(None, false)
    } else {
        xs
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
    /// `weight` in oneDNN's blocked format and `bias` as a oneDNN tensor, for blocked-layout
    /// inputs; `None` where [`enter`] never blocks a batch of the weights' kind and device.
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
            let packed = blocked_layout_runs(&weight).then(|| {
                let packed_weight = weight.g_to_mkldnn(None).mkldnn_reorder_conv2d_weight(
                    [p, p],
                    [s, s],
                    [1, 1],
                    1,
                    None::<i64>,
                );
                (packed_weight, bias.g_to_mkldnn(None))
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

    /// Runs in the layout of `xs` (see [`enter`]).
    pub fn forward(&self, xs: &Tensor) -> Tensor {
        let (s, p) = (self.stride, self.padding);
        let mut ys = match &self.packed {
            Some((w, b)) if xs.is_mkldnn() => {
                xs.mkldnn_convolution(w, Some(b), [p, p], [s, s], [1, 1], 1)
            }
            _ => xs.conv2d(&self.weight, Some(&self.bias), [s, s], [p, p], [1, 1], 1),
        };
        ys.relu_()
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
