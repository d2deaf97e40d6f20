//! Which filters each conv keeps: how many (a rate and a [`WidthRule`]) and which ones (a
//! [`Criterion`]). Every choice is a pure function of its inputs: ties go to the lower filter
//! index, so no result depends on a sort's stability, and random choices come from a seeded
//! ChaCha8 generator, never from libtorch's.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{Kind, Tensor};

use crate::network::Layer;
use crate::Network;

/// How many of a conv's `c` filters a rate `r` keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WidthRule {
    /// HRankPlus's `int(c·(1 − r))`, which is what the language's `compress_rate` builds
    /// ([`vggdsl::ir::pruned_width`]).
    #[default]
    HRankPlus,
    /// HRank's `c − int(r·c)` (its `argsort(rank)[int(r·c):]`), one more filter for some rates.
    HRank,
}

impl WidthRule {
    pub fn kept(self, width: i64, rate: f64) -> i64 {
        match self {
            WidthRule::HRankPlus => vggdsl::ir::pruned_width(width, rate),
            WidthRule::HRank => width - (rate * width as f64) as i64,
        }
    }
}

/// A rate that the language's `compress_rate` turns into exactly `kept` of `width` filters:
/// `rate` itself when it already does, else `1 − kept/width`, lowered by the few ulps that
/// floating point may need. `kept` must be in `1..=width`.
pub fn language_rate(width: i64, kept: i64, rate: f64) -> f64 {
    if vggdsl::ir::pruned_width(width, rate) == kept {
        return rate;
    }
    let mut r = 1.0 - kept as f64 / width as f64;
    while vggdsl::ir::pruned_width(width, r) < kept {
        r = f64::from_bits(r.to_bits() - 1);
    }
    r.max(0.0)
}

/// The output channels of each conv of `ir`, in order.
pub fn conv_widths(ir: &vggdsl::Network) -> Vec<i64> {
    super::convs(ir).iter().map(|&(.., c)| c).collect()
}

/// What decides which filters of a conv survive; the others are removed.
#[derive(Debug, Clone, PartialEq)]
pub enum Criterion<'a> {
    /// The highest mean feature-map rank (HRank), one score list per conv.
    Rank(Vec<&'a [f64]>),
    /// The largest L1 norm of the filter's kernel (its weights summed in absolute value).
    L1,
    /// A uniformly random choice, per conv in order, from ChaCha8 seeded with this.
    Random(u64),
}

/// The surviving filter indices of each conv of `net`, ascending: `keep[i]` of conv `i`'s filters,
/// chosen by `criterion`.
pub fn choose(net: &Network, keep: &[i64], criterion: &Criterion) -> Vec<Vec<i64>> {
    let convs = super::convs(net.ir());
    assert_eq!(keep.len(), convs.len(), "one width per conv");
    let mut rng = match criterion {
        Criterion::Random(seed) => Some(ChaCha8Rng::seed_from_u64(*seed)),
        _ => None,
    };
    convs
        .iter()
        .zip(keep)
        .enumerate()
        .map(|(i, (&(_, name, width), &k))| match criterion {
            Criterion::Rank(scores) => keep_highest(scores[i], k as usize),
            Criterion::L1 => {
                let path = vggdsl::names::module_path(vggdsl::names::FEATURES, name);
                let Some(Layer::Conv2d(conv)) = net.layer(&path) else {
                    unreachable!("{path} is a conv of this network")
                };
                keep_highest(&filter_l1(&conv.weight), k as usize)
            }
            Criterion::Random(_) => {
                let rng = rng.as_mut().expect("seeded for Criterion::Random");
                let mut order: Vec<i64> = (0..width).collect();
                order.shuffle(rng);
                order.truncate(k as usize);
                order.sort_unstable();
                order
            }
        })
        .collect()
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

/// The L1 norm of each output filter of a conv weight `[out, in, k, k]`, summed in f64.
pub fn filter_l1(weight: &Tensor) -> Vec<f64> {
    let norms = tch::no_grad(|| {
        weight.abs().to_kind(Kind::Double).sum_dim_intlist(
            [1, 2, 3].as_slice(),
            false,
            Kind::Double,
        )
    });
    Vec::<f64>::try_from(&norms).expect("a double vector")
}
