//! HRank filter pruning on a run-time [`Network`](vggdsl_runtime::Network): rank every conv's
//! filters by the average matrix rank of their feature maps ([`rank`]), choose the filters each
//! conv keeps ([`select`], over the torch-free rules of [`vggdsl::select`]), and cut the network
//! down to them with every tensor that follows a filter ([`surgery`]).
//!
//! What HRank's and HRankPlus's own code do, and where this departs from them, is said at each
//! step: one forward pass computes every conv's ranks, the last conv is ranked too, ties are
//! broken by index, and surgery copies BatchNorm and the classifier as well as the kernels.

pub mod rank;
pub mod select;
pub mod surgery;

pub use rank::{map_ranks, scores_for, RankError, RankSums, RanksMismatch};
pub use select::{choose, scores, Criterion};
pub use surgery::{transplant, Inherit};
