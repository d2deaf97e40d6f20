//! What every kernel's Rust side shares, as `csrc/common.h` on the C++ side: an entry point's
//! result as a `Result`, with the message of its failure, and which ISA build runs.

use std::ffi::CStr;
use std::os::raw::c_char;

use tch::{TchError, Tensor};
use torch_sys::C_tensor;

extern "C" {
    fn vggdsl_last_error() -> *const c_char;
    fn vggdsl_cpu_capability() -> *const c_char;
    fn vggdsl_kernel_isa() -> *const c_char;
    fn vggdsl_torch_version() -> *const c_char;
    fn vggdsl_evict_caches(bytes: usize);
}

/// Reads `bytes` of a buffer (its size fixed by the first call) on every thread of libtorch's
/// pool, which leaves the caches holding that buffer rather than what they held.
pub(crate) fn evict_caches(bytes: usize) {
    // SAFETY: reads a buffer of the C++ side; never fails.
    unsafe { vggdsl_evict_caches(bytes) }
}

/// The version of the libtorch the kernels were built against ("2.13.0"; "?" if unknown).
pub fn torch_version() -> &'static str {
    // SAFETY: a NUL-terminated string literal of the C++ side.
    unsafe { static_str(vggdsl_torch_version()) }
}

/// aten's CPU capability: "AVX512", "AVX2", "DEFAULT", … (`ATEN_CPU_CAPABILITY` can lower it).
pub fn cpu_capability() -> &'static str {
    // SAFETY: a NUL-terminated string in a static of the C++ side, never freed.
    unsafe { static_str(vggdsl_cpu_capability()) }
}

/// The build of vggdsl's own kernels that runs, the one matching [`cpu_capability`]: "avx512",
/// "avx2" or "baseline".
pub fn kernel_isa() -> &'static str {
    // SAFETY: a NUL-terminated string literal of the C++ side.
    unsafe { static_str(vggdsl_kernel_isa()) }
}

/// # Safety
/// `s` is a NUL-terminated UTF-8 string that lives as long as the process.
unsafe fn static_str(s: *const c_char) -> &'static str {
    CStr::from_ptr(s).to_str().unwrap_or("?")
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
