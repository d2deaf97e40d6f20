//! PyTorch's SGD step in one pass over each parameter, and `grad = None` (`csrc/sgd.cpp`).

use tch::{TchError, Tensor};
use torch_sys::C_tensor;

use super::common::succeeded;

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
}

/// One step of PyTorch's SGD (`torch.optim.SGD` on CPU tensors, its single-tensor path) for
/// `param` from its gradient, bit for bit: `d_p = grad + wd·param`; `buf = d_p` on the first step
/// (`buffer` is `None`, and holds the new buffer afterwards), else `buf = m·buf + d_p`;
/// `d_p = d_p + m·buf` (nesterov) or `buf`; `param -= lr·d_p`. No gradient, no change. One pass
/// over the memory for dense f32/f64 tensors, aten's ops otherwise.
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
    // SAFETY: live tensors (or null for no buffer) and a valid out-pointer, which the C++ side
    // sets to null or to a new tensor the caller owns.
    succeeded(unsafe {
        vggdsl_sgd_step(
            param.as_mut_ptr(),
            buf,
            &mut new_buf,
            lr,
            momentum,
            weight_decay,
            nesterov,
        )
    })?;
    if !new_buf.is_null() {
        // SAFETY: allocated by the C++ side with `new`, as tch's own tensors are.
        *buffer = Some(unsafe { Tensor::from_ptr(new_buf) });
    }
    Ok(())
}

/// `p.grad = None`, as PyTorch's `zero_grad()` leaves it.
pub fn grad_to_none(p: &mut Tensor) {
    // SAFETY: a live tensor; only its gradient field is reset.
    unsafe { vggdsl_grad_to_none(p.as_mut_ptr()) }
}
