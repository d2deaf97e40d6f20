//! HRankPlus's counting: the FLOPs that `thop.profile` (0.0.31, the version of HRankPlus's time)
//! gives its pruned VGG-16-BN, which `evaluate_cifar.py` and `cal_flops_params.py` log, and the
//! Conv2d + Linear parameters, which is what HRankPlus's README prints beside them.

use super::{Counting, Filters, HrankLayer, HrankSummary};
use crate::ir::{self, Architecture, LayerKind};

/// Counts `net` as HRankPlus publishes its figures ([`super::HRANKPLUS_CONVENTION`]): the network
/// as built (pruned widths, pruned inputs), one image.
pub fn hrankplus(net: &Architecture) -> HrankSummary {
    let unpruned = net.spec.compress_rate.as_ref().map(|_| {
        let base = ir::lower(&net.spec.unpruned())
            .expect("lower accepts a pruned network only if its unpruned form lowers too");
        layers(&base)
    });
    HrankSummary::new(net, layers(net), unpruned, Counting::HrankPlus)
}

/// thop's rule per layer: a conv `c_out·H·W·(c_in·k² + 1)` (the 1 for its bias), a BatchNorm 2
/// per input element, a Linear `in·out`, ReLU and max-pooling nothing; the parameters of Conv2d
/// and Linear only.
fn layers(net: &Architecture) -> Vec<HrankLayer> {
    let unpruned: Vec<i64> = match &net.spec.compress_rate {
        Some(_) => ir::lower(&net.spec.unpruned())
            .expect("lower accepts a pruned network only if its unpruned form lowers too")
            .convs()
            .map(|(.., c)| c)
            .collect(),
        None => net.convs().map(|(.., c)| c).collect(),
    };
    let mut convs = unpruned.iter();
    let wide = |dims: &[i64]| dims.iter().map(|&d| d as u128).product::<u128>();
    net.layers()
        .map(|(section, l)| {
            let (filters, flops) = match l.kind {
                LayerKind::Conv2d {
                    in_channels,
                    out_channels,
                    kernel,
                    ..
                } => {
                    let of = *convs.next().expect("one unpruned width per conv");
                    let per_output = wide(&[in_channels, kernel, kernel]) + 1;
                    let filters = Filters {
                        kept: out_channels,
                        of,
                    };
                    (Some(filters), wide(&l.out_shape) * per_output)
                }
                LayerKind::BatchNorm2d { .. } | LayerKind::BatchNorm1d { .. } => {
                    (None, 2 * wide(&l.in_shape))
                }
                LayerKind::Linear {
                    in_features,
                    out_features,
                } => (None, wide(&[in_features, out_features])),
                LayerKind::ReLU | LayerKind::MaxPool2d { .. } => (None, 0),
            };
            let params = match l.kind {
                LayerKind::Conv2d { .. } | LayerKind::Linear { .. } => l.params(),
                _ => 0,
            };
            HrankLayer {
                name: crate::names::module_path(section, &l.name),
                kind: l.kind.class_name(),
                filters,
                params,
                flops,
            }
        })
        .collect()
}
