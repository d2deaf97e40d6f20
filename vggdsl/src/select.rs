//! Which filters of a conv survive pruning: how many (a rate and a [`WidthRule`]) and which (the
//! highest scores). Every choice is a pure function of its inputs: ties go to the lower filter
//! index, so no result depends on a sort's stability. The scores come from elsewhere (HRank's
//! mean ranks, L1 norms); so do random choices, which need a generator.

use crate::ir::{pruned_width, rounded_width};

/// How many of a conv's `c` filters a rate `r` keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WidthRule {
    /// HRankPlus's `int(c·(1 − r))`, which is what the language's `compress_rate` builds
    /// ([`pruned_width`]).
    #[default]
    HRankPlus,
    /// HRank's `c − int(r·c)` (its `argsort(rank)[int(r·c):]`), one more filter for some rates.
    HRank,
}

impl WidthRule {
    /// The filters of `width` that `rate` keeps, rounded up to a multiple of `round_to` as the
    /// language rounds ([`rounded_width`]).
    pub fn kept(self, width: i64, rate: f64, round_to: i64) -> i64 {
        match self {
            WidthRule::HRankPlus => pruned_width(width, rate, round_to),
            WidthRule::HRank => {
                rounded_width(width, width - (rate * width as f64) as i64, round_to)
            }
        }
    }
}

/// A rate that the language's `compress_rate` turns into exactly `kept` of `width` filters:
/// `rate` itself when it already does, else `1 − kept/width`, lowered by the few ulps that
/// floating point may need. `kept` must be in `1..=width`.
pub fn language_rate(width: i64, kept: i64, rate: f64) -> f64 {
    if pruned_width(width, rate, 1) == kept {
        return rate;
    }
    let mut r = 1.0 - kept as f64 / width as f64;
    while pruned_width(width, r, 1) < kept {
        r = f64::from_bits(r.to_bits() - 1);
    }
    r.max(0.0)
}

/// The rates at which a conv of `width` filters keeps `kept` under the language's rule before
/// rounding, `int(width · (1 − r)) = kept`, as `(lo, hi)`: every `r` with `lo < r ≤ hi`, up to
/// floating point at the ends (check a rate with [`pruned_width`]).
pub fn rates_keeping(width: i64, kept: i64) -> (f64, f64) {
    let c = width as f64;
    (1.0 - (kept + 1) as f64 / c, 1.0 - kept as f64 / c)
}

/// The shortest decimal rate in `[0, 1)` with `lo < r ≤ hi` for which `ok` holds (the largest of
/// its length): `0.5` rather than `0.4921875` when both give the same widths. `None` if no
/// decimal of up to 17 digits does.
pub fn rate_between(lo: f64, hi: f64, ok: impl Fn(f64) -> bool) -> Option<f64> {
    (0..=17).find_map(|digits| {
        let scale = 10f64.powi(digits);
        let r = (hi * scale).floor() / scale;
        (r > lo && (0.0..1.0).contains(&r) && ok(r)).then_some(r)
    })
}

/// The indices of the `k` highest scores, ascending; among equal scores the lower index survives.
pub fn keep_highest(scores: &[f64], k: usize) -> Vec<i64> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_unstable_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    let mut kept: Vec<i64> = order[..k.min(order.len())]
        .iter()
        .map(|&i| i as i64)
        .collect();
    kept.sort_unstable();
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_are_hranks_and_hrankpluses_published_ones() {
        // HRANK.md: VGG-16 at [0.95] + [0.5] * 6 + [0.9] * 4 + [0.8] * 2.
        let widths = [
            64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512,
        ];
        let rates = [
            0.95, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.9, 0.9, 0.9, 0.9, 0.8, 0.8,
        ];
        let kept = |rule: WidthRule| -> Vec<i64> {
            widths
                .iter()
                .zip(rates)
                .map(|(&c, r)| rule.kept(c, r, 1))
                .collect()
        };
        assert_eq!(
            kept(WidthRule::HRank),
            [4, 32, 64, 64, 128, 128, 128, 52, 52, 52, 52, 103, 103]
        );
        assert_eq!(
            kept(WidthRule::HRankPlus),
            [3, 32, 64, 64, 128, 128, 128, 51, 51, 51, 51, 102, 102]
        );
    }

    #[test]
    fn language_rates_give_exactly_the_wanted_widths() {
        for width in 1..=1100 {
            for rate in [0.0, 0.1, 0.25, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99] {
                let kept = WidthRule::HRank.kept(width, rate, 1);
                let r = language_rate(width, kept, rate);
                assert!((0.0..1.0).contains(&r), "{width} {rate}: {r}");
                assert_eq!(pruned_width(width, r, 1), kept, "{width} {rate}");
            }
        }
        assert_eq!(language_rate(64, 4, 0.95), 0.9375);
        assert_eq!(language_rate(512, 32, 0.9375), 0.9375);
    }

    #[test]
    fn the_shortest_rate_between_two_rates_is_the_simplest_that_gives_the_width() {
        let (lo, hi) = rates_keeping(64, 32);
        assert_eq!(
            rate_between(lo, hi, |r| pruned_width(64, r, 1) == 32),
            Some(0.5)
        );
        let (lo, hi) = rates_keeping(10, 7);
        assert_eq!(
            rate_between(lo, hi, |r| pruned_width(10, r, 1) == 7),
            Some(0.3)
        );
        let (lo, hi) = rates_keeping(512, 511);
        let r = rate_between(lo, hi, |r| pruned_width(512, r, 1) == 511).unwrap();
        assert_eq!(r, 0.001);
        let (lo, hi) = rates_keeping(7, 7);
        assert_eq!(
            rate_between(lo, hi, |r| pruned_width(7, r, 1) == 7),
            Some(0.0)
        );
    }

    #[test]
    fn the_highest_scores_survive_and_ties_go_to_the_lower_index() {
        let scores = [1.0, 3.0, 3.0, 0.0, 3.0, 2.0];
        assert_eq!(keep_highest(&scores, 2), [1, 2]);
        assert_eq!(keep_highest(&scores, 4), [1, 2, 4, 5]);
        assert_eq!(keep_highest(&scores, 6), [0, 1, 2, 3, 4, 5]);
        assert_eq!(keep_highest(&[0.0; 5], 3), [0, 1, 2]);
    }
}
