//! libtorch operators that tch's bindings lack, through a few lines of C++ (`ops.cpp`, built by
//! `build.rs` against the headers of the libtorch that torch-sys links).

use std::ffi::{c_void, CStr};
use std::os::raw::c_char;
use std::sync::OnceLock;

use tch::{TchError, Tensor};
use torch_sys::C_tensor;

extern "C" {
    fn vggdsl_add(this: *const C_tensor, other: *const C_tensor, alpha: f64) -> *mut C_tensor;
    fn vggdsl_add_(this: *mut C_tensor, other: *const C_tensor, alpha: f64) -> bool;
    fn vggdsl_grad_to_none(this: *mut C_tensor);
    fn vggdsl_conv2d_relu(
        xs: *const C_tensor,
        weight: *const C_tensor,
        bias: *const C_tensor,
        stride: i64,
        padding: i64,
    ) -> *mut C_tensor;
    fn vggdsl_has_conv2d_relu() -> bool;
    fn vggdsl_max_pool2x2(xs: *const C_tensor) -> *mut C_tensor;
    fn vggdsl_max_pool2x2_takes(xs: *const C_tensor) -> bool;
    fn vggdsl_winograd_conv_relu(
        xs: *const C_tensor,
        u: *const C_tensor,
        bias: *const C_tensor,
    ) -> *mut C_tensor;
    fn vggdsl_data_bytes(t: *const C_tensor, data: *mut *mut c_void, len: *mut usize) -> bool;
    fn vggdsl_whole_huge_pages_begin(huge_page: usize) -> bool;
    fn vggdsl_whole_huge_pages_end();
    fn vggdsl_last_error() -> *const c_char;
}

fn last_error() -> TchError {
    // SAFETY: the shim's buffer always holds a NUL-terminated string.
    let message = unsafe { CStr::from_ptr(vggdsl_last_error()) };
    TchError::Torch(message.to_string_lossy().into_owned())
}

/// A tensor the shim allocated, or its error.
fn owned(result: *mut C_tensor) -> Result<Tensor, TchError> {
    if result.is_null() {
        Err(last_error())
    } else {
        // SAFETY: a tensor allocated by the shim with `new`, as tch's own are.
        Ok(unsafe { Tensor::from_ptr(result) })
    }
}

/// `a.add(b, alpha=alpha)`: one fused kernel, unlike `a + b * alpha`, which rounds twice.
pub fn add(a: &Tensor, b: &Tensor, alpha: f64) -> Result<Tensor, TchError> {
    // SAFETY: both pointers are live tensors; the result is a new tensor the caller owns.
    owned(unsafe { vggdsl_add(a.as_ptr(), b.as_ptr(), alpha) })
}

/// `a.add_(b, alpha=alpha)`.
pub fn add_(a: &mut Tensor, b: &Tensor, alpha: f64) -> Result<(), TchError> {
    // SAFETY: both pointers are live tensors.
    if unsafe { vggdsl_add_(a.as_mut_ptr(), b.as_ptr(), alpha) } {
        Ok(())
    } else {
        Err(last_error())
    }
}

/// `p.grad = None`, as PyTorch's `zero_grad()` leaves it.
pub fn grad_to_none(p: &mut Tensor) {
    // SAFETY: a live tensor; only its gradient field is reset.
    unsafe { vggdsl_grad_to_none(p.as_mut_ptr()) }
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

/// `relu(conv2d(xs, weight, bias, padding=1))` for a 3×3 `weight` given in Winograd's form `u`
/// (F(2×2, 3×3): `G·weight·Gᵀ` per channel pair, shape `[16, in, out]`, see
/// [`crate::inference::winograd_weight`]), on an f32 batch of any strides whose maps have even
/// sides. 16 matrix products over the channels instead of the conv's 36 multiplications per
/// 2×2 block of outputs; the output is channels-last and records no gradient (inference only).
pub fn winograd_conv_relu(xs: &Tensor, u: &Tensor, bias: &Tensor) -> Result<Tensor, TchError> {
    // SAFETY: live tensors; the result is a new tensor the caller owns.
    owned(unsafe { vggdsl_winograd_conv_relu(xs.as_ptr(), u.as_ptr(), bias.as_ptr()) })
}

/// Whether [`conv2d_relu`] runs here: libtorch was built with oneDNN and registers its operator.
pub fn has_conv2d_relu() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    // SAFETY: no arguments; the shim catches every C++ exception.
    *HAS.get_or_init(|| unsafe { vggdsl_has_conv2d_relu() })
}

/// `max_pool2d(xs, kernel_size=2, stride=2)`: the same values as aten's and, through the same
/// indices of the maxima, the same gradient, from a kernel 5–6× faster on contiguous f32/f64 NCHW
/// maps 16 or more wide (up to 8 threads; see [`max_pool2x2_takes`]), from aten's operator
/// otherwise.
pub fn max_pool2x2(xs: &Tensor) -> Result<Tensor, TchError> {
    // SAFETY: a live tensor; the result is a new tensor the caller owns.
    owned(unsafe { vggdsl_max_pool2x2(xs.as_ptr()) })
}

/// Whether [`max_pool2x2`] runs its own kernel on `xs` (`ops.cpp` says when and why).
pub fn max_pool2x2_takes(xs: &Tensor) -> bool {
    // SAFETY: a live tensor, only read.
    unsafe { vggdsl_max_pool2x2_takes(xs.as_ptr()) }
}

/// Where the bytes that hold `t`'s elements lie: its whole storage for a strided tensor, oneDNN's
/// buffer for an opaque one (a prepacked weight, whose `data_ptr()` libtorch refuses); an error for
/// a tensor outside host memory.
pub fn data_bytes(t: &Tensor) -> Result<(*mut c_void, usize), TchError> {
    let (mut data, mut len) = (std::ptr::null_mut(), 0);
    // SAFETY: a live tensor, only read (its storage's address, not a copy); the two out-pointers
    // are valid locals.
    if unsafe { vggdsl_data_bytes(t.as_ptr(), &mut data, &mut len) } {
        Ok((data, len))
    } else {
        Err(last_error())
    }
}

/// Puts an allocator in place of libtorch's CPU allocator that starts blocks of `huge_page`
/// bytes or more on a `huge_page` boundary and rounds them up to whole ones (smaller blocks as
/// before), until as many [`whole_huge_pages_end`] calls; false, and nothing changed, where an
/// allocator of higher priority is in place. `memory::in_whole_huge_pages` is the safe wrapper.
pub(crate) fn whole_huge_pages_begin(huge_page: usize) -> bool {
    // SAFETY: takes a lock and swaps a pointer; blocks from either allocator are freed by `free`.
    unsafe { vggdsl_whole_huge_pages_begin(huge_page) }
}

/// Ends one [`whole_huge_pages_begin`] that returned true.
pub(crate) fn whole_huge_pages_end() {
    // SAFETY: as above.
    unsafe { vggdsl_whole_huge_pages_end() }
}
