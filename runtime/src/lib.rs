//! What vggdsl-generated tch models need at run time, and the one dependency their users add.
//!
//! Generated code names its layers and tensors as PyTorch does, so this crate holds the layer
//! types with PyTorch's field names (`weight`, `bias`, `running_mean`, …) ([`nn`]), PyTorch's
//! default initialisation and the in-place init functions that rules compile to ([`init`]), the
//! fused inference layers ([`inference`]) over libtorch operators and kernels of vggdsl's own
//! ([`ops`]) with their memory policy ([`memory`]), weight import and export ([`state_dict`]),
//! [`Network`], the same model built at run time from a `.vgg` file, and the devices users name
//! ([`device`]). It re-exports [`tch`]
//! and the `vgg!` macro. Decisions about a network (names, shapes, init order, repr) are made by
//! the compiler; training and pruning are the `vggdsl-train` crate's.

pub mod device;
pub mod inference;
pub mod init;
pub mod machine;
pub mod memory;
pub mod network;
pub mod nn;
pub mod ops;
mod pickle;
pub mod state_dict;

pub use network::{load_models, Inference, Layer, ModelError, Network};
pub use state_dict::{
    load_state_dict, load_state_dict_with, read_state_dict, save_state_dict, LoadError, LoadMode,
    LoadReport, Mismatch, SaveError,
};
pub use tch;
pub use vggdsl_macros::vgg;

/// One entry of a model's cfg list, as its `CFG` constant lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cfg {
    /// A 3×3 conv block to this many channels.
    Conv(i64),
    /// MaxPool2d(kernel_size=2, stride=2).
    M,
}

/// Includes the models that `vggdsl::Builder` compiled from `<name>.vgg` in a build script.
///
/// ```ignore
/// vggdsl_runtime::include_vgg!("vgg16_bn");
/// ```
#[macro_export]
macro_rules! include_vgg {
    ($name:literal) => {
        include!(concat!(env!("OUT_DIR"), "/", $name, ".rs"));
    };
}
