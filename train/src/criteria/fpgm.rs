//! FPGM (He et al., "Filter Pruning via Geometric Median", CVPR 2019), as its authors' code
//! defines it (`get_filter_similar` in he-y/filter-pruning-geometric-median, with no norm-based
//! pruning before it): each filter's weights flattened to a vector, its score the sum of its
//! Euclidean distances to every filter of the same conv (itself included, at 0), in double
//! precision as scipy's `cdist` computes them; the filters of smallest sum, nearest the geometric
//! median and so the most replaceable, are pruned. The bias takes no part.

use tch::{Kind, Tensor};
use vggdsl_runtime::Network;

/// The sum of distances of every filter of every conv of `net` to the others, convs in order.
pub fn scores(net: &Network) -> Vec<Vec<f64>> {
    net.ir()
        .convs()
        .map(|(_, name, _)| distance_sums(&super::conv(net, name).weight))
        .collect()
}

/// For a conv weight `[out, in, k, k]`: per filter, Σ_j ‖w_i − w_j‖₂, each distance summed over
/// the weights in order in f64 (scipy's `cdist(…, 'euclidean')`), then the distances in order.
pub fn distance_sums(weight: &Tensor) -> Vec<f64> {
    let filters = weight.size()[0] as usize;
    let flat = tch::no_grad(|| weight.to_kind(Kind::Double).reshape([filters as i64, -1]));
    let w = Vec::<f64>::try_from(flat.flatten(0, -1)).expect("a double vector");
    let rows: Vec<&[f64]> = w.chunks(w.len() / filters.max(1)).collect();
    rows.iter()
        .map(|a| {
            rows.iter()
                .map(|b| {
                    let squares: f64 = a.iter().zip(*b).map(|(x, y)| (x - y) * (x - y)).sum();
                    squares.sqrt()
                })
                .sum()
        })
        .collect()
}
