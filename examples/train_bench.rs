//! Training throughput of `vggdsl train` on the seed network against the seed's eager PyTorch
//! loop, interleaved in one run (TRAINING.md has the figures and the method).
//!
//! The vggdsl side is `vggdsl train`'s step: the run-time `Network` built from
//! `examples/vgg16_bn.vgg`, fed by the data loader (CIFAR-10 binary files of synthetic images,
//! HRank's crop and flip on a background thread) and stepped by `train::train_step` (forward,
//! cross-entropy, backward, the PyTorch-exact SGD). The PyTorch side (`bench/train_bench.py`) is a
//! long-lived process driven through a pipe. Each round runs a burst of steps on one side, then
//! on the other (which side goes first alternates), so both see the same minute of a machine whose
//! speed drifts; the result is the median over rounds of each round's ratio of median step times.
//! Then the cost of a CIFAR-10 epoch (391 steps of 128 and the 10,000-image test pass),
//! extrapolated from the measured step and test-pass times.
//!
//! Options: `--threads N` (2), `--rounds N` (8), `--steps N` per burst (5), `--batch N` (128),
//! `--script PATH` (a copy of `bench/train_bench.py`, with `../tests/python/seed_vgg.py` beside it).

#[path = "../tests/support/cifar.rs"]
mod cifar;

use std::io::{BufRead, BufReader, Write};
use std::num::NonZeroUsize;
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use vggdsl_runtime::data::{Augment, Batches, Dataset, ImageSet, Split};
use vggdsl_runtime::tch::{self, nn::VarStore, Device};
use vggdsl_runtime::train::{self, Sgd, SgdConfig, EVAL_BATCH};
use vggdsl_runtime::Network;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().expect("a number"))
}

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

    let data = tempfile::tempdir().unwrap();
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
        train::train_step(&net, &mut sgd, &b, recipe.lr).unwrap();
        t.elapsed().as_secs_f64()
    };

    let python = std::env::var("VGGDSL_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = std::env::args()
        .skip_while(|a| a != "--script")
        .nth(1)
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/bench/train_bench.py").into());
    let mut child = Command::new(python)
        .args([script.as_str(), &threads.to_string(), &batch.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python runs");
    let mut to_py = child.stdin.take().unwrap();
    let mut from_py = BufReader::new(child.stdout.take().unwrap());
    let mut read_line = || {
        let mut line = String::new();
        from_py.read_line(&mut line).unwrap();
        serde_json::from_str::<serde_json::Value>(&line).expect("train_bench.py answers JSON")
    };
    println!("PyTorch: {}", read_line());
    let mut torch_steps = |n: usize| -> Vec<f64> {
        writeln!(to_py, "steps {n}").unwrap();
        to_py.flush().unwrap();
        serde_json::from_value(read_line()).unwrap()
    };

    // Warm-up: allocator, oneDNN primitives, the loader's first batches.
    for _ in 0..2 {
        rust_step();
    }
    torch_steps(2);

    println!(
        "seed network, batch {batch}, {threads} threads, {rounds} rounds of {steps} steps per side"
    );
    println!("round  vggdsl step  PyTorch step  ratio");
    let (mut ratios, mut all_rust, mut all_torch) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let (rust, torch) = if round % 2 == 0 {
            let rust: Vec<f64> = (0..steps).map(|_| rust_step()).collect();
            (rust, torch_steps(steps))
        } else {
            let torch = torch_steps(steps);
            ((0..steps).map(|_| rust_step()).collect(), torch)
        };
        let (r, t) = (median(rust.clone()), median(torch.clone()));
        println!(
            "{round:>5}  {:>9.1} ms  {:>10.1} ms  {:.3}×",
            r * 1e3,
            t * 1e3,
            t / r
        );
        ratios.push(t / r);
        all_rust.extend(rust);
        all_torch.extend(torch);
    }
    writeln!(to_py, "quit").unwrap();
    child.wait().unwrap();
    let (r, t) = (median(all_rust), median(all_torch));
    println!(
        "median step: vggdsl {:.1} ms ({:.1} images/s), PyTorch eager {:.1} ms ({:.1} images/s)",
        r * 1e3,
        batch as f64 / r,
        t * 1e3,
        batch as f64 / t
    );
    println!(
        "vggdsl vs eager PyTorch: {:.3}× (median of the rounds' ratios; min {:.3}×, max {:.3}×)",
        median(ratios.clone()),
        ratios.iter().copied().fold(f64::INFINITY, f64::min),
        ratios.iter().copied().fold(0.0, f64::max)
    );

    // The test pass of an epoch, on the synthetic test images, scaled to CIFAR-10's 10,000.
    let t = Instant::now();
    let eval_batch = NonZeroUsize::new(EVAL_BATCH).unwrap();
    let stop = AtomicBool::new(false);
    train::evaluate(&net, &test_set, eval_batch, &stop, &mut |_, _| {}).unwrap();
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
