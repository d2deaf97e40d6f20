//! A linear layer (+ ReLU) for a few rows (`csrc/linear.cpp`).

use tch::{TchError, Tensor};
use torch_sys::C_tensor;

use super::common::owned;

extern "C" {
    fn vggdsl_linear_relu(
        xs: *const C_tensor,
        weight: *const C_tensor,
        bias: *const C_tensor,
        relu: bool,
    ) -> *mut C_tensor;
}

/// `xs.linear(weight, bias)`, rectified if `relu`, for a 2-d f32 CPU batch and a contiguous
/// `weight` `[out, in]`: each output a dot product along a row of the weight as stored, the
/// weight read once, in order. For a few rows, where aten's GEMM brings more code and packing
/// than the product takes. Records no gradient (inference only).
pub fn linear_relu(
    xs: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    relu: bool,
) -> Result<Tensor, TchError> {
    // SAFETY: live tensors; the result is a new tensor the caller owns.
    owned(unsafe { vggdsl_linear_relu(xs.as_ptr(), weight.as_ptr(), bias.as_ptr(), relu) })
}
