//! Layers of the inference models that generated `to_inference()` returns: each BatchNorm folded
//! into the conv or linear before it, the ReLU after it fused, and the weights a pass reads in
//! huge pages ([`crate::memory`]). A compiler that sees the whole network can do this; eager
//! PyTorch does not.
//!
//! Activations travel channels-last from [`enter`] to [`leave`], and every conv kernel reads and
//! writes that layout, so a layer's choice of kernel costs the next layer nothing. Each conv
//! picks its [`Kernel`] per batch-size class (1, 2–3, 4–7, …, by powers of two) and thread
//! count: by default the first batch of a class times the kernels that apply (oneDNN's fused
//! conv + ReLU on a weight packed for that batch's shape, Winograd's F(2×2, 3×3) form with its
//! products by MKL's GEMM or, for few tiles, in registers, the matrix form of a conv on a map of
//! a few positions, the direct conv for few input channels), each with its weights out of the
//! caches as in a pass, and keeps the fastest, remembered per machine in a small file ([`KernelCache`]); [`tuning_log`] reports
//! what that cost and chose. `VGGDSL_KERNELS` (or [`set_kernel_choice`]) fixes the choice
//! instead: `guess` (a rule of thumb from the shape, untimed), or one kernel wherever it applies
//! (`onednn`, `winograd`, `winograd-few`, `matrix`, `direct`, `aten`). Weights oneDNN can't run
//! (f64, f16 or bf16, a GPU, a libtorch without oneDNN) run folded through aten's conv.

mod cache;
mod dense;
mod kernel;
mod packing;
mod tuner;

use std::cell::RefCell;
use std::collections::HashMap;

pub use cache::KernelCache;
pub use kernel::{kernel_choice, set_kernel_choice, Kernel, KernelChoice, KERNELS_VAR};
pub use tuner::{tuning_log, use_kernel_cache, TuningRecord};

use crate::memory;
use crate::nn::{BatchNorm, Conv2d, Linear};
use crate::ops::{self, WinogradProducts};
use dense::Dense;
use packing::Packings;
use tch::{Device, Kind, Tensor};

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

/// Larger batches are timed on their first this many images, which bounds what tuning costs;
/// per image, the kernels' times change little beyond it.
const TIMED_BATCH: i64 = 64;

/// The guess ([`KernelChoice::Guess`]) runs Winograd's form from this batch size on, for a wide
/// 3×3 conv on a small map (see [`ConvReLU2d::guess`]). Not at batch 1: a batch of one streams
/// the weights, and their Winograd form is 16/9 the size.
pub const WINOGRAD_FROM_BATCH: i64 = 2;

/// [`Kernel::WinogradFew`] applies to batches of at most this many 2×2 blocks of outputs (one
/// image on 32×32 maps): there it saves MKL's packing of the weights and the fetching of MKL's
/// code, and beyond, MKL's GEMM, which blocks its operands for the caches, measured as fast or
/// faster, so timing it there would only add to what tuning costs.
pub const FEW_TILES: i64 = 256;

/// [`Kernel::Direct`] applies to convs of at most this many taps × input channels (a 3×3 conv
/// of 32 channels in): a panel of its weights (that many rows of two vector registers: 36 KiB
/// with AVX-512, 18 KiB with AVX2) stays in the core's caches while every position is computed,
/// and wider convs, whose outputs take more multiplications, do better with oneDNN's or
/// Winograd's blocking.
pub const DIRECT_TAPS: i64 = 288;

/// The guess runs the matrix form from this batch size on, for a conv whose map has few
/// positions.
pub const DENSE_FROM_BATCH: i64 = 8;

/// Whether tensors like `t` can run on oneDNN: f32 on the CPU, with a libtorch built with oneDNN
/// (f64 has no oneDNN format; f16 and bf16 need CPU extensions to prepack). The one place where
/// the inference layers branch on the device: every kernel but aten's needs this, so on a GPU
/// each conv runs folded through aten's conv (cuDNN) in plain NCHW, and no packing, Winograd or
/// matrix form is built or timed.
fn onednn_runs(t: &Tensor) -> bool {
    t.kind() == Kind::Float && t.device() == Device::Cpu && tch::utils::has_mkldnn()
}

