//! oneDNN's operators that libtorch registers outside the aten operators tch binds: the fused
//! conv + ReLU and where an opaque tensor's bytes lie (`csrc/onednn.cpp`).

use std::ffi::c_void;
use std::sync::OnceLock;

use tch::{TchError, Tensor};
use torch_sys::C_tensor;

use super::common::{owned, succeeded};

extern "C" {
    fn vggdsl_conv2d_relu(
        xs: *const C_tensor,
        weight: *const C_tensor,
        bias: *const C_tensor,
        stride: i64,
        padding: i64,
    ) -> *mut C_tensor;
    fn vggdsl_has_conv2d_relu() -> bool;
    fn vggdsl_data_bytes(t: *const C_tensor, data: *mut *mut c_void, len: *mut usize) -> bool;
}

/// `relu(conv2d(xs, weight, bias))` as one oneDNN kernel (`mkldnn::_convolution_pointwise`, what
/// torch.compile runs for conv + ReLU): square `stride` and `padding`, no dilation or groups.
/// With `weight` prepacked by `mkldnn_reorder_conv2d_weight` the output is channels-last; with a
/// dense `weight` it keeps the memory format of `xs`.
pub fn conv2d_relu(
    xs: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    stride: i64,
    padding: i64,
) -> Result<Tensor, TchError> {
    // SAFETY: live tensors; the result is a new tensor the caller owns.
    owned(unsafe {
        vggdsl_conv2d_relu(xs.as_ptr(), weight.as_ptr(), bias.as_ptr(), stride, padding)
    })
}

/// Whether [`conv2d_relu`] runs here: libtorch was built with oneDNN and registers its operator.
pub fn has_conv2d_relu() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    // SAFETY: no arguments; the C++ side catches every C++ exception.
    *HAS.get_or_init(|| unsafe { vggdsl_has_conv2d_relu() })
}

/// Where the bytes that hold `t`'s elements lie: its whole storage for a strided tensor, oneDNN's
/// buffer for an opaque one (a prepacked weight, whose `data_ptr()` libtorch refuses); an error for
/// a tensor outside host memory.
pub fn data_bytes(t: &Tensor) -> Result<(*mut c_void, usize), TchError> {
    let (mut data, mut len) = (std::ptr::null_mut(), 0);
    // SAFETY: a live tensor, only read (its storage's address, not a copy); the two out-pointers
    // are valid locals.
    succeeded(unsafe { vggdsl_data_bytes(t.as_ptr(), &mut data, &mut len) })?;
    Ok((data, len))
}
