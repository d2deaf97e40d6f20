//! Network Slimming's criterion (Liu et al., ICCV 2017): a channel's importance is |γ|, the
//! absolute scale factor of the BatchNorm2d right after its conv. The authors prune below one
//! global threshold over all layers; here each conv keeps the count its rate says, so that every
//! criterion is compared at the same widths.

use vggdsl::ir::LayerKind;
use vggdsl_runtime::{Layer, Network};

/// Why a model cannot be scored by its BatchNorm scales.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "model {model} has no BatchNorm after its convs (bn = false), and --by bn scores filters by \
     the BatchNorm scale factors"
)]
pub struct NoBatchNorm {
    pub model: String,
}

/// |γ| of every filter of every conv of `net`, convs in order.
pub fn scores(net: &Network) -> Result<Vec<Vec<f64>>, NoBatchNorm> {
    let features = &net.ir().features;
    net.ir()
        .convs()
        .map(|(position, ..)| match features.get(position + 1) {
            Some(l) if matches!(l.kind, LayerKind::BatchNorm2d { .. }) => {
                let path = vggdsl::names::module_path(vggdsl::names::FEATURES, &l.name);
                let Some(Layer::BatchNorm(norm)) = net.layer(&path) else {
                    unreachable!("{path} is a BatchNorm of this network")
                };
                Ok(super::values(&norm.weight.abs()))
            }
            _ => Err(NoBatchNorm {
                model: net.spec().name.clone(),
            }),
        })
        .collect()
}
