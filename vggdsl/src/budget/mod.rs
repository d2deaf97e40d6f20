//! Widths for a budget: what `vggdsl prune --target-macs/--target-params/--target-latency` asks
//! for and how each strategy meets it, free of torch so that every rule is a pure function of
//! its inputs (scores, measured points, a cost) and is tested without a network.
//!
//! A target is read once ([`Target::parse`]): a share of the unpruned model's figure (`50%`) or
//! an amount (`2.5M` MACs or parameters, `12.5` milliseconds). Each strategy searches widths, one
//! per conv, whose cost is at most the limit, and stops one step short of the first that is not:
//!
//! - [`uniform`]: one rate for every conv, the smallest that meets the limit, found by bisection
//!   over the rates at which some conv's width changes;
//! - [`global`]: every conv's filters in one ranking by their scores normalised per conv
//!   ([`Normalise`]), the fewest lowest-scored filters removed that meet the limit;
//! - [`sensitivity`]: a greedy walk over measured (width, accuracy) points of each conv pruned
//!   alone, taking each time the step that loses the least accuracy per unit of cost saved.
//!
//! Widths are rounded up to a multiple of `round_to` as the language rounds them
//! ([`crate::ir::rounded_width`]); the searches run on rounded widths, so the limit holds for
//! the widths the pruned model has.

mod global;
mod greedy;
mod target;
mod uniform;

pub use global::{global, normalise, Normalise};
pub use greedy::{sensitivity, Point};
pub use target::{Amount, Resource, Target};
pub use uniform::uniform;

use crate::ir::{self, Architecture};
use crate::spec::{CfgItem, ModelSpec};

/// The cost of one conv width per conv (MACs, parameters, milliseconds), which a strategy keeps
/// at most at its limit.
pub type Cost<'a> = dyn FnMut(&[i64]) -> f64 + 'a;

/// No widths a strategy can reach meet the limit.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("the least the {strategy} strategy reaches is {least}, above the target's {limit}")]
pub struct Unreachable {
    pub strategy: &'static str,
    /// The cost of the narrowest widths the strategy reaches.
    pub least: f64,
    pub limit: f64,
}

/// The first index of `0..n` at which `fits` holds, where it holds from some index on (a
/// bisection: about log2(n) calls); `None` if it holds nowhere.
pub(crate) fn first_fitting(n: usize, mut fits: impl FnMut(usize) -> bool) -> Option<usize> {
    if n == 0 || !fits(n - 1) {
        return None;
    }
    let (mut lo, mut hi) = (0, n - 1);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if fits(mid) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Some(lo)
}

/// `net`'s model (unpruned) with its convs `widths` wide, as a cfg states them: no
/// `compress_rate`, no `round_to`.
pub fn with_widths(net: &Architecture, widths: &[i64]) -> ModelSpec {
    let mut widths = widths.iter();
    let features = net.spec.features().len();
    let cfg = net
        .spec
        .cfg
        .iter()
        .enumerate()
        .map(|(i, item)| match item {
            CfgItem::Conv(_) if i < features => {
                CfgItem::Conv(*widths.next().expect("one width per conv"))
            }
            other => *other,
        })
        .collect();
    ModelSpec {
        cfg,
        compress_rate: None,
        round_to: None,
        ..net.spec.clone()
    }
}

/// Conv2d + Linear parameters and MACs of `net` with its convs `widths` wide (the figures
/// `vggdsl prune` prints).
pub fn figures(net: &Architecture, widths: &[i64]) -> (u64, u64) {
    let pruned = ir::lower(&with_widths(net, widths)).expect("narrower convs lower too");
    let s = crate::analysis::summarize(&pruned);
    (s.params_conv_linear, s.macs)
}

