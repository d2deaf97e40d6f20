//! Training throughput of `vggdsl train` on the seed network against the seed's eager PyTorch
//! loop, interleaved in one run (TRAINING.md has the figures and the method).
//!
//! The vggdsl side is `vggdsl train`'s step: the run-time `Network` built from
//! `examples/vgg16_bn.vgg`, fed by the data loader (CIFAR-10 binary files of synthetic images,
//! HRank's crop and flip on a background thread) and stepped by `trainer::train_step` (forward,
//! cross-entropy, backward, the PyTorch-exact SGD), in a process with `vggdsl train`'s malloc
//! setting (`vggdsl_runtime::memory`). Two long-lived PyTorch processes (`bench/train_bench.py`),
//! driven through pipes, run the seed's eager loop: one as PyTorch runs by default, one with the
//! same malloc setting. Each round runs a burst of steps on each of the three sides in turn (who
//! goes first rotates), so all see the same minute of a machine whose speed drifts; a result is
//! the median over rounds of each round's ratio of median step times.
//! Then the cost of a CIFAR-10 epoch (391 steps of 128 and the 10,000-image test pass),
//! extrapolated from the measured step and test-pass times.
//!
//! Options: `--threads N` (2), `--rounds N` (8), `--steps N` per burst (5), `--batch N` (128),
//! `--script PATH` (a copy of `bench/train_bench.py`, with `malloc.py` beside it and
//! `../test-support/python/seed_vgg.py`).

use std::io::{BufRead, BufReader, Write};
use std::num::NonZeroUsize;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use vggdsl_runtime::tch::{self, nn::VarStore, Device};
use vggdsl_runtime::Network;
use vggdsl_test_support::{cifar, pytorch};
use vggdsl_train::data::{Augment, Batches, Dataset, ImageSet, Split};
use vggdsl_train::sgd::{Sgd, SgdConfig};
use vggdsl_train::trainer::{self, EVAL_BATCH};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().expect("a number"))
}

/// The median (the upper one of an even count).
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let threads = arg("--threads", 2);
    let rounds = arg("--rounds", 8);
    let steps = arg("--steps", 5);
    let batch = arg("--batch", 128);
    tch::set_num_threads(threads as i32);
    // As `vggdsl train` does.
    if !vggdsl_runtime::memory::reuse_freed_memory() {
        println!("(glibc refused the 1 GiB mmap threshold: blocks above 32 MiB keep mappings)");
    }

    let data = vggdsl_test_support::tempdir();
    // 5 × 1,024 training images, 2,560 test images.
    cifar::write_cifar10(data.path(), 1024, 2560);
    let train_set = ImageSet::load(Dataset::Cifar10, Split::Train, data.path()).unwrap();
    let test_set = ImageSet::load(Dataset::Cifar10, Split::Test, data.path()).unwrap();

    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/vgg16_bn.vgg");
    let ir = vggdsl_runtime::load_models(file).unwrap().remove(0);
    tch::manual_seed(0);
    let vs = VarStore::new(Device::Cpu);
    let net = Network::new(&vs.root(), &ir);
    let recipe = vggdsl::spec::Recipe::default();
    let mut sgd = Sgd::new(
        &vs,
        SgdConfig {
            momentum: recipe.momentum,
            weight_decay: recipe.weight_decay,
            nesterov: recipe.nesterov,
        },
    );
    let batch_size = NonZeroUsize::new(batch).unwrap();
    let mut epoch = 0;
    let mut loader: Batches = train_set.epoch(batch_size, Augment::HRANK, 0, epoch);
    // A step as `vggdsl train` takes it, the wait for the loader's batch included.
    let mut rust_step = || {
        let t = Instant::now();
        let b = loader.next().unwrap_or_else(|| {
            epoch += 1;
            loader = train_set.epoch(batch_size, Augment::HRANK, 0, epoch);
            loader.next().unwrap()
        });
        trainer::train_step(&net, &mut sgd, &b, recipe.lr).unwrap();
        t.elapsed().as_secs_f64()
    };

    let script = std::env::args()
        .skip_while(|a| a != "--script")
        .nth(1)
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/bench/train_bench.py").into());
    let mut torch = [false, true].map(|reuse| Torch::spawn(&script, threads, batch, reuse));

    // Warm-up: allocator, oneDNN primitives, the loader's first batches.
    for _ in 0..2 {
        rust_step();
    }
    for t in &mut torch {
        t.steps(2);
    }

    println!(
        "seed network, batch {batch}, {threads} threads, {rounds} rounds of {steps} steps per side"
    );
    let r = interleaved(&mut rust_step, &mut torch, rounds, steps, batch);
    for t in torch {
        t.quit();
    }

    extrapolate(&net, &test_set, r, batch);
}

