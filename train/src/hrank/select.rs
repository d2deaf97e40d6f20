//! Which filters each conv keeps, by a [`Criterion`]: the torch-free rules (how many a rate
//! keeps, the highest scores with ties to the lower index) are [`vggdsl::select`]'s; here are the
//! scores that need the network (L1 norms of its kernels) and random choices, from a seeded
//! ChaCha8 generator, never from libtorch's.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{Kind, Tensor};
use vggdsl::select::keep_highest;
use vggdsl_runtime::{Layer, Network};

/// What decides which filters of a conv survive; the others are removed.
#[derive(Debug, Clone, PartialEq)]
pub enum Criterion<'a> {
    /// The highest mean feature-map rank (HRank), one score list per conv.
    Rank(Vec<&'a [f64]>),
    /// The largest L1 norm of the filter's kernel (its weights summed in absolute value).
    L1,
    /// A uniformly random choice, per conv in order, from ChaCha8 seeded with this.
    Random(u64),
    /// The highest of scores computed elsewhere ([`crate::criteria`]), one list per conv.
    Scores(Vec<Vec<f64>>),
}

/// The surviving filter indices of each conv of `net`, ascending: `keep[i]` of conv `i`'s filters,
/// chosen by `criterion`.
pub fn choose(net: &Network, keep: &[i64], criterion: &Criterion) -> Vec<Vec<i64>> {
    let widths: Vec<i64> = net.ir().convs().map(|(.., c)| c).collect();
    assert_eq!(keep.len(), widths.len(), "one width per conv");
    match (scores(net, criterion), criterion) {
        (Some(scores), _) => scores
            .iter()
            .zip(keep)
            .map(|(s, &k)| keep_highest(s, k as usize))
            .collect(),
        (None, Criterion::Random(seed)) => {
            let mut rng = ChaCha8Rng::seed_from_u64(*seed);
            widths
                .iter()
                .zip(keep)
                .map(|(&width, &k)| {
                    let mut order: Vec<i64> = (0..width).collect();
                    order.shuffle(&mut rng);
                    order.truncate(k as usize);
                    order.sort_unstable();
                    order
                })
                .collect()
        }
        (None, _) => unreachable!("every criterion but a random choice scores filters"),
    }
}

/// Each conv's filter scores under `criterion` (the highest survive), one list per conv; `None`
/// for a random choice, which scores nothing.
pub fn scores(net: &Network, criterion: &Criterion) -> Option<Vec<Vec<f64>>> {
    match criterion {
        Criterion::Rank(scores) => Some(scores.iter().map(|s| s.to_vec()).collect()),
        Criterion::Scores(scores) => Some(scores.clone()),
        Criterion::L1 => Some(
            net.ir()
                .convs()
                .map(|(_, name, _)| {
                    let path = vggdsl::names::module_path(vggdsl::names::FEATURES, name);
                    let Some(Layer::Conv2d(conv)) = net.layer(&path) else {
                        unreachable!("{path} is a conv of this network")
                    };
                    filter_l1(&conv.weight)
                })
                .collect(),
        ),
        Criterion::Random(_) => None,
    }
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
