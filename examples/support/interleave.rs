//! Timing variants side by side on a host whose speed drifts: each iteration runs every variant
//! once, in a new (seeded) order, so that each per-iteration ratio compares the same minute.
//! Shared by `bench.rs` and `inference_guard.rs`.
use std::time::Instant;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use vggdsl_runtime::inference::{tuning_log, Kernel};
use vggdsl_runtime::machine::cpu_model;
use vggdsl_runtime::ops;
use vggdsl_runtime::tch::Tensor;

/// A variant: its name and one forward pass on the batch.
pub type Variant<'a> = (&'static str, Box<dyn Fn() -> Tensor + 'a>);

/// First quartile, median and third quartile.
pub fn quartiles(mut v: Vec<f64>) -> [f64; 3] {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    [v[n / 4], v[n / 2], v[(3 * n) / 4]]
}

/// Seconds `f` takes, once.
pub fn time(f: &dyn Fn() -> Tensor) -> f64 {
    let start = Instant::now();
    drop(f());
    start.elapsed().as_secs_f64()
}

/// Runs `variants` in turn, in a new (seeded) order each iteration so that no variant always
/// follows the same one, after 3 warm-up passes each, and returns each one's times.
pub fn interleave(variants: &[Variant], iters: usize) -> Vec<Vec<f64>> {
    for (_, f) in variants {
        for _ in 0..3 {
            drop(f());
        }
    }
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut order: Vec<usize> = (0..variants.len()).collect();
    let mut times = vec![Vec::with_capacity(iters); variants.len()];
    for _ in 0..iters {
        order.shuffle(&mut rng);
        for &i in &order {
            times[i].push(time(&*variants[i].1));
        }
    }
    times
}

/// The quartiles of the per-iteration ratio `base` time / `variant` time.
pub fn ratio(base: &[f64], variant: &[f64]) -> [f64; 3] {
    quartiles(base.iter().zip(variant).map(|(b, v)| b / v).collect())
}

/// The CPU and the ISA in effect: `lscpu`'s model name, aten's capability, oneDNN's and MKL's
/// ceilings and the build of vggdsl's own kernels.
pub fn machine() -> String {
    let ceiling = |var| std::env::var(var).unwrap_or_else(|_| "none".into());
    let (onednn, mkl) = (
        ceiling("ONEDNN_MAX_CPU_ISA"),
        ceiling("MKL_ENABLE_INSTRUCTIONS"),
    );
    format!(
        "{} ({} CPUs): aten {}, oneDNN max ISA {onednn}, MKL max ISA {mkl}, vggdsl kernels {}",
        cpu_model(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        ops::cpu_capability(),
        ops::kernel_isa()
    )
}

/// What the kernel tuner chose and spent since it was last asked: `(choices timed, choices from
/// the cache, seconds, the kernel of each choice in turn as a letter: o(neDNN), w(inograd),
/// f (Winograd for few tiles), m(atrix), d(irect), a(ten))`.
pub fn tuning_cost() -> (usize, usize, f64, String) {
    let log = tuning_log();
    let timed = log.iter().filter(|r| !r.times.is_empty()).count();
    let seconds = log.iter().map(|r| r.seconds).sum();
    let letters = log.iter().map(|r| match r.chosen {
        Kernel::OneDnn => 'o',
        Kernel::Winograd => 'w',
        Kernel::WinogradFew => 'f',
        Kernel::Matrix => 'm',
        Kernel::Direct => 'd',
        Kernel::Aten => 'a',
    });
    (timed, log.len() - timed, seconds, letters.collect())
}
