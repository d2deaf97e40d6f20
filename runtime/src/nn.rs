//! Layers with PyTorch's field names and default initialisation.
//!
//! Constructors create variables in PyTorch's order (weight, then bias, then buffers) and draw
//! PyTorch's default values, so a model built after `tch::manual_seed(s)` holds the same tensors
//! as the PyTorch model built after `torch.manual_seed(s)`.

use crate::init::{default_bias_bound, default_weight_bound};
use tch::nn::{Init, Module, ModuleT, Path};
use tch::{Kind, Tensor};

/// `nn.Conv2d` with a bias, square kernel, stride and padding.
#[derive(Debug)]
pub struct Conv2d {
    pub weight: Tensor,
    pub bias: Tensor,
    pub stride: i64,
    pub padding: i64,
}

impl Conv2d {
    pub fn new(
        p: Path,
        in_channels: i64,
        out_channels: i64,
        kernel: i64,
        stride: i64,
        padding: i64,
    ) -> Self {
        let fan_in = in_channels * kernel * kernel;
        let (w, b) = (default_weight_bound(fan_in), default_bias_bound(fan_in));
        let weight = p.var(
            "weight",
            &[out_channels, in_channels, kernel, kernel],
            Init::Uniform { lo: -w, up: w },
        );
        let bias = p.var("bias", &[out_channels], Init::Uniform { lo: -b, up: b });
        Self {
            weight,
            bias,
            stride,
            padding,
        }
    }

    pub fn forward(&self, xs: &Tensor) -> Tensor {
        let (s, p) = (self.stride, self.padding);
        xs.conv2d(&self.weight, Some(&self.bias), [s, s], [p, p], [1, 1], 1)
    }
}

impl Module for Conv2d {
    fn forward(&self, xs: &Tensor) -> Tensor {
        Conv2d::forward(self, xs)
    }
}

/// `nn.Linear` with a bias.
#[derive(Debug)]
pub struct Linear {
    pub weight: Tensor,
    pub bias: Tensor,
}

impl Linear {
    pub fn new(p: Path, in_features: i64, out_features: i64) -> Self {
        let (w, b) = (
            default_weight_bound(in_features),
            default_bias_bound(in_features),
        );
        let weight = p.var(
            "weight",
            &[out_features, in_features],
            Init::Uniform { lo: -w, up: w },
        );
        let bias = p.var("bias", &[out_features], Init::Uniform { lo: -b, up: b });
        Self { weight, bias }
    }

    pub fn forward(&self, xs: &Tensor) -> Tensor {
        xs.linear(&self.weight, Some(&self.bias))
    }
}

impl Module for Linear {
    fn forward(&self, xs: &Tensor) -> Tensor {
        Linear::forward(self, xs)
    }
}

/// `nn.BatchNorm1d` / `nn.BatchNorm2d` (eps 1e-5, momentum 0.1, affine, tracking running stats),
/// with PyTorch's `num_batches_tracked` buffer, which tch's own BatchNorm lacks.
#[derive(Debug)]
pub struct BatchNorm {
    pub weight: Tensor,
    pub bias: Tensor,
    pub running_mean: Tensor,
    pub running_var: Tensor,
    /// int64 scalar, counted up by each train-mode forward as PyTorch does.
    pub num_batches_tracked: Tensor,
    pub eps: f64,
    pub momentum: f64,
}

impl BatchNorm {
    pub fn new(p: Path, features: i64) -> Self {
        let weight = p.var("weight", &[features], Init::Const(1.0));
        let bias = p.var("bias", &[features], Init::Const(0.0));
        let running_mean = p.zeros_no_train("running_mean", &[features]);
        let running_var = p.ones_no_train("running_var", &[features]);
        let counter = Tensor::zeros([], (Kind::Int64, p.device()));
        let num_batches_tracked = p.add("num_batches_tracked", counter, false);
        Self {
            weight,
            bias,
            running_mean,
            running_var,
            num_batches_tracked,
            eps: vggdsl::ir::BATCH_NORM_EPS,
            momentum: 0.1,
        }
    }

    /// In train mode through `ops::batch_norm_train` (aten's numbers, faster statistics); like
    /// tch's own layers, panics where libtorch refuses the input.
    pub fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        if !train {
            return Tensor::batch_norm(
                xs,
                Some(&self.weight),
                Some(&self.bias),
                Some(&self.running_mean),
                Some(&self.running_var),
                false,
                self.momentum,
                self.eps,
                false,
            );
        }
        tch::no_grad(|| {
            let _ = self.num_batches_tracked.shallow_clone().g_add_scalar_(1);
        });
        crate::ops::batch_norm_train(
            xs,
            &self.weight,
            &self.bias,
            &mut self.running_mean.shallow_clone(),
            &mut self.running_var.shallow_clone(),
            self.momentum,
            self.eps,
        )
        .unwrap_or_else(|e| panic!("batch_norm failed: {e}"))
    }
}

impl ModuleT for BatchNorm {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        BatchNorm::forward_t(self, xs, train)
    }
}

/// `nn.ReLU(inplace=True)`: takes the activation by value and rectifies it in place.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReLU;

impl ReLU {
    pub fn forward(&self, mut xs: Tensor) -> Tensor {
        xs.relu_()
    }
}

/// `nn.MaxPool2d(kernel_size, stride)` without padding or dilation.
#[derive(Debug, Clone, Copy)]
pub struct MaxPool2d {
    pub kernel: i64,
    pub stride: i64,
}

impl MaxPool2d {
    pub fn new(kernel: i64, stride: i64) -> Self {
        Self { kernel, stride }
    }

    /// 2×2 with stride 2 (VGG's `M`) runs vggdsl's kernel (`ops::max_pool2x2`: aten's numbers,
    /// faster). Like tch's own layers, panics where libtorch refuses the input.
    pub fn forward(&self, xs: &Tensor) -> Tensor {
        match (self.kernel, self.stride) {
            (2, 2) => crate::ops::max_pool2x2(xs)
                .unwrap_or_else(|e| panic!("max_pool2d(2, 2) failed: {e}")),
            (k, s) => xs.max_pool2d([k, k], [s, s], [0, 0], [1, 1], false),
        }
    }

    /// `forward(relu_(xs))`, a ReLU and this pool: for 2×2 with stride 2 one pass of
    /// `ops::relu_max_pool2x2`, which leaves `xs` as it is where its kernel takes it.
    pub fn forward_rectified(&self, mut xs: Tensor) -> Tensor {
        match (self.kernel, self.stride) {
            (2, 2) => crate::ops::relu_max_pool2x2(&mut xs)
                .unwrap_or_else(|e| panic!("max_pool2d(relu(x), 2, 2) failed: {e}")),
            _ => self.forward(&xs.relu_()),
        }
    }
}

/// `nn.AvgPool2d(kernel_size, stride)` without padding: the seed's head between the Sequentials.
#[derive(Debug, Clone, Copy)]
pub struct AvgPool2d {
    pub kernel: i64,
    pub stride: i64,
}

impl AvgPool2d {
    pub fn new(kernel: i64, stride: i64) -> Self {
        Self { kernel, stride }
    }

    pub fn forward(&self, xs: &Tensor) -> Tensor {
        let (k, s) = (self.kernel, self.stride);
        xs.avg_pool2d([k, k], [s, s], [0, 0], false, true, None::<i64>)
    }
}

impl Module for MaxPool2d {
    fn forward(&self, xs: &Tensor) -> Tensor {
        MaxPool2d::forward(self, xs)
    }
}
