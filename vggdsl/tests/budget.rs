//! Widths for a budget on a tiny model, against references computed another way: the global
//! ranking against an enumeration of every set of removed filters; every strategy's widths meet
//! the target, and one filter more in every conv does not.

use vggdsl::budget::{self, Normalise, Point};
use vggdsl::Architecture;

/// 11 filters in three convs: 2^11 sets of removed filters to enumerate.
fn tiny() -> Architecture {
    vggdsl::check_source("model T { input = [1, 8, 8] cfg = [4, M, 3, M, 4, 8] }")
        .unwrap()
        .remove(0)
}

fn macs(net: &Architecture, widths: &[i64]) -> f64 {
    budget::figures(net, widths).1 as f64
}

/// Distinct scores on three scales, as ranks on 8×8, 4×4 and 2×2 maps would be.
fn scores() -> Vec<Vec<f64>> {
    vec![
        vec![7.5, 2.0, 6.0, 3.5],
        vec![3.9, 1.1, 2.5],
        vec![1.9, 0.7, 1.3, 1.6],
    ]
}

/// Every filter's score divided by its conv's mean, computed here by hand from the list above.
fn by_hand() -> Vec<Vec<f64>> {
    let means = [19.0 / 4.0, 7.5 / 3.0, 5.5 / 4.0];
    scores()
        .iter()
        .zip(means)
        .map(|(s, m)| s.iter().map(|x| x / m).collect())
        .collect()
}

/// The reference: of every set of removed filters that leaves each conv a filter and meets the
/// limit, the smallest whose removed filters all score below every kept one, except a conv's
/// last filter, which is kept whatever it scores.
fn brute_force(net: &Architecture, normalised: &[Vec<f64>], limit: f64) -> Option<Vec<i64>> {
    let filters: Vec<(usize, f64)> = normalised
        .iter()
        .enumerate()
        .flat_map(|(c, s)| s.iter().map(move |&x| (c, x)))
        .collect();
    let mut best: Option<(u32, Vec<i64>)> = None;
    for removed in 0u32..1 << filters.len() {
        let mut widths: Vec<i64> = normalised.iter().map(|s| s.len() as i64).collect();
        for (f, &(c, _)) in filters.iter().enumerate() {
            widths[c] -= i64::from(removed >> f & 1);
        }
        if widths.contains(&0) || macs(net, &widths) > limit {
            continue;
        }
        let is_removed = |f: usize| removed >> f & 1 == 1;
        let cut = (0..filters.len()).filter(|&f| is_removed(f)).all(|f| {
            (0..filters.len())
                .filter(|&g| !is_removed(g))
                .all(|g| filters[g].1 > filters[f].1 || widths[filters[g].0] == 1)
        });
        if cut && best.as_ref().is_none_or(|(n, _)| removed.count_ones() < *n) {
            best = Some((removed.count_ones(), widths));
        }
    }
    best.map(|(_, w)| w)
}

#[test]
fn global_ranking_with_normalisation_equals_the_enumeration() {
    let net = tiny();
    let full = macs(&net, &[4, 3, 4]);
    let mut differs = false;
    for share in [0.15, 0.3, 0.45, 0.6, 0.75, 0.9] {
        let limit = share * full;
        let mean = budget::global(&scores(), Normalise::Mean, 1, &mut |w| macs(&net, w), limit);
        assert_eq!(mean.ok(), brute_force(&net, &by_hand(), limit), "{share}");
        let raw = budget::global(&scores(), Normalise::None, 1, &mut |w| macs(&net, w), limit);
        assert_eq!(
            raw.clone().ok(),
            brute_force(&net, &scores(), limit),
            "{share}"
        );
        differs |= raw.ok() != brute_force(&net, &by_hand(), limit);
    }
    // Unnormalised, the last conv's small numbers lose it its filters first.
    assert!(differs);
}

/// Widths meet `limit`, and one filter more in every conv (where it has one more) does not.
fn tight(net: &Architecture, widths: &[i64], limit: f64, step: i64) {
    let full: Vec<i64> = net.convs().map(|(.., c)| c).collect();
    assert!(macs(net, widths) <= limit, "{widths:?}");
    let more: Vec<i64> = widths
        .iter()
        .zip(&full)
        .map(|(&w, &c)| (w + step).min(c))
        .collect();
    assert!(more == full || macs(net, &more) > limit, "{widths:?}");
}

#[test]
fn every_strategy_meets_its_target_within_one_filter_per_conv() {
    let net = tiny();
    let full: Vec<i64> = net.convs().map(|(.., c)| c).collect();
    let curves: Vec<Vec<Point>> = full
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            (1..c)
                .map(|k| Point {
                    width: k,
                    drop: (c - k) as f64 * (i + 1) as f64 / 10.0,
                })
                .collect()
        })
        .collect();
    // Between the least any strategy reaches (one filter a conv, two when rounded) and all.
    let (least, most) = (macs(&net, &[2, 2, 2]), macs(&net, &full));
    for round_to in [1, 2] {
        for share in [0.1, 0.3, 0.5, 0.7, 0.9] {
            let limit = least + share * (most - least);
            let mut cost = |w: &[i64]| macs(&net, w);
            let (w, _) = budget::uniform(&full, round_to, &mut cost, limit).unwrap();
            tight(&net, &w, limit, round_to);
            let w = budget::global(&scores(), Normalise::Mean, round_to, &mut cost, limit);
            tight(&net, &w.unwrap(), limit, round_to);
            let w = budget::sensitivity(&full, &curves, round_to, &mut cost, limit).unwrap();
            tight(&net, &w, limit, round_to);
        }
    }
}
