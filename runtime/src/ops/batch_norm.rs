//! BatchNorm in train mode with aten's numbers and faster statistics (`csrc/batch_norm.cpp`).

use tch::{TchError, Tensor};
use torch_sys::C_tensor;

use super::common::owned;

extern "C" {
    fn vggdsl_batch_norm_train(
        xs: *const C_tensor,
        weight: *const C_tensor,
        bias: *const C_tensor,
        running_mean: *mut C_tensor,
        running_var: *mut C_tensor,
        momentum: f64,
        eps: f64,
    ) -> *mut C_tensor;
}

/// `batch_norm(xs, weight, bias, running_mean, running_var, training=true, momentum, eps)`, the
/// running statistics updated in place: aten's outputs, statistics and gradients bit for bit.
/// On contiguous f32 NCHW maps the per-channel statistics come from vggdsl's kernel, which runs
/// aten's chains of double additions for several channels at once; aten's operator takes
/// everything else.
pub fn batch_norm_train(
    xs: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    running_mean: &mut Tensor,
    running_var: &mut Tensor,
    momentum: f64,
    eps: f64,
) -> Result<Tensor, TchError> {
    // SAFETY: live tensors; the running statistics are updated in place; the result is a new
    // tensor the caller owns.
    owned(unsafe {
        vggdsl_batch_norm_train(
            xs.as_ptr(),
            weight.as_ptr(),
            bias.as_ptr(),
            running_mean.as_mut_ptr(),
            running_var.as_mut_ptr(),
            momentum,
            eps,
        )
    })
}
