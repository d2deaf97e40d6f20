//! vggdsl's C++ kernels and the libtorch operators tch's bindings lack, over `csrc/` (built by
//! `build.rs` against the headers of the libtorch that torch-sys links): one module per kernel
//! file, and here what they share (a failed call's message, `csrc/common.h`). The huge-page
//! allocator's calls live in [`crate::memory`], with the rest of the memory policy. Where a kernel
//! runs its own code on some inputs and aten's operator on the rest, `<kernel>_takes` says which
//! (here [`max_pool2x2_takes`]; in C++ also `batch_norm_train_takes` and `sgd_step_takes`).

mod batch_norm;
mod max_pool;
mod onednn;
mod sgd;
mod winograd;

pub use batch_norm::batch_norm_train;
pub use max_pool::{max_pool2x2, max_pool2x2_takes, relu_max_pool2x2};
pub use onednn::{conv2d_relu, data_bytes, has_conv2d_relu};
pub use sgd::{grad_to_none, sgd_step};
pub use winograd::winograd_conv_relu;

use std::ffi::CStr;
use std::os::raw::c_char;

use tch::{TchError, Tensor};
use torch_sys::C_tensor;

extern "C" {
    fn vggdsl_last_error() -> *const c_char;
}

/// The message of the entry point that failed last on this thread (`csrc/common.h`'s guard).
fn last_error() -> TchError {
    // SAFETY: the C++ side's buffer always holds a NUL-terminated string.
    let message = unsafe { CStr::from_ptr(vggdsl_last_error()) };
    TchError::Torch(message.to_string_lossy().into_owned())
}

/// The outcome of an entry point that returns whether it succeeded.
fn succeeded(ok: bool) -> Result<(), TchError> {
    if ok {
        Ok(())
    } else {
        Err(last_error())
    }
}

/// A tensor an entry point allocated, or its error.
fn owned(result: *mut C_tensor) -> Result<Tensor, TchError> {
    if result.is_null() {
        Err(last_error())
    } else {
        // SAFETY: a tensor allocated by the C++ side with `new`, as tch's own are.
        Ok(unsafe { Tensor::from_ptr(result) })
    }
}
