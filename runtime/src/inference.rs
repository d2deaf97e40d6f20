//! Layers of the inference models that generated `to_inference()` returns: each BatchNorm folded
//! into the conv or linear before it, the ReLU after it fused, conv weights prepacked for oneDNN
//! once, and the weights a pass reads in huge pages ([`crate::memory`]). A compiler that sees the
//! whole network can do this; eager PyTorch does not.
//!
//! A conv runs the kernel that measured fastest for its batch and map (BENCHMARKS.md; [`enter`],
//! [`ConvReLU2d::forward`]): small batches in channels-last tensors through oneDNN's fused conv +
//! ReLU, large ones in oneDNN's blocked layout from the first conv on, so that no conv converts
//! its input; a conv on a map of a few positions as one matrix product, a wide conv on a small
//! map in Winograd's F(2×2, 3×3) form. Weights oneDNN can't run (f64, f16 or bf16, a GPU, a
//! libtorch without oneDNN) run folded on plain tensors.

use std::cell::OnceCell;

use crate::memory;
use crate::nn::{BatchNorm, Conv2d, Linear};
use crate::ops;
use tch::{Device, IndexOp, Kind, Tensor};

/// Builds what the layers keep for their passes: without a graph, and with blocks that huge pages
/// can cover from end to end ([`memory::in_whole_huge_pages`]).
fn no_grad_in_huge_pages<T>(f: impl FnOnce() -> T) -> T {
    memory::in_whole_huge_pages(|| tch::no_grad(f))
}

/// Per-channel `(scale, shift)` of an eval-mode BatchNorm: `y = x * scale + shift`.
fn affine(norm: &BatchNorm) -> (Tensor, Tensor) {
    let scale = &norm.weight / (&norm.running_var + norm.eps).sqrt();
    let shift = &norm.bias - &norm.running_mean * &scale;
    (scale, shift)
}

/// From this batch size on, activations travel in oneDNN's blocked layout; below it, in
/// channels-last dense tensors.
pub const BLOCKED_FROM_BATCH: i64 = 16;

/// From this batch size on, a wide 3×3 conv on a small map runs Winograd's F(2×2, 3×3) (see
/// `ConvReLU2d::winograd_for`). Not at batch 1: a batch of one streams the weights, and their
/// Winograd form is 16/9 the size.
pub const WINOGRAD_FROM_BATCH: i64 = 2;

/// From this batch size on, a conv whose map has few positions runs as a matrix product (see
/// [`ConvReLU2d::forward`]): the smallest batch at which it measured faster than the conv
/// kernels the batch would otherwise take (BENCHMARKS.md).
pub const DENSE_FROM_BATCH: i64 = 8;

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
    /// The conv as a matrix for the first map size that qualified (see
    /// [`ConvReLU2d::forward`]); built on first use, as the size is known only then. Other map
    /// sizes run the conv kernels. Built from `weight` and `bias` as they were then: replace
    /// those (or `packed`) and build the layer anew.
    dense: OnceCell<Dense>,
    /// `weight` in Winograd's form (see [`winograd_weight`]), built on first use, like `dense`.
    winograd: OnceCell<Tensor>,
}

/// Winograd's F(2×2, 3×3) form of 3×3 conv weights `[out, in, 3, 3]`: `G g Gᵀ` for each channel
/// pair, laid out `[16, in, out]` for [`ops::winograd_conv_relu`]. Computed in f64, so the only
/// rounding is the final one to the weights' kind.
pub fn winograd_weight(weight: &Tensor) -> Tensor {
    let [o, c, 3, 3] = weight.size()[..] else {
        panic!(
            "Winograd's F(2×2, 3×3) needs 3×3 weights, not {:?}",
            weight.size()
        )
    };
    let g = Tensor::from_slice(&[1.0, 0.0, 0.0, 0.5, 0.5, 0.5, 0.5, -0.5, 0.5, 0.0, 0.0, 1.0])
        .view([4, 3])
        .to_device(weight.device());
    g.matmul(&weight.to_kind(Kind::Double))
        .matmul(&g.tr())
        .reshape([o, c, 16])
        .permute([2, 1, 0])
        .to_kind(weight.kind())
        .contiguous()
}

/// A conv on an `h × w` map as the matrix product it is: `weight` is `(out channels × output
/// positions) × (in channels × h × w)`, zero where a kernel tap falls in the padding.
#[derive(Debug)]
struct Dense {
    map: (i64, i64),
    out: [i64; 3],
    weight: Tensor,
    bias: Tensor,
}

impl Dense {
    /// Worth it when the matrix has at most twice the kernel's elements: then every output
    /// position sees (nearly) the whole map, and the product wastes little on padding. `out` is
    /// the output map; a kernel larger than the padded map has none (libtorch refuses it).
    fn pays(kernel: (i64, i64), map: (i64, i64), out: (i64, i64)) -> bool {
        let budget = 2 * kernel.0 * kernel.1;
        out.0 >= 1 && out.1 >= 1 && map.0 * map.1 <= budget && out.0 * out.1 <= budget && {
            map.0 * map.1 * out.0 * out.1 <= budget
        }
    }

