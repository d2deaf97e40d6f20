//! Picking a conv's kernel by timing the candidates on the batch at hand, cuDNN's benchmark mode
//! for oneDNN, Winograd's form and the matrix form: once per layer shape, batch-size class and
//! thread count on a machine, the choice kept in [`KernelCache`] for the next process.

use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use tch::Tensor;

use super::{Kernel, KernelCache};

/// Timed rounds after the warm-up run, at least and at most; every round runs each remaining
/// candidate once, in turn. Best times of a few rounds can still be one burst of another
/// process's work, so cheap layers take more rounds.
const ROUNDS: (usize, usize) = (2, 9);

/// After the first rounds, timing stops once the timed runs have taken this long (seconds).
const BUDGET: f64 = 0.05;

/// From then on, after each round, candidates slower than this many times the fastest drop out.
const DROP_AFTER: f64 = 1.5;

/// One choice of a kernel for a layer and size class: what was timed, what was chosen, and what
/// it cost.
#[derive(Debug, Clone)]
pub struct TuningRecord {
    /// The layer and situation, as the cache keys them (threads, shape, map, batch class).
    pub key: String,
    /// The batch size that was timed (a batch above 64 images is timed on its first 64).
    pub batch: i64,
    /// The best time of each candidate timed (seconds); empty when the cache had the choice.
    pub times: Vec<(Kernel, f64)>,
    pub chosen: Kernel,
    /// The wall time the choice took, warm-up included (seconds).
    pub seconds: f64,
}

/// The choices of this process, from the user's cache folder unless [`use_kernel_cache`] set
/// another.
static CACHE: Mutex<Option<KernelCache>> = Mutex::new(None);

/// Every choice made since the last [`tuning_log`].
static LOG: Mutex<Vec<TuningRecord>> = Mutex::new(Vec::new());

/// Keeps this process's choices in `cache` from now on (tests: a cache in a temporary folder,
/// or none: `KernelCache::open(None, …)`).
pub fn use_kernel_cache(cache: KernelCache) {
    *CACHE.lock().unwrap_or_else(|e| e.into_inner()) = Some(cache);
}

/// The choices made (timed or found in the cache) since the last call, in order: what tuning
/// cost, and what it chose.
pub fn tuning_log() -> Vec<TuningRecord> {
    std::mem::take(&mut *LOG.lock().unwrap_or_else(|e| e.into_inner()))
}

/// The fastest of `candidates` for `key`, from the cache or by timing `run` on each. `batch` is
/// the batch size `run` computes, for the record; `read_input` reads what `run` reads besides
/// the layer's weights.
pub(super) fn choose(
    key: &str,
    batch: i64,
    candidates: &[Kernel],
    read_input: &dyn Fn(),
    run: &dyn Fn(Kernel) -> Tensor,
) -> Kernel {
    let start = Instant::now();
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    let cache = cache.get_or_insert_with(KernelCache::for_this_machine);
    let (chosen, times) = match cache.get(key).filter(|k| candidates.contains(k)) {
        Some(kernel) => (kernel, Vec::new()),
        None => {
            let times = time(candidates, read_input, run);
            let fastest = times
                .iter()
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .map_or(Kernel::OneDnn, |&(k, _)| k);
            cache.insert(key, fastest);
            (fastest, times)
        }
    };
    LOG.lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(TuningRecord {
            key: key.to_owned(),
            batch,
            times,
            chosen,
            seconds: start.elapsed().as_secs_f64(),
        });
    chosen
}

/// Each candidate's best time over the rounds, after one untimed run each (packing, oneDNN's
/// primitive, the Winograd or matrix form are made there). The candidates take turns, so that
/// a drifting machine hits them alike; clear losers stop early, and the rounds stop at a time
/// budget, which bounds the cost: `1 + ROUNDS.0` runs of each candidate for a slow layer.
///
/// Each timed run finds the input in the caches and the weights not ([`evict_caches`], then
/// `read_input`), as in a pass, where the other layers' weights pass through the caches in
/// between: timed with its weights cached, Winograd's form (16/9 the bytes of the weights) won
/// on the seed's conv10 at batch 1 and then ran at half the speed of oneDNN's kernel in the pass.
fn time(
    candidates: &[Kernel],
    read_input: &dyn Fn(),
    run: &dyn Fn(Kernel) -> Tensor,
) -> Vec<(Kernel, f64)> {
    for &k in candidates {
        drop(run(k));
    }
    let mut best: Vec<(Kernel, f64)> = candidates.iter().map(|&k| (k, f64::INFINITY)).collect();
    let mut running = vec![true; best.len()];
    let mut timed = 0.0;
    for round in 1..=ROUNDS.1 {
        for (i, (k, t)) in best.iter_mut().enumerate() {
            if running[i] {
                evict_caches();
                read_input();
                let start = Instant::now();
                drop(run(*k));
                let seconds = start.elapsed().as_secs_f64();
                *t = t.min(seconds);
                timed += seconds;
            }
        }
        if round < ROUNDS.0 {
            continue;
        }
        let fastest = best.iter().map(|b| b.1).fold(f64::INFINITY, f64::min);
        for (i, (_, t)) in best.iter().enumerate() {
            running[i] &= *t <= DROP_AFTER * fastest;
        }
        if timed > BUDGET || running.iter().filter(|&&r| r).count() < 2 {
            break;
        }
    }
    best
}

/// Reads a buffer of twice the last-level cache (Linux's sysfs; 32 MiB if it doesn't say) on
/// every thread, which leaves the caches holding that buffer and nothing of the layer.
fn evict_caches() {
    static BYTES: OnceLock<usize> = OnceLock::new();
    crate::ops::evict_caches(*BYTES.get_or_init(|| 2 * last_level_cache().unwrap_or(32 << 20)));
}

/// The size of CPU 0's largest cache, in bytes, as Linux's sysfs gives it (`32768K`).
fn last_level_cache() -> Option<usize> {
    (0..8)
        .filter_map(|i| {
            let size = std::fs::read_to_string(format!(
                "/sys/devices/system/cpu/cpu0/cache/index{i}/size"
            ))
            .ok()?;
            let size = size.trim();
            let (digits, unit) = size.split_at(size.find(|c: char| !c.is_ascii_digit())?);
            let scale = match unit {
                "K" => 1 << 10,
                "M" => 1 << 20,
                _ => return None,
            };
            digits.parse::<usize>().ok().map(|n| n * scale)
        })
        .max()
}
