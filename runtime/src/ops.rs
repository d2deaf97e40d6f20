//! libtorch operators that tch's bindings lack, through a few lines of C++ (`ops.cpp`, built by
//! `build.rs` against the headers of the libtorch that torch-sys links).

use std::ffi::{c_void, CStr};
use std::os::raw::c_char;
use std::sync::OnceLock;

use tch::{TchError, Tensor};
use torch_sys::C_tensor;

extern "C" {
    fn vggdsl_sgd_step(
        param: *mut C_tensor,
        buf: *mut C_tensor,
        new_buf: *mut *mut C_tensor,
        lr: f64,
        momentum: f64,
        weight_decay: f64,
        nesterov: bool,
    ) -> bool;
    fn vggdsl_grad_to_none(this: *mut C_tensor);
    fn vggdsl_conv2d_relu(
        xs: *const C_tensor,
        weight: *const C_tensor,
        bias: *const C_tensor,
        stride: i64,
        padding: i64,
    ) -> *mut C_tensor;
    fn vggdsl_has_conv2d_relu() -> bool;
    fn vggdsl_batch_norm_train(
        xs: *const C_tensor,
        weight: *const C_tensor,
        bias: *const C_tensor,
        running_mean: *mut C_tensor,
        running_var: *mut C_tensor,
        momentum: f64,
        eps: f64,
    ) -> *mut C_tensor;
    fn vggdsl_max_pool2x2(xs: *const C_tensor) -> *mut C_tensor;
    fn vggdsl_relu_max_pool2x2(xs: *mut C_tensor) -> *mut C_tensor;
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

/// One step of PyTorch's SGD (`torch.optim.SGD` on CPU tensors, its single-tensor path) for
/// `param` from its gradient, bit for bit: `d_p = grad + wd·param`; `buf = d_p` on the first step
/// (`buffer` is `None`, and holds the new buffer afterwards), else `buf = m·buf + d_p`;
/// `d_p = d_p + m·buf` (nesterov) or `buf`; `param -= lr·d_p`. No gradient, no change. One pass
/// over the memory for dense f32/f64 tensors, aten's ops otherwise (`ops.cpp`).
pub fn sgd_step(
    param: &mut Tensor,
    buffer: &mut Option<Tensor>,
    lr: f64,
    momentum: f64,
    weight_decay: f64,
    nesterov: bool,
) -> Result<(), TchError> {
    let buf = buffer
        .as_mut()
        .map_or(std::ptr::null_mut(), |b| b.as_mut_ptr());
    let mut new_buf = std::ptr::null_mut();
    // SAFETY: live tensors (or null for no buffer) and a valid out-pointer, which the shim sets
    // to null or to a new tensor the caller owns.
    let ok = unsafe {
        vggdsl_sgd_step(
            param.as_mut_ptr(),
            buf,
            &mut new_buf,
            lr,
            momentum,
            weight_decay,
            nesterov,
        )
    };
    if !ok {
        return Err(last_error());
    }
    if !new_buf.is_null() {
        // SAFETY: allocated by the shim with `new`, as tch's own tensors are.
        *buffer = Some(unsafe { Tensor::from_ptr(new_buf) });
    }
    Ok(())
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

/// `batch_norm(xs, weight, bias, running_mean, running_var, training=true, momentum, eps)`, the
/// running statistics updated in place: aten's outputs, statistics and gradients bit for bit.
/// On contiguous f32 NCHW maps the per-channel statistics come from vggdsl's kernel, which runs
/// aten's chains of double additions for several channels at once (`ops.cpp`); aten's operator
/// takes everything else.
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

/// `max_pool2d(xs, kernel_size=2, stride=2)`: the same values as aten's and, through the same
/// maxima, the same gradient, from a kernel many times faster on contiguous f32/f64 NCHW maps 8
/// or more wide, or 2 wide (see [`max_pool2x2_takes`]; `ops.cpp` has the figures), from aten's
/// operator otherwise.
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
