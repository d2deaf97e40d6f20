//! Filter scores beside HRank's ranks, one module per criterion, each per conv and one score per
//! filter (the highest survive, [`vggdsl::select::keep_highest`]):
//!
//! - [`bn`]: Network Slimming's |γ|, the scale of the BatchNorm after the conv;
//! - [`fpgm`]: FPGM's distance of a filter to the others of its conv (the sum of Euclidean
//!   distances; those nearest the geometric median go);
//! - [`taylor`]: first-order Taylor importance of the conv block's output channels, from
//!   activations and gradients over training batches.
//!
//! L1 norms and random choices are [`crate::hrank::select`]'s; ranks are [`crate::hrank::rank`]'s.

pub mod bn;
pub mod fpgm;
pub mod taylor;

use tch::Tensor;
use vggdsl_runtime::{Layer, Network};

/// The conv layer `name` of `net`'s features.
fn conv<'a>(net: &'a Network, name: &str) -> &'a vggdsl_runtime::nn::Conv2d {
    let path = vggdsl::names::module_path(vggdsl::names::FEATURES, name);
    match net.layer(&path) {
        Some(Layer::Conv2d(conv)) => conv,
        _ => unreachable!("{path} is a conv of this network"),
    }
}

/// A one-dimensional tensor's values as f64.
fn values(t: &Tensor) -> Vec<f64> {
    let t = tch::no_grad(|| t.to_kind(tch::Kind::Double).flatten(0, -1));
    Vec::<f64>::try_from(&t).expect("a double vector")
}
