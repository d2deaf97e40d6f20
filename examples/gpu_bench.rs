//! `to_inference()` against eager `forward_t(eval)` on one device, for `scripts/gpu-check.sh`:
//! the generated seed (`examples/vgg16_bn.vgg`) and the run-time `Network` of the same file, on
//! random CIFAR-sized batches, interleaved iteration by iteration; prints the medians (and
//! quartiles) of the per-iteration speed-ups, after checking that the fused and the eager outputs
//! agree (within 1e-3 of the largest logit: cuDNN may run convolutions in TF32).
//!
//! Options: `--device cpu|cuda|cuda:N` (default cuda:0), `--batches 1,16,64`, `--iters 21`;
//! `--cuda-devices` only prints how many CUDA devices libtorch sees.
#[path = "support/interleave.rs"]
mod interleave;

use interleave::{interleave, machine, ratio, tuning_cost, Variant};
use vggdsl_runtime::tch::{self, nn, nn::ModuleT, Cuda, Device, Kind, Tensor};
use vggdsl_runtime::{device, Network};

vggdsl_runtime::include_vgg!("vgg16_bn");

/// How far the fused logits may be from the eager ones, relative to the largest eager logit.
const TOLERANCE: f64 = 1e-3;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// `--device`, checked to be there.
fn device() -> Device {
    let text = arg("--device").unwrap_or_else(|| "cuda:0".into());
    device::parse(&text)
        .map_err(|e| format!("--device: {e}"))
        .and_then(|d| device::available(d).map_err(|e| format!("--device {e}")))
        .unwrap_or_else(|e| fail(&e))
}

fn fail(sentence: &str) -> ! {
    eprintln!("error: {sentence}");
    std::process::exit(1)
}

/// `ys` once the device has computed it: a GPU's calls return before.
fn finished(device: Device, ys: Tensor) -> Tensor {
    device::synchronize(device);
    ys
}

/// `--batches` (default 1, 16, 64) and `--iters` (default 21).
fn sizes() -> (Vec<i64>, usize) {
    let batches = arg("--batches")
        .unwrap_or_else(|| "1,16,64".into())
        .split(',')
        .map(|b| {
            b.trim()
                .parse()
                .unwrap_or_else(|_| fail("--batches: numbers such as 1,16"))
        })
        .collect();
    let iters = arg("--iters").map_or(21, |n| {
        n.parse().unwrap_or_else(|_| fail("--iters: a number"))
    });
    (batches, iters)
}

fn main() {
    if std::env::args().any(|a| a == "--cuda-devices") {
        println!("{}", Cuda::device_count());
        return;
    }
    let device = device();
    let (batches, iters) = sizes();

    tch::manual_seed(0);
    let vs = nn::VarStore::new(device);
    let seed = Vgg16Bn::new(&vs.root());
    let seed_fast = seed.to_inference();
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/vgg16_bn.vgg");
    let mut rvs = nn::VarStore::new(device);
    let network = Network::from_file(&rvs.root(), file, None).expect("the seed loads");
    rvs.copy(&vs).expect("same names and shapes");
    let network_fast = network.to_inference();
    let name = device::name(device);
    println!(
        "to_inference() against forward_t(eval) on {name}, vgg16_bn, {iters} iterations; host \
         {}",
        machine()
    );
    println!("| batch | path | speed-up over forward_t(eval), median (quartiles) |");
    println!("|---:|---|---|");
    let _guard = tch::no_grad_guard();
    for &b in &batches {
        let xs = Tensor::randn([b, 3, 32, 32], (Kind::Float, device));
        let eager = seed.forward_t(&xs, false);
        let scale = eager.abs().max().double_value(&[]).max(1e-12);
        for (path, fused) in [
            ("seed", seed_fast.forward(&xs)),
            ("Network", network_fast.forward(&xs)),
        ] {
            let off = (&fused - &eager).abs().max().double_value(&[]) / scale;
            if off.is_nan() || off > TOLERANCE {
                fail(&format!(
                    "{path} to_inference() at batch {b} is {off:.2e} of the largest logit away \
                     from forward_t(eval) on {name} (tolerance {TOLERANCE:e})"
                ));
            }
        }
        let variants: Vec<Variant> = vec![
            (
                "seed forward_t",
                Box::new(|| finished(device, seed.forward_t(&xs, false))),
            ),
            (
                "seed to_inference()",
                Box::new(|| finished(device, seed_fast.forward(&xs))),
            ),
            (
                "Network to_inference()",
                Box::new(|| finished(device, network_fast.forward(&xs))),
            ),
        ];
        let times = interleave(&variants, iters);
        for fused in [1, 2] {
            let r = ratio(&times[0], &times[fused]);
            println!(
                "| {b} | {} | {:.2}× ({:.2}–{:.2}) |",
                variants[fused].0, r[1], r[0], r[2]
            );
        }
    }
    // On a GPU nothing is tuned: every conv runs aten's (cuDNN).
    let (timed, cached, seconds, _) = tuning_cost();
    println!("kernel tuning: {timed} choices timed, {cached} from the cache, {seconds:.2} s");
    println!("outputs agree within {TOLERANCE:e} of the largest logit at every batch");
}