/// A `compress_rate` that gives `kept` filters of each conv of `widths` under the language's
/// rule with `round_to`, written as simply as it can be: one rate for every conv when one gives
/// them all, else a rate per conv; each the shortest decimal that gives its width
/// ([`crate::select::rate_between`]). Each `kept` must be a width the rule gives: in
/// `1..=width`, and a multiple of `round_to` or the width itself.
pub fn rates_for(widths: &[i64], kept: &[i64], round_to: i64) -> Vec<f64> {
    let gives = |c: i64, k: i64, r: f64| ir::pruned_width(c, r, round_to) == k;
    // The rates that give each width: those whose truncated width rounds to it.
    let intervals: Vec<(f64, f64)> = widths
        .iter()
        .zip(kept)
        .map(|(&c, &k)| {
            let mut lowest = k;
            while lowest > 1 && ir::rounded_width(c, lowest - 1, round_to) == k {
                lowest -= 1;
            }
            (
                crate::select::rates_keeping(c, k).0,
                crate::select::rates_keeping(c, lowest).1,
            )
        })
        .collect();
    let lo = intervals.iter().map(|i| i.0).fold(f64::MIN, f64::max);
    let hi = intervals.iter().map(|i| i.1).fold(f64::MAX, f64::min);
    let all = |r: f64| widths.iter().zip(kept).all(|(&c, &k)| gives(c, k, r));
    if let Some(r) = (lo < hi)
        .then(|| crate::select::rate_between(lo, hi, all))
        .flatten()
    {
        return vec![r; widths.len()];
    }
    widths
        .iter()
        .zip(kept)
        .zip(&intervals)
        .map(|((&c, &k), &(lo, hi))| {
            crate::select::rate_between(lo, hi, |r| gives(c, k, r))
                .unwrap_or_else(|| crate::select::language_rate(c, k, hi))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bisection_finds_the_first_index_that_fits() {
        for n in 0..40 {
            for first in 0..=n {
                let mut calls = 0;
                let found = first_fitting(n, |i| {
                    calls += 1;
                    i >= first
                });
                assert_eq!(found, (first < n).then_some(first), "{n} {first}");
                assert!(
                    calls <= 2 + (n as f64).log2().ceil() as usize,
                    "{n}: {calls}"
                );
            }
        }
    }

    #[test]
    fn rates_are_one_for_all_convs_when_one_gives_every_width() {
        // int(64 · 0.5) = 32, int(128 · 0.5) = 64: 0.5 for both.
        assert_eq!(rates_for(&[64, 128], &[32, 64], 1), [0.5, 0.5]);
        // 44 of 64 and 89 of 128: 0.3 gives both (int(44.8), int(89.6)).
        assert_eq!(rates_for(&[64, 128], &[44, 89], 1), [0.3, 0.3]);
        // 3 of 64 and 128 of 128: no rate does; 0.95 and 0.
        assert_eq!(rates_for(&[64, 128], &[3, 128], 1), [0.95, 0.0]);
        // Rounded up to 16: 48 of 64 (raw 33 to 48) and 96 of 128 (raw 81 to 96) at 0.3.
        assert_eq!(rates_for(&[64, 128], &[48, 96], 16), [0.3, 0.3]);
        for round_to in [1, 3, 8] {
            for c in 1..=200 {
                for k in (1..=c).filter(|&k| k == c || k % round_to == 0) {
                    let r = rates_for(&[c], &[k], round_to)[0];
                    assert_eq!(ir::pruned_width(c, r, round_to), k, "{c} {k}: {r}");
                }
            }
        }
    }

    #[test]
    fn figures_of_widths_are_the_pruned_models() {
        let net =
            &crate::check_source("model A { input = [3, 8, 8] cfg = [10, M, 10, 6] }").unwrap()[0];
        let pruned = &crate::check_source(
            "model P { input = [3, 8, 8] cfg = [10, M, 10, 6] compress_rate = [0.3, 0.5] }",
        )
        .unwrap()[0];
        let s = crate::analysis::summarize(pruned);
        assert_eq!(figures(net, &[7, 5]), (s.params_conv_linear, s.macs));
    }
}
