//! In-place initialisation, the ops that a model's init rules compile to.
//!
//! Each runs under `no_grad` (variables require grad) and draws from libtorch's global generator,
//! so with the same seed it gives PyTorch's numbers for the same ops in the same order.

use tch::Tensor;

/// `tensor.normal_(mean, std)`
pub fn normal(tensor: &mut Tensor, mean: f64, std: f64) {
    tch::no_grad(|| {
        let _ = tensor.normal_(mean, std);
    });
}

/// `tensor.uniform_(low, high)`
pub fn uniform(tensor: &mut Tensor, low: f64, high: f64) {
    tch::no_grad(|| {
        let _ = tensor.uniform_(low, high);
    });
}

/// `tensor.fill_(value)`
pub fn constant(tensor: &mut Tensor, value: f64) {
    tch::no_grad(|| {
        let _ = tensor.fill_(value);
    });
}

/// The bound of PyTorch's default `kaiming_uniform_(w, a=sqrt(5))` for weights with this fan-in,
/// computed in the same order as `torch.nn.init` so the f64 is bit-identical.
pub fn default_weight_bound(fan_in: i64) -> f64 {
    let a = 5f64.sqrt();
    let gain = (2.0 / (1.0 + a.powf(2.0))).sqrt();
    let std = gain / (fan_in as f64).sqrt();
    3f64.sqrt() * std
}

/// The bound of PyTorch's default bias init: `1 / sqrt(fan_in)`.
pub fn default_bias_bound(fan_in: i64) -> f64 {
    if fan_in > 0 {
        1.0 / (fan_in as f64).sqrt()
    } else {
        0.0
    }
}
