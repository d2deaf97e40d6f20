//! Every conv's filters in one ranking.
//!
//! Scores of different convs are not on one scale: HRank's mean rank of an H×W map is at most
//! min(H, W), so a 2×2 map's filters all score at most 2 against up to 32 for a 32×32 map; an L1
//! norm grows with the fan-in (in·k·k weights) and with each layer's init scale; BatchNorm
//! scales, FPGM distances and Taylor importances have scales of their own. Ranked as they are,
//! the convs with the smallest numbers lose their filters first, whatever their worth.
//! [`Normalise::Mean`] divides each conv's scores by their mean (Torch-Pruning's default
//! normaliser): a conv's average filter scores 1 whatever the criterion, and what counts is how
//! a filter compares with the rest of its own conv. Dividing by a bound (the map side, the
//! fan-in) would serve ranks and L1 norms only; dividing by the maximum lets one outlier filter
//! lower a whole conv; ranking within each conv (position / width) would make every conv's scores
//! the same list, and the global ranking a uniform rate.

use super::{first_fitting, Cost, Unreachable};
use crate::ir::rounded_width;

/// How each conv's scores are brought to one scale before the ranking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Normalise {
    /// Each divided by its conv's mean score (all 0 for a conv whose scores are all 0).
    #[default]
    Mean,
    /// As they are (to show what normalising changes).
    None,
}

/// `scores` on their conv's scale, as [`Normalise::Mean`] says.
pub fn normalise(scores: &[f64], how: Normalise) -> Vec<f64> {
    let mean = scores.iter().sum::<f64>() / scores.len().max(1) as f64;
    match how {
        Normalise::Mean if mean > 0.0 => scores.iter().map(|s| s / mean).collect(),
        Normalise::Mean => vec![0.0; scores.len()],
        Normalise::None => scores.to_vec(),
    }
}

/// The widths after removing, from all convs together, the fewest lowest-scored filters (scores
/// normalised per conv by `how`) that bring the cost to at most `limit`, widths rounded up to a
/// multiple of `round_to`. `scores[i]` has one score per filter of conv `i`; all of a conv's
/// filters but one may go.
///
/// The order of removal: the lowest normalised score first; among equal scores, the later conv's
/// filter, and in a conv the higher index (so that, as everywhere, ties keep the lower index). A
/// filter whose conv is down to one is passed over. Each conv's survivors are then its highest
/// scores, which the per-conv choice of filters keeps. Removing one filter fewer than the number
/// found breaks the limit (bisection over that number).
pub fn global(
    scores: &[Vec<f64>],
    how: Normalise,
    round_to: i64,
    cost: &mut Cost,
    limit: f64,
) -> Result<Vec<i64>, Unreachable> {
    let widths: Vec<i64> = scores.iter().map(|s| s.len() as i64).collect();
    let order = removal_order(scores, how);
    // The filters removed one by one, each conv keeping at least one.
    let mut left = widths.clone();
    let removals: Vec<usize> = order
        .into_iter()
        .map(|(conv, _)| conv)
        .filter(|&conv| {
            let removable = left[conv] > 1;
            left[conv] -= i64::from(removable);
            removable
        })
        .collect();
    let after = |n: usize| -> Vec<i64> {
        let mut w = widths.clone();
        for &conv in &removals[..n] {
            w[conv] -= 1;
        }
        w.iter()
            .zip(&widths)
            .map(|(&k, &c)| rounded_width(c, k, round_to))
            .collect()
    };
    match first_fitting(removals.len() + 1, |n| cost(&after(n)) <= limit) {
        Some(n) => Ok(after(n)),
        None => Err(Unreachable {
            strategy: "global",
            least: cost(&after(removals.len())),
            limit,
        }),
    }
}

/// Every filter as `(conv, index)`, in the order they go.
fn removal_order(scores: &[Vec<f64>], how: Normalise) -> Vec<(usize, usize)> {
    let normalised: Vec<Vec<f64>> = scores.iter().map(|s| normalise(s, how)).collect();
    let mut order: Vec<(usize, usize)> = scores
        .iter()
        .enumerate()
        .flat_map(|(conv, s)| (0..s.len()).map(move |i| (conv, i)))
        .collect();
    order.sort_by(|&(a, i), &(b, j)| {
        normalised[a][i]
            .total_cmp(&normalised[b][j])
            .then(b.cmp(&a))
            .then(j.cmp(&i))
    });
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_normalising_puts_each_convs_average_at_one() {
        assert_eq!(
            normalise(&[1.0, 2.0, 3.0], Normalise::Mean),
            [0.5, 1.0, 1.5]
        );
        assert_eq!(normalise(&[0.0, 0.0], Normalise::Mean), [0.0, 0.0]);
        assert_eq!(normalise(&[1.0, 3.0], Normalise::None), [1.0, 3.0]);
    }

    #[test]
    fn ties_go_to_the_later_conv_and_the_higher_index_first() {
        let scores = vec![vec![1.0, 1.0], vec![2.0, 2.0]];
        assert_eq!(
            removal_order(&scores, Normalise::Mean),
            [(1, 1), (1, 0), (0, 1), (0, 0)]
        );
        assert_eq!(
            removal_order(&scores, Normalise::None),
            [(0, 1), (0, 0), (1, 1), (1, 0)]
        );
    }
}