/// Puts a batch in the layout the inference layers run it in: channels-last (NCHW sizes over
/// NHWC memory, PyTorch's `channels_last`) where oneDNN runs. A single image by vggdsl's own
/// copy ([`ops::channels_last`]: a pass at batch 1 finds aten's copy out of the caches, and
/// fetching its code took longer than the copy), a larger batch by aten's, faster there.
pub fn enter(xs: &Tensor) -> Tensor {
    if !onednn_runs(xs) || xs.dim() != 4 {
        xs.shallow_clone()
    } else if xs.size()[0] == 1 {
        ops::channels_last(xs).unwrap_or_else(|e| panic!("channels-last copy failed: {e}"))
    } else {
        xs.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
    }
}

/// Back to a plain, contiguous NCHW tensor (what flattening needs).
pub fn leave(xs: Tensor) -> Tensor {
    xs.contiguous()
}

/// The size class of a batch: the largest power of two up to its size (0 for no image).
pub fn batch_class(batch: i64) -> i64 {
    if batch <= 0 {
        0
    } else {
        1 << (63 - batch.leading_zeros())
    }
}

/// What a conv's choice of kernel depends on besides the layer: the map, the batch's size
/// class and libtorch's thread count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Situation {
    map: (i64, i64),
    class: i64,
    threads: i32,
}

/// Conv2d (+ folded BatchNorm2d) + ReLU, running the kernel chosen for each batch (see the
/// module's documentation).
#[derive(Debug)]
pub struct ConvReLU2d {
    /// The folded weight, `[out, in, kh, kw]`.
    pub weight: Tensor,
    /// The folded bias.
    pub bias: Tensor,
    pub stride: i64,
    pub padding: i64,
    /// Whether oneDNN runs the weights' kind and device (else every batch runs [`Kernel::Aten`]).
    onednn: bool,
    /// `weight` packed for oneDNN for each input shape met.
    packings: Packings,
    /// `weight` in Winograd's form ([`winograd_weight`]), while a choice runs it.
    winograd: RefCell<Option<Tensor>>,
    /// That form in panels ([`ops::winograd_panels`]), while a choice runs its products in
    /// registers.
    panels: RefCell<Option<Tensor>>,
    /// `weight` in the direct conv's panels ([`ops::direct_panels`]), while a choice runs it.
    direct: RefCell<Option<Tensor>>,
    /// The conv as a matrix for one map size, while a choice runs it.
    dense: RefCell<Option<Dense>>,
    /// The kernel chosen for each situation met, under [`KernelChoice::Tune`].
    choices: RefCell<HashMap<Situation, Kernel>>,
}

