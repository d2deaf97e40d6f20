//! One rate for every conv: the smallest that meets the limit.

use super::{first_fitting, Cost, Unreachable};
use crate::ir::pruned_width;
use crate::select::language_rate;

/// The widths of convs `widths` wide at the smallest single rate whose cost is at most `limit`,
/// widths rounded up to a multiple of `round_to`, and that rate.
///
/// The rates tried are those at which some conv's width changes (`1 − k/c` for every width `k`
/// of every conv `c`, made exact for the language's rule), up to the last that leaves every
/// conv a filter: between two of them no width changes, so the search misses no width, and the
/// rate before the one found gives no conv more than one filter more (one `round_to` step),
/// which the limit does not allow. Bisection: about log2 of their number of costs.
pub fn uniform(
    widths: &[i64],
    round_to: i64,
    cost: &mut Cost,
    limit: f64,
) -> Result<(Vec<i64>, f64), Unreachable> {
    let most = widths
        .iter()
        .map(|&c| language_rate(c, 1, 1.0 - 1.0 / c as f64))
        .fold(f64::MAX, f64::min);
    let mut rates: Vec<f64> = widths
        .iter()
        .flat_map(|&c| (1..=c).map(move |k| language_rate(c, k, 1.0 - k as f64 / c as f64)))
        .filter(|&r| r <= most)
        .collect();
    rates.sort_by(f64::total_cmp);
    rates.dedup();
    let at = |r: f64| -> Vec<i64> {
        widths
            .iter()
            .map(|&c| pruned_width(c, r, round_to))
            .collect()
    };
    match first_fitting(rates.len(), |i| cost(&at(rates[i])) <= limit) {
        Some(i) => Ok((at(rates[i]), rates[i])),
        None => Err(Unreachable {
            strategy: "uniform",
            least: cost(&at(most)),
            limit,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cost with a conv pair's product, like MACs of a conv reading the one before.
    fn macs(w: &[i64]) -> f64 {
        (3 * w[0] + w[0] * w[1] + w[1] * w[2] + w[2] * 10) as f64
    }

    #[test]
    fn the_smallest_rate_that_fits_and_no_filter_more() {
        let widths = [16, 24, 40];
        let full = macs(&widths);
        for share in [0.05, 0.2, 0.5, 0.77, 0.99, 1.0] {
            let limit = share * full;
            let (kept, rate) = uniform(&widths, 1, &mut |w| macs(w), limit).unwrap();
            assert!(macs(&kept) <= limit, "{share}");
            let more: Vec<i64> = kept
                .iter()
                .zip(widths)
                .map(|(k, c)| (k + 1).min(c))
                .collect();
            assert!(share == 1.0 || macs(&more) > limit, "{share}: {kept:?}");
            let at: Vec<i64> = widths.iter().map(|&c| pruned_width(c, rate, 1)).collect();
            assert_eq!(at, kept);
            // Every smaller rate, on a fine grid, breaks the limit.
            for i in 0..1000 {
                let r = rate * i as f64 / 1000.0;
                let w: Vec<i64> = widths.iter().map(|&c| pruned_width(c, r, 1)).collect();
                assert!(w == kept || macs(&w) > limit, "{share}: {r}");
            }
        }
    }

    #[test]
    fn rounded_widths_meet_the_limit_and_too_little_is_unreachable() {
        let widths = [16, 24, 40];
        let limit = 0.5 * macs(&widths);
        let (kept, _) = uniform(&widths, 8, &mut |w| macs(w), limit).unwrap();
        assert!(kept.iter().zip(widths).all(|(k, c)| k % 8 == 0 || *k == c));
        assert!(macs(&kept) <= limit);
        let e = uniform(&widths, 1, &mut |w| macs(w), 10.0).unwrap_err();
        // The most any single rate prunes leaves 16 · 1/16 = 1, 24 → 1, 40 → 2 filters.
        assert_eq!(e.least, macs(&[1, 1, 2]));
    }
}
