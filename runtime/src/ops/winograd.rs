//! A 3×3 conv + ReLU in Winograd's F(2×2, 3×3) form, for inference (`csrc/winograd.cpp`).

use tch::{TchError, Tensor};
use torch_sys::C_tensor;

use super::common::owned;

extern "C" {
    fn vggdsl_winograd_conv_relu(
        xs: *const C_tensor,
        u: *const C_tensor,
        bias: *const C_tensor,
        in_registers: bool,
    ) -> *mut C_tensor;
    fn vggdsl_winograd_panels(u: *const C_tensor) -> *mut C_tensor;
}

/// `relu(conv2d(xs, weight, bias, padding=1))` for a 3×3 `weight` given in Winograd's form `u`
/// (F(2×2, 3×3): `G·weight·Gᵀ` per channel pair, shape `[16, in, out]`, see
/// [`crate::inference::winograd_weight`]), on an f32 batch of any strides whose maps have even
/// sides. 16 matrix products over the channels instead of the conv's 36 multiplications per
/// 2×2 block of outputs; the output is channels-last and records no gradient (inference only).
/// With [`WinogradProducts::InRegisters`], `u` is in [`winograd_panels`].
pub fn winograd_conv_relu(
    xs: &Tensor,
    u: &Tensor,
    bias: &Tensor,
    products: WinogradProducts,
) -> Result<Tensor, TchError> {
    let in_registers = products == WinogradProducts::InRegisters;
    // SAFETY: live tensors; the result is a new tensor the caller owns.
    owned(unsafe {
        vggdsl_winograd_conv_relu(xs.as_ptr(), u.as_ptr(), bias.as_ptr(), in_registers)
    })
}

/// Winograd's form `u` (`[16, in, out]`) in the panels that [`WinogradProducts::InRegisters`]
/// reads: `[16, panels, in, width]`, the outputs in groups of `width` (two vector registers of
/// the kernels' build that runs, [`super::kernel_isa`]) with zeros past the last, so that the
/// products read the whole form once, in order.
pub fn winograd_panels(u: &Tensor) -> Result<Tensor, TchError> {
    // SAFETY: a live tensor; the result is a new tensor the caller owns.
    owned(unsafe { vggdsl_winograd_panels(u.as_ptr()) })
}

/// How [`winograd_conv_relu`] runs its 16 matrix products.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WinogradProducts {
    /// aten's batched matrix product (MKL's GEMM, which packs `u` on every call): many tiles.
    Gemm,
    /// Loops that keep the sums of 4 tiles × a panel's outputs in registers and read `u`, in
    /// [`winograd_panels`], as it is stored: few tiles (a batch of one on a small map), where
    /// packing costs more than the products.
    InRegisters,
}