impl ConvReLU2d {
    /// Folds `norm` (if any) into `conv` with its current statistics. Nothing else is built
    /// before a batch shows the map size: packings, Winograd's and the matrix form are made for
    /// the batches that need them.
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
            let (weight, bias) = (weight.contiguous(), bias.contiguous());
            let onednn = onednn_runs(&weight);
            if !onednn {
                memory::huge_pages(&weight);
            }
            Self {
                weight,
                bias,
                stride: conv.stride,
                padding: conv.padding,
                onednn,
                packings: Packings::default(),
                winograd: RefCell::new(None),
                panels: RefCell::new(None),
                direct: RefCell::new(None),
                dense: RefCell::new(None),
                choices: RefCell::new(HashMap::new()),
            }
        })
    }

    /// `relu(conv2d(xs))` by the kernel chosen for `xs` ([`ConvReLU2d::kernel_for`]), in the
    /// layout of [`enter`]. Like tch's own layers, panics where libtorch refuses the input (a
    /// batch of the wrong shape or kind).
    pub fn forward(&self, xs: &Tensor) -> Tensor {
        self.run(self.kernel_for(xs), xs)
    }

    /// `relu(conv2d(xs))` by `kernel`, or `None` where it doesn't apply to `xs`.
    pub fn forward_with(&self, kernel: Kernel, xs: &Tensor) -> Option<Tensor> {
        self.applies(kernel, xs).then(|| self.run(kernel, xs))
    }

    /// The kernel that runs `xs`, chosen as [`kernel_choice`] says: timed on this batch if its
    /// size class is new to this layer (and to the machine's cache).
    pub fn kernel_for(&self, xs: &Tensor) -> Kernel {
        if !self.onednn || xs.dim() != 4 {
            return Kernel::Aten;
        }
        match kernel_choice() {
            KernelChoice::Fixed(k) if self.applies(k, xs) => k,
            KernelChoice::Fixed(_) => Kernel::OneDnn,
            KernelChoice::Guess => self.guess(xs),
            KernelChoice::Tune => self.tuned(xs),
        }
    }

    /// The rule of thumb the tuner replaces: the matrix form from [`DENSE_FROM_BATCH`] images
    /// on where it applies; Winograd's form from [`WINOGRAD_FROM_BATCH`] on for maps of at most
    /// 64 positions and wide layers (the transforms move about `16·(in + out)` floats per 2×2
    /// block of outputs against the `20·in·out` multiplications they save, so the harmonic mean
    /// of the channels must reach 160); oneDNN's kernel otherwise. Measured on one AVX-512 CPU.
    pub fn guess(&self, xs: &Tensor) -> Kernel {
        let &[batch, c, h, w] = &xs.size()[..] else {
            return Kernel::Aten;
        };
        let k = self.weight.size()[0];
        if batch >= DENSE_FROM_BATCH && self.applies(Kernel::Matrix, xs) {
            Kernel::Matrix
        } else if batch >= WINOGRAD_FROM_BATCH
            && self.applies(Kernel::Winograd, xs)
            && h * w <= 64
            && 2 * c * k >= 160 * (c + k)
        {
            Kernel::Winograd
        } else if self.onednn {
            Kernel::OneDnn
        } else {
            Kernel::Aten
        }
    }

    /// Whether `kernel` can compute this conv on batches like `xs`.
    pub fn applies(&self, kernel: Kernel, xs: &Tensor) -> bool {
        let &[n, _, h, w] = &xs.size()[..] else {
            return kernel == Kernel::Aten;
        };
        let [_, c, kh, kw] = self.weight.size()[..] else {
            return false;
        };
        let (s, p) = (self.stride, self.padding);
        match kernel {
            Kernel::Aten => true,
            Kernel::Direct => {
                self.onednn && kh * kw * c <= DIRECT_TAPS && h + 2 * p >= kh && w + 2 * p >= kw
            }
            Kernel::OneDnn => self.onednn,
            Kernel::Winograd => {
                self.onednn
                    && (kh, kw, s, p) == (3, 3, 1, 1)
                    && h > 0
                    && w > 0
                    && h % 2 == 0
                    && w % 2 == 0
            }
            Kernel::WinogradFew => {
                self.applies(Kernel::Winograd, xs) && n * (h / 2) * (w / 2) <= FEW_TILES
            }
            Kernel::Matrix => {
                let fits = h + 2 * p >= kh && w + 2 * p >= kw && {
                    let out = ((h + 2 * p - kh) / s + 1, (w + 2 * p - kw) / s + 1);
                    Dense::fits((kh, kw), (h, w), out)
                };
                let map_free = self.dense.borrow().as_ref().is_none_or(|d| d.map == (h, w));
                self.onednn && fits && map_free
            }
        }
    }

    /// The oneDNN weight that batches like `xs` run on: packed for their exact shape, and
    /// shared with other shapes whose packing has the same bytes. `None` where oneDNN can't run
    /// the weights.
    pub fn packed_weight(&self, xs: &Tensor) -> Option<Tensor> {
        let shape: [i64; 4] = xs.size().try_into().ok()?;
        self.onednn.then(|| {
            self.packings
                .get(&self.weight, (self.stride, self.padding), shape)
        })
    }

    /// How many distinct oneDNN packings of the weight this layer keeps.
    pub fn packings_kept(&self) -> usize {
        self.packings.distinct()
    }

    fn run(&self, kernel: Kernel, xs: &Tensor) -> Tensor {
        let (s, p) = (self.stride, self.padding);
        match kernel {
            Kernel::OneDnn => {
                let weight = self.packed_weight(xs).expect("oneDNN runs these weights");
                ops::conv2d_relu(xs, &weight, &self.bias, s, p)
                    .unwrap_or_else(|e| panic!("oneDNN conv2d + ReLU failed: {e}"))
            }
            Kernel::Winograd => self.winograd(xs, WinogradProducts::Gemm),
            Kernel::WinogradFew => self.winograd(xs, WinogradProducts::InRegisters),
            Kernel::Direct => {
                let panels = Self::kept(&self.direct, || {
                    ops::direct_panels(&self.weight)
                        .unwrap_or_else(|e| panic!("direct conv panels failed: {e}"))
                });
                ops::direct_conv_relu(xs, &panels, &self.bias, s, p)
                    .unwrap_or_else(|e| panic!("direct conv2d + ReLU failed: {e}"))
            }
            Kernel::Matrix => {
                let map = (xs.size()[2], xs.size()[3]);
                let mut dense = self.dense.borrow_mut();
                let dense = dense.get_or_insert_with(|| {
                    no_grad_in_huge_pages(|| Dense::new(&self.weight, &self.bias, (s, p), map))
                });
                dense.forward(xs)
            }
            Kernel::Aten => xs
                .conv2d(&self.weight, Some(&self.bias), [s, s], [p, p], [1, 1], 1)
                .relu_(),
        }
    }

    fn winograd(&self, xs: &Tensor, products: WinogradProducts) -> Tensor {
        let form = match products {
            WinogradProducts::Gemm => Self::kept(&self.winograd, || winograd_weight(&self.weight)),
            WinogradProducts::InRegisters => Self::kept(&self.panels, || {
                ops::winograd_panels(&winograd_weight(&self.weight))
                    .unwrap_or_else(|e| panic!("Winograd panels failed: {e}"))
            }),
        };
        ops::winograd_conv_relu(xs, &form, &self.bias, products)
            .unwrap_or_else(|e| panic!("Winograd conv2d + ReLU failed: {e}"))
    }

    /// The form `slot` keeps, built by `make` (in huge pages) if it holds none.
    fn kept(slot: &RefCell<Option<Tensor>>, make: impl FnOnce() -> Tensor) -> Tensor {
        slot.borrow_mut()
            .get_or_insert_with(|| {
                let form = no_grad_in_huge_pages(make);
                memory::huge_pages(&form);
                form
            })
            .shallow_clone()
    }

    /// The kernel tuned for the situation of `xs`, timed now if it is new.
    fn tuned(&self, xs: &Tensor) -> Kernel {
        let size = xs.size();
        let situation = Situation {
            map: (size[2], size[3]),
            class: batch_class(size[0]),
            threads: tch::get_num_threads(),
        };
        if let Some(&k) = self.choices.borrow().get(&situation) {
            return k;
        }
        let candidates: Vec<Kernel> = Kernel::TUNED
            .into_iter()
            .filter(|&k| self.applies(k, xs))
            .collect();
        let timed = xs.narrow(0, 0, size[0].min(TIMED_BATCH));
        let chosen = match candidates[..] {
            [only] => only,
            _ => tuner::choose(
                &self.key(situation, &candidates),
                timed.size()[0],
                &candidates,
                &|| drop(timed.sum(timed.kind())),
                &|k| tch::no_grad(|| self.run(k, &timed)),
            ),
        };
        let mut choices = self.choices.borrow_mut();
        choices.insert(situation, chosen);
        // Forms no choice runs are not kept.
        for (kernel, form) in [
            (Kernel::Winograd, &self.winograd),
            (Kernel::WinogradFew, &self.panels),
            (Kernel::Direct, &self.direct),
        ] {
            if !choices.values().any(|&k| k == kernel) {
                form.borrow_mut().take();
            }
        }
        if !choices.values().any(|&k| k == Kernel::Matrix) {
            self.dense.borrow_mut().take();
        }
        chosen
    }

    /// The cache's key of this layer in `situation`, choosing among `candidates`: a choice
    /// kept from another set of candidates (an older vggdsl's) is made again.
    fn key(&self, situation: Situation, candidates: &[Kernel]) -> String {
        let [o, c, kh, kw] = self.weight.size()[..] else {
            unreachable!("conv weights are 4-d")
        };
        let names: Vec<&str> = candidates.iter().map(|k| k.name()).collect();
        format!(
            "{} threads, conv {o}x{c}x{kh}x{kw} stride {} padding {} on {}x{}, batch class {}, \
             weights cold, of {}",
            situation.threads,
            self.stride,
            self.padding,
            situation.map.0,
            situation.map.1,
            situation.class,
            names.join(" ")
        )
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

    /// A single row by vggdsl's own product ([`ops::linear_relu`]: the weight read once, in
    /// order, without the GEMM's code, which a pass at batch 1 finds out of the caches), more
    /// rows by aten's `linear`.
    pub fn forward(&self, xs: &Tensor) -> Tensor {
        if xs.dim() == 2
            && xs.size()[0] == 1
            && onednn_runs(xs)
            && onednn_runs(&self.weight)
            && self.weight.is_contiguous()
            && self.bias.dim() == 1
        {
            return ops::linear_relu(xs, &self.weight, &self.bias, self.relu)
                .unwrap_or_else(|e| panic!("linear failed: {e}"));
        }
        let mut ys = xs.linear(&self.weight, Some(&self.bias));
        if self.relu {
            ys.relu_()
        } else {
            ys
        }
    }
}
