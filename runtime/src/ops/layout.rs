//! A batch copied into channels-last memory (`csrc/layout.cpp`).

use tch::{TchError, Tensor};
use torch_sys::C_tensor;

use super::common::owned;

extern "C" {
    fn vggdsl_channels_last(xs: *const C_tensor) -> *mut C_tensor;
}

/// `xs` (4-d, f32, CPU, any strides) in channels-last memory, NCHW sizes over NHWC memory, as
/// `xs.contiguous(memory_format=torch.channels_last)`: `xs` itself where it already is, else a
/// copy by a loop of vggdsl's own (aten's copy fetches far more code, which a pass at batch 1
/// finds out of the caches). A copy records no gradient.
pub fn channels_last(xs: &Tensor) -> Result<Tensor, TchError> {
    // SAFETY: a live tensor; the result is a new tensor (handle) the caller owns.
    owned(unsafe { vggdsl_channels_last(xs.as_ptr()) })
}
