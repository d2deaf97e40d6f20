//! vggdsl's C++ kernels and the libtorch operators tch's bindings lack, over `csrc/` (built by
//! `build.rs` against the headers of the libtorch that torch-sys links): a module per kernel file,
//! and `common` for what they share, as `csrc/common.h` does (a failed call's message). The
//! huge-page allocator's calls live in [`crate::memory`], with the rest of the memory policy.
//! Where a kernel runs its own code on some inputs and aten's operator on the rest,
//! `<kernel>_takes` says which (here [`max_pool2x2_takes`]; in C++ also `batch_norm_train_takes`
//! and `sgd_step_takes`).

mod batch_norm;
mod common;
mod direct;
mod layout;
mod linear;
mod max_pool;
mod onednn;
mod sgd;
mod winograd;

pub use batch_norm::batch_norm_train;
pub(crate) use common::evict_caches;
pub use common::{cpu_capability, kernel_isa, torch_version};
pub use direct::{direct_conv_relu, direct_panels};
pub use layout::channels_last;
pub use linear::linear_relu;
pub use max_pool::{max_pool2x2, max_pool2x2_takes, relu_max_pool2x2};
pub use onednn::{conv2d_relu, data_bytes, has_conv2d_relu};
pub use sgd::{grad_to_none, sgd_step};
pub use winograd::{winograd_conv_relu, winograd_panels, WinogradProducts};