    /// Places each kernel tap where it meets the map: entry `(o, oy, ox; c, iy, ix)` is
    /// `weight[o, c, iy - oy·stride + padding, ix - ox·stride + padding]` (a copy: exact).
    fn new(conv: &ConvReLU2d, map: (i64, i64), out: (i64, i64)) -> Self {
        let [o, c, kh, kw] = conv.weight.size()[..] else {
            unreachable!("conv weights are 4-d")
        };
        let (s, p) = (conv.stride, conv.padding);
        let opts = (conv.weight.kind(), conv.weight.device());
        let weight = Tensor::zeros([o, out.0, out.1, c, map.0, map.1], opts);
        for (oy, ox, iy, ix) in positions(out, map) {
            let (ky, kx) = (iy - oy * s + p, ix - ox * s + p);
            if (0..kh).contains(&ky) && (0..kw).contains(&kx) {
                weight
                    .i((.., oy, ox, .., iy, ix))
                    .copy_(&conv.weight.i((.., .., ky, kx)));
            }
        }
        let positions = out.0 * out.1;
        let weight = weight.reshape([o * positions, c * map.0 * map.1]);
        memory::huge_pages(&weight);
        Dense {
            map,
            out: [o, out.0, out.1],
            weight,
            bias: conv
                .bias
                .view([o, 1])
                .expand([o, positions], false)
                .reshape([-1]),
        }
    }

    fn forward(&self, xs: &Tensor) -> Tensor {
        let xs = leave(xs.shallow_clone());
        let batch = xs.size()[0];
        let [o, oh, ow] = self.out;
        xs.view([batch, -1])
            .linear(&self.weight, Some(&self.bias))
            .relu_()
            .view([batch, o, oh, ow])
    }
}

/// Every `(oy, ox, iy, ix)` of an `out` map and an input `map`.
fn positions(out: (i64, i64), map: (i64, i64)) -> impl Iterator<Item = (i64, i64, i64, i64)> {
    (0..out.0).flat_map(move |oy| {
        (0..out.1).flat_map(move |ox| {
            (0..map.0).flat_map(move |iy| (0..map.1).map(move |ix| (oy, ox, iy, ix)))
        })
    })
}

impl ConvReLU2d {
    /// Folds `norm` (if any) into `conv` with its current statistics.
    pub fn new(conv: &Conv2d, norm: Option<&BatchNorm>) -> Self {
        no_grad_in_huge_pages(|| {
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
            // What each pass reads: the packed weight where there is one.
            memory::huge_pages(packed.as_ref().map_or(&weight, |(w, _)| w));
            Self {
                weight,
                bias,
                packed,
                stride: s,
                padding: p,
                dense: OnceCell::new(),
                winograd: OnceCell::new(),
            }
        })
    }

    /// The matrix form of this conv for `xs`, where it pays: prepacked (f32) weights, a batch of
    /// [`DENSE_FROM_BATCH`] or more, and a map small enough (see `Dense::pays`).
    fn dense_for(&self, xs: &Tensor) -> Option<&Dense> {
        let &[batch, _, h, w] = &xs.size()[..] else {
            return None;
        };
        let [_, _, kh, kw] = self.weight.size()[..] else {
            return None;
        };
        let (s, p) = (self.stride, self.padding);
        if self.packed.is_none() || batch < DENSE_FROM_BATCH || h + 2 * p < kh || w + 2 * p < kw {
            return None;
        }
        let out = ((h + 2 * p - kh) / s + 1, (w + 2 * p - kw) / s + 1);
        if !Dense::pays((kh, kw), (h, w), out) {
            return None;
        }
        let dense = self
            .dense
            .get_or_init(|| no_grad_in_huge_pages(|| Dense::new(self, (h, w), out)));
        (dense.map == (h, w)).then_some(dense)
    }

    /// Winograd's form of this conv for `xs`, where it pays: prepacked (f32) 3×3 weights with
    /// stride 1 and padding 1, a batch of [`WINOGRAD_FROM_BATCH`] or more, a map of even sides
    /// with at most 64 positions, and wide layers: the transforms only move data, about
    /// `16·(in + out)` floats per 2×2 block of outputs, against the `20·in·out` multiplications
    /// they save, so the harmonic mean of the input and output channels must reach 160 (128 → 128
    /// convs measured slower, 128 → 256 faster); 16×16 maps measured slower at every width.
    fn winograd_for(&self, xs: &Tensor) -> Option<&Tensor> {
        let &[batch, c, h, w] = &xs.size()[..] else {
            return None;
        };
        let [k, _, 3, 3] = self.weight.size()[..] else {
            return None;
        };
        let pays = self.packed.is_some()
            && (self.stride, self.padding) == (1, 1)
            && batch >= WINOGRAD_FROM_BATCH
            && h % 2 == 0
            && w % 2 == 0
            && h * w <= 64
            && 2 * c * k >= 160 * (c + k);
        pays.then(|| {
            self.winograd.get_or_init(|| {
                let u = no_grad_in_huge_pages(|| winograd_weight(&self.weight));
                memory::huge_pages(&u);
                u
            })
        })
    }

    /// Runs in the layout of `xs` (see [`enter`]), or, on a map of a few positions and a batch
    /// of [`DENSE_FROM_BATCH`] or more, as one matrix product over the flattened maps: it skips
    /// the kernel taps that fall in the padding (on a 2×2 map, 4 of 9 per output) and runs as one
    /// GEMM, and the matrix (at most twice the kernel's size) costs little to keep. Its output is
    /// a plain tensor. Or, where `winograd_for` says it pays, in Winograd's form, with a
    /// channels-last output. Like tch's own layers, panics where libtorch refuses the input (a
    /// batch of the wrong shape or kind).
    pub fn forward(&self, xs: &Tensor) -> Tensor {
        if let Some(dense) = self.dense_for(xs) {
            return dense.forward(xs);
        }
        if let Some(u) = self.winograd_for(xs) {
            let xs = if xs.is_mkldnn() {
                xs.to_dense(None, false)
            } else {
                xs.shallow_clone()
            };
            return ops::winograd_conv_relu(&xs, u, &self.bias)
                .unwrap_or_else(|e| panic!("Winograd conv2d + ReLU failed: {e}"));
        }
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
        no_grad_in_huge_pages(|| {
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
            let weight = weight.contiguous();
            memory::huge_pages(&weight);
            Self { weight, bias, relu }
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
