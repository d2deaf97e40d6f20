//! What every kernel's Rust side shares, as `csrc/common.h` on the C++ side: an entry point's
//! result as a `Result`, with the message of its failure.

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
pub(super) fn succeeded(ok: bool) -> Result<(), TchError> {
    if ok {
        Ok(())
    } else {
        Err(last_error())
    }
}

/// A tensor an entry point allocated, or its error.
pub(super) fn owned(result: *mut C_tensor) -> Result<Tensor, TchError> {
    if result.is_null() {
        Err(last_error())
    } else {
        // SAFETY: a tensor allocated by the C++ side with `new`, as tch's own are.
        Ok(unsafe { Tensor::from_ptr(result) })
    }
}
