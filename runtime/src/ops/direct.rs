//! A conv + ReLU computed directly, for convs with few input channels (`csrc/direct.cpp`).

use tch::{TchError, Tensor};
use torch_sys::C_tensor;

use super::common::owned;

extern "C" {
    fn vggdsl_direct_conv_relu(
        xs: *const C_tensor,
        u: *const C_tensor,
        bias: *const C_tensor,
        stride: i64,
        padding: i64,
    ) -> *mut C_tensor;
    fn vggdsl_direct_panels(weight: *const C_tensor) -> *mut C_tensor;
}

/// `relu(conv2d(xs, weight, bias, stride, padding))` for a `weight` given in [`direct_panels`],
/// on an f32 batch of any strides: each output's sum over taps and input channels in registers,
/// four positions and a panel of outputs at a time, without transforms, packing or a GEMM's
/// set-up. The output is channels-last and records no gradient (inference only).
pub fn direct_conv_relu(
    xs: &Tensor,
    panels: &Tensor,
    bias: &Tensor,
    stride: i64,
    padding: i64,
) -> Result<Tensor, TchError> {
    // SAFETY: live tensors; the result is a new tensor the caller owns.
    owned(unsafe {
        vggdsl_direct_conv_relu(xs.as_ptr(), panels.as_ptr(), bias.as_ptr(), stride, padding)
    })
}

/// A conv weight `[out, in, kh, kw]` in the panels [`direct_conv_relu`] reads:
/// `[panels, kh, kw, in, width]`, the outputs in groups of `width` (two vector registers of the
/// kernels' build that runs, [`super::kernel_isa`]) with zeros past the last.
pub fn direct_panels(weight: &Tensor) -> Result<Tensor, TchError> {
    // SAFETY: a live tensor; the result is a new tensor the caller owns.
    owned(unsafe { vggdsl_direct_panels(weight.as_ptr()) })
}
