//! 2×2 max pooling with stride 2, alone or after a ReLU, with aten's values and gradients
//! (`csrc/max_pool.cpp`).

use tch::{TchError, Tensor};
use torch_sys::C_tensor;

use super::common::owned;

extern "C" {
    fn vggdsl_max_pool2x2(xs: *const C_tensor) -> *mut C_tensor;
    fn vggdsl_relu_max_pool2x2(xs: *mut C_tensor) -> *mut C_tensor;
    fn vggdsl_max_pool2x2_takes(xs: *const C_tensor) -> bool;
}

/// `max_pool2d(xs, kernel_size=2, stride=2)`: the same values as aten's and, through the same
/// maxima, the same gradient, from a kernel many times faster on contiguous f32/f64 NCHW maps 8
/// or more wide, or 2 wide (see [`max_pool2x2_takes`]), from aten's operator otherwise.
pub fn max_pool2x2(xs: &Tensor) -> Result<Tensor, TchError> {
    // SAFETY: a live tensor; the result is a new tensor the caller owns.
    owned(unsafe { vggdsl_max_pool2x2(xs.as_ptr()) })
}

/// `max_pool2d(xs.relu_(), kernel_size=2, stride=2)`, a ReLU and the pool after it: the same
/// values and gradient. Where [`max_pool2x2_takes`] `xs`, one pass of the pooling kernel reads
/// relu(xs), and `xs` keeps its values: the full-size rectified map is never written, nor its
/// gradient computed.
pub fn relu_max_pool2x2(xs: &mut Tensor) -> Result<Tensor, TchError> {
    // SAFETY: a live tensor, rectified in place on aten's path; the result is a new tensor the
    // caller owns.
    owned(unsafe { vggdsl_relu_max_pool2x2(xs.as_mut_ptr()) })
}

/// Whether [`max_pool2x2`] runs its own kernel on `xs` (`csrc/max_pool.cpp` says when and why).
pub fn max_pool2x2_takes(xs: &Tensor) -> bool {
    // SAFETY: a live tensor, only read.
    unsafe { vggdsl_max_pool2x2_takes(xs.as_ptr()) }
}
