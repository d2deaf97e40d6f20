//! HRank filter pruning on a run-time [`Network`](crate::Network): rank every conv's filters by
//! the average matrix rank of their feature maps ([`rank`]), choose the filters each conv keeps
//! ([`select`]), and cut the network down to them with every tensor that follows a filter
//! ([`surgery`]).
//!
//! What HRank's and HRankPlus's own code do, and where this departs from them, is said at each
//! step: one forward pass computes every conv's ranks, the last conv is ranked too, ties are
//! broken by index, and surgery copies BatchNorm and the classifier as well as the kernels.

pub mod rank;
pub mod select;
pub mod surgery;

pub use rank::{map_ranks, RankSums, Ranks};
pub use select::{Criterion, WidthRule};
pub use surgery::{transplant, Copy};

/// The convs of a network in order: (position in `features`, name, output channels).
pub(crate) fn convs(ir: &vggdsl::Network) -> Vec<(usize, &str, i64)> {
    ir.features
        .iter()
        .enumerate()
        .filter_map(|(p, l)| match l.kind {
            vggdsl::ir::LayerKind::Conv2d { out_channels, .. } => {
                Some((p, l.name.as_str(), out_channels))
            }
            _ => None,
        })
        .collect()
}