/// A CIFAR-10 epoch's time from the median step `r` and a test pass over `test_set` (scaled to
/// CIFAR-10's 10,000 test images), and the seed's 150 epochs.
fn extrapolate(net: &Network, test_set: &ImageSet, r: f64, batch: usize) {
    let t = Instant::now();
    let eval_batch = NonZeroUsize::new(EVAL_BATCH).unwrap();
    let stop = AtomicBool::new(false);
    trainer::evaluate(net, test_set, eval_batch, &stop, &mut |_, _| {}).unwrap();
    let test_pass = t.elapsed().as_secs_f64() * 10_000.0 / test_set.len() as f64;
    let steps_per_epoch = 50_000usize.div_ceil(batch);
    let epoch_seconds = steps_per_epoch as f64 * r + test_pass;
    println!(
        "CIFAR-10 epoch, extrapolated: {steps_per_epoch} steps × {:.1} ms + test pass {:.0} s \
         = {:.1} min; the seed's 150 epochs ≈ {:.1} h",
        r * 1e3,
        test_pass,
        epoch_seconds / 60.0,
        150.0 * epoch_seconds / 3600.0
    );
}

/// `rounds` rounds in which vggdsl and the two PyTorch processes take `steps` steps each, in
/// turns; prints each round's medians and ratios, then the medians of all steps and of the
/// ratios. Returns vggdsl's median step in seconds.
fn interleaved(
    rust_step: &mut dyn FnMut() -> f64,
    torch: &mut [Torch; 2],
    rounds: usize,
    steps: usize,
    batch: usize,
) -> f64 {
    println!("round  vggdsl step  PyTorch step  ratio   PyTorch, same malloc  ratio");
    let mut ratios = [Vec::new(), Vec::new()];
    let mut all = [Vec::new(), Vec::new(), Vec::new()];
    for round in 0..rounds {
        // The three sides take turns; who goes first rotates with the round.
        let mut times: [Vec<f64>; 3] = Default::default();
        for side in (0..3).map(|i| (i + round) % 3) {
            times[side] = match side {
                0 => (0..steps).map(|_| rust_step()).collect(),
                s => torch[s - 1].steps(steps),
            };
        }
        let [r, t, same] = times.each_ref().map(|v| median(v.clone()));
        println!(
            "{round:>5}  {:>9.1} ms  {:>10.1} ms  {:.3}×  {:>18.1} ms  {:.3}×",
            r * 1e3,
            t * 1e3,
            t / r,
            same * 1e3,
            same / r
        );
        ratios[0].push(t / r);
        ratios[1].push(same / r);
        for (a, v) in all.iter_mut().zip(times) {
            a.extend(v);
        }
    }
    let [r, t, same] = all.map(median);
    println!(
        "median step: vggdsl {:.1} ms ({:.1} images/s), PyTorch eager {:.1} ms ({:.1} images/s), \
         PyTorch eager with vggdsl's malloc setting {:.1} ms ({:.1} images/s)",
        r * 1e3,
        batch as f64 / r,
        t * 1e3,
        batch as f64 / t,
        same * 1e3,
        batch as f64 / same
    );
    for (against, ratios) in [
        "eager PyTorch",
        "eager PyTorch with the same malloc setting",
    ]
    .iter()
    .zip(ratios)
    {
        println!(
            "vggdsl vs {against}: {:.3}× (median of the rounds' ratios; min {:.3}×, max {:.3}×)",
            median(ratios.clone()),
            ratios.iter().copied().fold(f64::INFINITY, f64::min),
            ratios.iter().copied().fold(0.0, f64::max)
        );
    }
    r
}

/// A long-lived `bench/train_bench.py` process, driven through a pipe.
struct Torch {
    child: Child,
    to_py: ChildStdin,
    from_py: BufReader<ChildStdout>,
}

impl Torch {
    /// Starts the PyTorch side; `reuse_freed_memory` gives it the malloc setting that
    /// `vggdsl train` uses (`vggdsl_runtime::memory`).
    fn spawn(script: &str, threads: usize, batch: usize, reuse_freed_memory: bool) -> Torch {
        let mut child = Command::new(pytorch::interpreter())
            .args([script, &threads.to_string(), &batch.to_string()])
            .args(reuse_freed_memory.then_some("--reuse-freed-memory"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python runs");
        let mut torch = Torch {
            to_py: child.stdin.take().unwrap(),
            from_py: BufReader::new(child.stdout.take().unwrap()),
            child,
        };
        println!("PyTorch: {}", torch.read_line());
        torch
    }

    fn read_line(&mut self) -> serde_json::Value {
        let mut line = String::new();
        self.from_py.read_line(&mut line).unwrap();
        serde_json::from_str(&line).expect("train_bench.py answers JSON")
    }

    /// Runs `n` steps; their wall times in seconds.
    fn steps(&mut self, n: usize) -> Vec<f64> {
        writeln!(self.to_py, "steps {n}").unwrap();
        self.to_py.flush().unwrap();
        serde_json::from_value(self.read_line()).unwrap()
    }

    fn quit(mut self) {
        writeln!(self.to_py, "quit").unwrap();
        self.child.wait().unwrap();
    }
}
