//! CI's guard against a gross slowdown of the fused inference paths: each one against its own
//! model's `forward_t(eval)` (the eager op sequence) in this process, at batches 1, 4, 16 and
//! 64; exits with 1 when any path at any batch is more than 20 % slower than its eager model: the
//! median of the per-iteration speed-ups (eager time / fused time) below 1/1.2. A guard, not a speed target: BENCHMARKS.md has the figures.
//! CI runs it under the machine's ISA and under the AVX2 emulation (`.ci/run`).
//!
//! Paths: the generated seed's `to_inference()`, the run-time `Network`'s (built from
//! `examples/vgg16_bn.vgg`), and the HRank-pruned example's. Kernels are tuned afresh (not from
//! the user's cache), in the warm-up. Options: `--batches 1,4,16,64`, `--iters 11` (fewer at
//! larger batches).
#[path = "support/interleave.rs"]
mod interleave;

use interleave::{interleave, machine, ratio, tuning_cost, Variant};
use vggdsl_runtime::inference::{use_kernel_cache, KernelCache};
use vggdsl_runtime::tch::{self, nn, nn::ModuleT, Device, Kind, Tensor};
use vggdsl_runtime::Network;

vggdsl_runtime::include_vgg!("vgg16_bn");
vggdsl_runtime::include_vgg!("hrank_vgg16_pruned");

/// How many times its eager model's time a fused path may take (median): 20 % slower.
const LIMIT: f64 = 1.2;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let batches: Vec<i64> = arg("--batches")
        .unwrap_or_else(|| "1,4,16,64".into())
        .split(',')
        .map(|b| b.trim().parse().expect("--batches: numbers such as 1,4"))
        .collect();
    let iters: usize = arg("--iters").map_or(11, |n| n.parse().expect("--iters N"));
    use_kernel_cache(KernelCache::open(None, "inference guard"));
    tch::manual_seed(0);
    let vs = nn::VarStore::new(Device::Cpu);
    let seed = Vgg16Bn::new(&vs.root());
    let seed_fast = seed.to_inference();
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/vgg16_bn.vgg");
    let mut rvs = nn::VarStore::new(Device::Cpu);
    let network = Network::from_file(&rvs.root(), file, None).expect("the seed loads");
    rvs.copy(&vs).expect("same names and shapes");
    let network_fast = network.to_inference();
    let pvs = nn::VarStore::new(Device::Cpu);
    let pruned = Vgg16BnHrank::new(&pvs.root());
    let pruned_fast = pruned.to_inference();
    println!(
        "inference guard, {} thread(s); {}",
        tch::get_num_threads(),
        machine()
    );
    println!("| batch | path | speed-up over its forward_t(eval), median (quartiles) |");
    println!("|---:|---|---|");
    let _guard = tch::no_grad_guard();
    let mut failed = Vec::new();
    for &b in &batches {
        let xs = Tensor::randn([b, 3, 32, 32], (Kind::Float, Device::Cpu));
        let variants: Vec<Variant> = vec![
            ("seed forward_t", Box::new(|| seed.forward_t(&xs, false))),
            ("seed to_inference()", Box::new(|| seed_fast.forward(&xs))),
            (
                "Network to_inference()",
                Box::new(|| network_fast.forward(&xs)),
            ),
            (
                "pruned forward_t",
                Box::new(|| pruned.forward_t(&xs, false)),
            ),
            (
                "pruned to_inference()",
                Box::new(|| pruned_fast.forward(&xs)),
            ),
        ];
        let n = (iters as f64 / (b as f64).sqrt().max(1.0) * 2.0).clamp(5.0, iters as f64);
        let times = interleave(&variants, n as usize);
        for (fused, eager) in [(1, 0), (2, 0), (4, 3)] {
            let r = ratio(&times[eager], &times[fused]);
            let slow = r[1] < 1.0 / LIMIT;
            println!(
                "| {b} | {} | {:.2}× ({:.2}–{:.2}){} |",
                variants[fused].0,
                r[1],
                r[0],
                r[2],
                if slow { " **too slow**" } else { "" }
            );
            if slow {
                failed.push(format!(
                    "{} at batch {b}: {:.2}× its eager speed",
                    variants[fused].0, r[1]
                ));
            }
        }
    }
    let (timed, cached, seconds, _) = tuning_cost();
    println!("kernel tuning: {timed} choices timed, {cached} from the cache, {seconds:.2} s");
    if !failed.is_empty() {
        eprintln!("inference guard: fused paths more than {LIMIT}× their eager model's time:");
        for f in &failed {
            eprintln!("  {f}");
        }
        std::process::exit(1);
    }
    println!("inference guard: every fused path within {LIMIT}× its eager model's time");
}
