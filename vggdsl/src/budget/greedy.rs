//! Spending a budget where accuracy drops least, from measured points of each conv pruned alone
//! (`vggdsl sensitivity`).

use super::{first_fitting, Cost, Unreachable};
use crate::ir::rounded_width;

/// One measured point of a conv pruned alone: it kept `width` filters (before any rounding) and
/// the network's accuracy fell by `drop` (negative if it rose).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub width: i64,
    pub drop: f64,
}

/// The widths that bring the cost to at most `limit` at the least summed accuracy drop, by a
/// greedy walk over `curves` (one list of measured points per conv of `widths`, any order),
/// widths rounded up to a multiple of `round_to`.
///
/// Every conv starts unpruned (drop 0). Each step moves one conv to one of its measured points
/// narrower than its current one (any of them, not only the next: a curve that is flat after a
/// steep start is not passed over), the move with the least added drop per unit of cost saved,
/// the costs computed on the joint widths (pruning a conv also narrows the next conv's input,
/// so savings do not add up conv by conv). Ties go to the larger saving, then the earlier conv.
/// Drops are taken to add up across convs, the usual assumption of sensitivity analysis. The
/// step that would cross the limit is cut short: its conv keeps the most filters that meet the
/// limit (bisection over the widths between the two points), so one filter more (one
/// `round_to` step) in that conv breaks the limit.
pub fn sensitivity(
    widths: &[i64],
    curves: &[Vec<Point>],
    round_to: i64,
    cost: &mut Cost,
    limit: f64,
) -> Result<Vec<i64>, Unreachable> {
    let round = |i: usize, k: i64| rounded_width(widths[i], k, round_to);
    // Each conv's points, widest first, as rounded widths with their drops; the unpruned first.
    let curves: Vec<Vec<(i64, f64)>> = curves
        .iter()
        .enumerate()
        .map(|(i, points)| {
            let mut c: Vec<(i64, f64)> = points
                .iter()
                .filter(|p| (1..widths[i]).contains(&p.width))
                .map(|p| (round(i, p.width), p.drop))
                .collect();
            c.push((widths[i], 0.0));
            c.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.total_cmp(&b.1)));
            c.dedup_by_key(|p| p.0);
            c
        })
        .collect();
    let mut at = vec![0usize; widths.len()];
    let mut current: Vec<i64> = widths.to_vec();
    loop {
        let now = cost(&current);
        if now <= limit {
            return Ok(current);
        }
        let Some((conv, point, _)) = best_step(&curves, &at, &current, now, cost) else {
            return Err(Unreachable {
                strategy: "sensitivity",
                least: now,
                limit,
            });
        };
        let mut next = current.clone();
        next[conv] = curves[conv][point].0;
        if cost(&next) <= limit {
            // Cut short: the widest width between the two points that meets the limit.
            let (from, to) = (current[conv], next[conv]);
            let candidates: Vec<i64> = (to..from).rev().map(|k| round(conv, k)).collect();
            let i = first_fitting(candidates.len(), |i| {
                next[conv] = candidates[i];
                cost(&next) <= limit
            })
            .expect("the point itself meets the limit");
            next[conv] = candidates[i];
            return Ok(next);
        }
        at[conv] = point;
        current = next;
    }
}

/// The move with the least added drop per unit of cost saved: `(conv, point, ratio)`; `None`
/// when no move saves anything.
fn best_step(
    curves: &[Vec<(i64, f64)>],
    at: &[usize],
    current: &[i64],
    now: f64,
    cost: &mut Cost,
) -> Option<(usize, usize, f64)> {
    let mut best: Option<(usize, usize, f64, f64)> = None;
    let mut trial = current.to_vec();
    for (conv, curve) in curves.iter().enumerate() {
        for (point, &(width, drop)) in curve.iter().enumerate().skip(at[conv] + 1) {
            trial[conv] = width;
            let saved = now - cost(&trial);
            if saved <= 0.0 {
                continue;
            }
            let ratio = (drop - curve[at[conv]].1) / saved;
            let better = best.is_none_or(|(_, _, r, s)| ratio < r || (ratio == r && saved > s));
            if better {
                best = Some((conv, point, ratio, saved));
            }
        }
        trial[conv] = current[conv];
    }
    best.map(|(c, p, r, _)| (c, p, r))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost(w: &[i64]) -> f64 {
        (w[0] * 4 + w[0] * w[1] + w[1] * 10) as f64
    }

    fn points(c: i64, drops: &[f64]) -> Vec<Point> {
        drops
            .iter()
            .enumerate()
            .map(|(i, &drop)| Point {
                width: c - (i as i64 + 1) * c / 10,
                drop,
            })
            .collect()
    }

    #[test]
    fn the_budget_goes_where_accuracy_drops_least() {
        let widths = [20, 30];
        // conv0 is fragile, conv1 loses nothing until 60 %.
        let curves = vec![
            points(20, &[0.1, 0.2, 0.4, 0.6, 0.7, 0.8, 0.85, 0.9, 0.9]),
            points(30, &[0.0, 0.0, 0.0, 0.0, 0.0, 0.01, 0.3, 0.6, 0.9]),
        ];
        let limit = 0.6 * cost(&widths);
        let w = sensitivity(&widths, &curves, 1, &mut |w| cost(w), limit).unwrap();
        assert_eq!(w[0], 20, "{w:?}");
        assert!(cost(&w) <= limit);
        assert!(cost(&[w[0], w[1] + 1]) > limit, "{w:?}");
    }

    #[test]
    fn a_late_cheap_point_is_not_missed_behind_a_steep_first_one() {
        let widths = [20, 30];
        // conv1's first point costs 0.5 for little; its fourth, 0.5 for four times the saving.
        let curves = vec![
            points(20, &[0.3, 0.6, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9]),
            points(30, &[0.5, 0.5, 0.5, 0.5, 0.9, 0.9, 0.9, 0.9, 0.9]),
        ];
        let limit = 0.7 * cost(&widths);
        let w = sensitivity(&widths, &curves, 1, &mut |w| cost(w), limit).unwrap();
        assert_eq!(w[0], 20, "{w:?}");
    }

    #[test]
    fn a_conv_without_points_keeps_its_width() {
        // A sweep measures no point for a conv every rate would leave without a filter.
        let widths = [20, 30];
        let curves = vec![Vec::new(), points(30, &[0.1; 9])];
        let limit = 0.7 * cost(&widths);
        let w = sensitivity(&widths, &curves, 1, &mut |w| cost(w), limit).unwrap();
        assert_eq!(w[0], 20, "{w:?}");
        assert!(cost(&w) <= limit);
        let e = sensitivity(
            &widths,
            &[Vec::new(), Vec::new()],
            1,
            &mut |w| cost(w),
            limit,
        );
        assert_eq!(e.unwrap_err().least, cost(&widths));
    }

    #[test]
    fn rounded_and_unreachable() {
        let widths = [20, 30];
        let curves = vec![points(20, &[0.1; 9]), points(30, &[0.1; 9])];
        let limit = 0.5 * cost(&widths);
        let w = sensitivity(&widths, &curves, 8, &mut |w| cost(w), limit).unwrap();
        assert!(
            w.iter().zip(widths).all(|(k, c)| k % 8 == 0 || *k == c),
            "{w:?}"
        );
        assert!(cost(&w) <= limit);
        let e = sensitivity(&widths, &curves, 1, &mut |w| cost(w), 1.0).unwrap_err();
        assert_eq!(e.least, cost(&[2, 3]));
    }
}
