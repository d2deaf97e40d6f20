//! `./dev.sh bench`: inference speed of the seed network (VGG-16-BN, 3×32×32) in vggdsl and in
//! PyTorch, on a host whose speed drifts by ±30 % between minutes.
//!
//! Every figure is a median of per-iteration ratios between variants run back to back, in a
//! shuffled order, in one process: the drift hits both sides of a ratio alike. Two processes take part. The
//! PyTorch one (`bench/torch_bench.py`) interleaves eager, frozen TorchScript,
//! `optimize_for_inference`, torch.compile and (with `--vggdsl`, whose `export --fold-bn` writes
//! the ONNX files) ONNX Runtime on the seed and on the HRank-pruned model; this one interleaves tch's `forward_t(eval)`, the
//! generated `to_inference()`, the run-time `Network`'s, the HRank-pruned example's, and the very
//! frozen TorchScript file the PyTorch process wrote, loaded with `tch::CModule`. That module runs
//! the same libtorch code in both processes, so it bridges them:
//! `eager / vggdsl = (eager / torchscript)[PyTorch process] × (torchscript / vggdsl)[this one]`.
//!
//! Every table names the CPU and the ISA in effect (`ONEDNN_MAX_CPU_ISA=AVX2
//! ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2` emulates an AVX2 machine on an AVX-512
//! one; `./dev.sh bench` runs both). The conv kernels are tuned afresh in the warm-up of each batch size, and what that cost
//! is printed.
//!
//! Then, per layer of the generated inference model at batch 1 and 64, the time and GFLOP/s
//! against this machine's measured f32 GEMM peak; and, with `--vggdsl PATH`, `vggdsl compile`'s
//! whole-process time.
//!
//! Options: `--threads 1,2`, `--batches 1,4,16,64,256`, `--iters 40` (a quarter of it above
//! batch 64), `--json PATH` (the rows for `vggdsl plot bench`), `--vggdsl PATH`, and
//! `--reuse-freed-memory`: both processes under the malloc setting of the `vggdsl` command
//! (`vggdsl_runtime::memory`; `bench/malloc.py`).
#[path = "support/interleave.rs"]
mod interleave;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use interleave::{interleave, machine, quartiles, ratio, time, tuning_cost, Variant};
use serde_json::Value;
use vggdsl::files::bench::{BenchResults, BenchRow};
use vggdsl_runtime::inference::{use_kernel_cache, KernelCache};
use vggdsl_runtime::tch::{self, nn, nn::ModuleT, CModule, Device, Kind, Tensor};
use vggdsl_runtime::{Inference, Network};
use vggdsl_test_support::pytorch;

vggdsl_runtime::include_vgg!("vgg16_bn");
vggdsl_runtime::include_vgg!("hrank_vgg16_pruned");

/// The flag that puts both processes under the `vggdsl` command's malloc setting.
const REUSE_FREED_MEMORY: &str = "--reuse-freed-memory";

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn list(name: &str, default: &str) -> Vec<i64> {
    arg(name)
        .unwrap_or_else(|| default.to_owned())
        .split(',')
        .map(|n| n.trim().parse().expect("a list of numbers such as 1,2"))
        .collect()
}

/// The PyTorch process's figures at `threads`, after it wrote its frozen TorchScript to `script`;
/// with `onnx`, ONNX Runtime's too.
fn python(
    (threads, iters): (i64, usize),
    script: &str,
    batches: &[i64],
    reuse: bool,
    onnx: Option<&Onnx>,
) -> Value {
    let onnx_args = onnx.map(|o| [Path::new("--onnx"), &o.seed, &o.pruned, &o.weights]);
    let out = Command::new(pytorch::interpreter())
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/bench/torch_bench.py"))
        .args(reuse.then_some(REUSE_FREED_MEMORY))
        .args(onnx_args.iter().flatten())
        .args([threads.to_string(), iters.to_string(), script.to_owned()])
        .args(batches.iter().map(i64::to_string))
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("python runs");
    assert!(out.status.success(), "bench/torch_bench.py failed");
    serde_json::from_slice(&out.stdout).expect("torch_bench.py prints JSON")
}

/// The files ONNX Runtime's variants run: the seed and the pruned model as `vggdsl export
/// --fold-bn` writes them (what a deployer would run), and the seed's weights, which the PyTorch
/// process loads so that every variant computes the same outputs.
struct Onnx {
    seed: PathBuf,
    pruned: PathBuf,
    weights: PathBuf,
}

/// Exports both models with `vggdsl` into `dir`; `None` (and a note) where that fails.
fn export_onnx(vggdsl: &str, dir: &Path, m: &Models) -> Option<Onnx> {
    let export = |vs: &nn::VarStore, model: &str| {
        let weights = dir.join(format!("{model}.safetensors"));
        let onnx = dir.join(format!("{model}.onnx"));
        vggdsl_runtime::save_state_dict(vs, &weights).ok()?;
        let file = format!("{}/examples/{model}.vgg", env!("CARGO_MANIFEST_DIR"));
        let out = Command::new(vggdsl)
            .args(["export", &file, "--fold-bn", "--weights"])
            .args([&weights, Path::new("-o"), &onnx])
            .output()
            .ok()?;
        if !out.status.success() {
            let why = String::from_utf8_lossy(&out.stderr);
            println!("(no ONNX Runtime variant: {})", why.trim());
            return None;
        }
        Some((onnx, weights))
    };
    let (seed, weights) = export(&m.vs, "vgg16_bn")?;
    let (pruned, _) = export(&m.pvs, "hrank_vgg16_pruned")?;
    Some(Onnx {
        seed,
        pruned,
        weights,
    })
}

/// The largest relative difference of `ys` from `reference`, against its largest magnitude.
fn relative_error(ys: &Tensor, reference: &Tensor) -> f64 {
    let scale = reference.abs().max().double_value(&[]);
    (ys - reference).abs().max().double_value(&[]) / scale
}

/// Per layer of the generated inference model: time, MACs and GFLOP/s at `batch`.
fn profile(fast: &Vgg16BnInference, batch: i64, iters: usize, peak: f64) {
    type Step<'a> = (&'a str, Box<dyn Fn(&Tensor) -> Tensor + 'a>);
    let f = fast;
    let steps: Vec<Step> = vec![
        ("enter", Box::new(vggdsl_runtime::inference::enter)),
        ("conv0", Box::new(|x| f.conv0.forward(x))),
        ("conv1", Box::new(|x| f.conv1.forward(x))),
        ("pool2", Box::new(|x| f.pool2.forward(x))),
        ("conv3", Box::new(|x| f.conv3.forward(x))),
        ("conv4", Box::new(|x| f.conv4.forward(x))),
        ("pool5", Box::new(|x| f.pool5.forward(x))),
        ("conv6", Box::new(|x| f.conv6.forward(x))),
        ("conv7", Box::new(|x| f.conv7.forward(x))),
        ("conv8", Box::new(|x| f.conv8.forward(x))),
        ("pool9", Box::new(|x| f.pool9.forward(x))),
        ("conv10", Box::new(|x| f.conv10.forward(x))),
        ("conv11", Box::new(|x| f.conv11.forward(x))),
        ("conv12", Box::new(|x| f.conv12.forward(x))),
        ("pool13", Box::new(|x| f.pool13.forward(x))),
        ("conv14", Box::new(|x| f.conv14.forward(x))),
        ("conv15", Box::new(|x| f.conv15.forward(x))),
        ("conv16", Box::new(|x| f.conv16.forward(x))),
        (
            "head + leave",
            Box::new(|x| {
                let xs = vggdsl_runtime::nn::AvgPool2d::new(2, 2).forward(x);
                vggdsl_runtime::inference::leave(xs).flatten(1, -1)
            }),
        ),
        ("linear1", Box::new(|x| f.linear1.forward(x))),
        ("linear2", Box::new(|x| f.linear2.forward(x))),
    ];
    let _guard = tch::no_grad_guard();
    // Each layer's input, from one pass.
    let mut inputs = vec![Tensor::randn(
        [batch, 3, 32, 32],
        (Kind::Float, Device::Cpu),
    )];
    for (_, step) in &steps {
        let next = step(inputs.last().unwrap());
        inputs.push(next);
    }
    let mut times = vec![Vec::new(); steps.len()];
    for _ in 0..iters {
        for (i, (_, step)) in steps.iter().enumerate() {
            times[i].push(time(&|| step(&inputs[i])));
        }
    }
    let medians: Vec<f64> = times.into_iter().map(|t| quartiles(t)[1]).collect();
    let names: Vec<&str> = steps.iter().map(|(name, _)| *name).collect();
    print_profile(&names, &inputs, &medians, (batch, iters), peak);
}

/// The per-layer table: each step's output, MACs, median time, share and GFLOP/s against `peak`;
/// `inputs[i]` is step `i`'s input and `inputs[i + 1]` its output.
fn print_profile(
    names: &[&str],
    inputs: &[Tensor],
    medians: &[f64],
    (batch, iters): (i64, usize),
    peak: f64,
) {
    let total: f64 = medians.iter().sum();
    println!(
        "\nper layer, batch {batch} (median of {iters}; sum {:.2} ms):",
        total * 1e3
    );
    println!("| layer | output | MACs | time | share | GFLOP/s | of peak |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    for (i, name) in names.iter().enumerate() {
        let out = inputs[i + 1].size();
        let weight = match *name {
            n if n.starts_with("conv") => Some(9 * inputs[i].size()[1]),
            "linear1" | "linear2" => Some(inputs[i].size()[1]),
            _ => None,
        };
        let macs = weight.map(|k| k * out.iter().product::<i64>());
        let (macs_text, gflops, of_peak) = match macs {
            Some(m) => {
                let g = 2.0 * m as f64 / medians[i] / 1e9;
                (
                    format!("{:.1} M", m as f64 / 1e6),
                    format!("{g:.1}"),
                    format!("{:.0} %", 100.0 * g / peak),
                )
            }
            None => ("".into(), "".into(), "".into()),
        };
        println!(
            "| {name} | {out:?} | {macs_text} | {:.3} ms | {:.1} % | {gflops} | {of_peak} |",
            medians[i] * 1e3,
            100.0 * medians[i] / total
        );
    }
}

/// This machine's f32 GEMM rate (GFLOP/s): the best of 20 products of 1024×1024 matrices.
fn gemm_peak() -> f64 {
    let a = Tensor::randn([1024, 1024], (Kind::Float, Device::Cpu));
    let b = Tensor::randn([1024, 1024], (Kind::Float, Device::Cpu));
    let best = (0..20)
        .map(|_| time(&|| a.mm(&b)))
        .fold(f64::INFINITY, f64::min);
    2.0 * 1024f64.powi(3) / best / 1e9
}

/// Whole-process wall time of `vggdsl compile FILE` (median of 20), in seconds.
fn compile_time(vggdsl: &str, file: &str) -> f64 {
    let run = || {
        let start = Instant::now();
        let out = Command::new(vggdsl)
            .args(["compile", file])
            .output()
            .expect("vggdsl runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        start.elapsed().as_secs_f64()
    };
    run();
    quartiles((0..20).map(|_| run()).collect())[1]
}

/// The networks this process times: the seed generated and built at run time (the same weights),
/// their inference forms, and the HRank-pruned example.
struct Models {
    vs: nn::VarStore,
    pvs: nn::VarStore,
    net: Vgg16Bn,
    fast: Vgg16BnInference,
    network_fast: Inference,
    pruned: Vgg16BnHrank,
    pruned_fast: Vgg16BnHrankInference,
}

impl Models {
    fn new(seed_file: &str) -> Models {
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let net = Vgg16Bn::new(&vs.root());
        let rvs = nn::VarStore::new(Device::Cpu);
        let network = Network::from_file(&rvs.root(), seed_file, None).expect("the seed loads");
        let mut rvs = rvs;
        rvs.copy(&vs).expect("same names and shapes");
        let pvs = nn::VarStore::new(Device::Cpu);
        let pruned = Vgg16BnHrank::new(&pvs.root());
        Models {
            vs,
            pvs,
            fast: net.to_inference(),
            net,
            network_fast: network.to_inference(),
            pruned_fast: pruned.to_inference(),
            pruned,
        }
    }
}

/// What this process times at a batch `xs`, in the order the table's bridge reads them.
fn variants<'a>(m: &'a Models, torchscript: &'a CModule, xs: &'a Tensor) -> Vec<Variant<'a>> {
    vec![
        (
            "tch forward_t(eval)",
            Box::new(move || m.net.forward_t(xs, false)),
        ),
        (
            "vggdsl to_inference()",
            Box::new(move || m.fast.forward(xs)),
        ),
        (
            "vggdsl run-time Network to_inference()",
            Box::new(move || m.network_fast.forward(xs)),
        ),
        (
            "PyTorch TorchScript frozen (tch::CModule)",
            Box::new(move || torchscript.forward_ts(&[xs]).expect("TorchScript runs")),
        ),
        (
            "HRank-pruned forward_t(eval)",
            Box::new(move || m.pruned.forward_t(xs, false)),
        ),
        (
            "HRank-pruned to_inference()",
            Box::new(move || m.pruned_fast.forward(xs)),
        ),
    ]
}

/// The first passes of a batch size: the kernels tuned for its class (what that cost, printed)
/// and the fused paths' outputs checked against `forward_t(eval)`.
fn tune_and_check(m: &Models, xs: &Tensor) {
    let b = xs.size()[0];
    let reference = m.net.forward_t(xs, false);
    // The first batch of a size class: the kernels are tuned here.
    tuning_cost();
    let first = [
        ("to_inference()", m.fast.forward(xs)),
        ("run-time Network", m.network_fast.forward(xs)),
    ];
    drop(m.pruned_fast.forward(xs));
    // One letter per conv: the generated seed's, the run-time `Network`'s, the pruned model's.
    let (timed, cached, seconds, kernels) = tuning_cost();
    let third = kernels.len() / 3;
    println!(
        "| {b} | (kernel choices for this batch class: {timed} timed, {cached} cached, {:.0} ms; seed {}, pruned {}) | | | | |",
        seconds * 1e3,
        &kernels[..third],
        &kernels[2 * third..]
    );
    for (name, ys) in first {
        let e = relative_error(&ys, &reference);
        assert!(
            e < 1e-4,
            "{name} differs from forward_t by {e:e} at batch {b}"
        );
    }
}

/// One batch size at `t` threads: every variant's rows, printed as BENCHMARKS.md's table lines;
/// `theirs` is the PyTorch process's answer for the batch size.
fn measure(
    m: &Models,
    torchscript: &CModule,
    theirs: &Value,
    t: i64,
    b: i64,
    iters: usize,
) -> Vec<BenchRow> {
    let mut rows = Vec::new();
    let xs = Tensor::randn([b, 3, 32, 32], (Kind::Float, Device::Cpu));
    let _guard = tch::no_grad_guard();
    tune_and_check(m, &xs);
    let variants = variants(m, torchscript, &xs);
    let n = if b <= 64 { iters } else { (iters / 4).max(8) };
    let times = interleave(&variants, n);
    let median = |i: usize| quartiles(times[i].clone())[1];
    let f = |v: &str, k: &str| theirs[v][k].as_f64().expect("a figure");
    // eager / torchscript, measured in the PyTorch process.
    let bridge = f("torchscript", "ratio");
    let mut row = |variant: &str, seconds: f64, ratio: [f64; 3]| {
        println!(
            "| {b} | {variant} | {:.2} ms | {:.0} | **{:.2}×** | {:.2}–{:.2} |",
            seconds * 1e3,
            b as f64 / seconds,
            ratio[1],
            ratio[0],
            ratio[2]
        );
        rows.push(BenchRow {
            variant: variant.to_owned(),
            threads: t,
            batch: b,
            images_per_second: b as f64 / seconds,
            ratio: Some(ratio[1]),
            ratio_q1: Some(ratio[0]),
            ratio_q3: Some(ratio[2]),
        });
    };
    for (name, label) in [
        ("eager", "PyTorch eager"),
        ("torchscript", "PyTorch TorchScript frozen"),
        (
            "optimize_for_inference",
            "PyTorch frozen + optimize_for_inference",
        ),
        ("compile", "PyTorch torch.compile (freezing)"),
        ("onnxruntime", "ONNX Runtime (vggdsl export --fold-bn)"),
        ("onnxruntime_pruned", "ONNX Runtime, HRank-pruned"),
    ] {
        if theirs.get(name).is_none() {
            continue; // no ONNX Runtime variant in this run
        }
        let q = [f(name, "ratio_q1"), f(name, "ratio"), f(name, "ratio_q3")];
        row(label, f(name, "seconds"), q);
    }
    // Through the bridge (variant 3, the frozen TorchScript) to PyTorch's eager.
    for i in [0, 1, 2, 5] {
        row(
            variants[i].0,
            median(i),
            ratio(&times[3], &times[i]).map(|x| x * bridge),
        );
    }
    let torchscript_seconds = f("torchscript", "seconds");
    print_bridges(b, &variants, &times, torchscript_seconds);
    rows
}

/// The bridge's two times, and each fused path against tch's eager op sequence, in this process.
fn print_bridges(b: i64, variants: &[Variant], times: &[Vec<f64>], torchscript_seconds: f64) {
    println!(
        "| {b} | (bridge: TorchScript frozen took {:.2} ms in PyTorch's process, {:.2} ms in this one) | | | | |",
        torchscript_seconds * 1e3,
        quartiles(times[3].clone())[1] * 1e3
    );
    // Within this process: the fused paths against tch's eager op sequence.
    for (fused, eager) in [(1, 0), (2, 0), (5, 4)] {
        let r = ratio(&times[eager], &times[fused]);
        println!(
            "| {b} | {} over {} | | | {:.2}× | {:.2}–{:.2} |",
            variants[fused].0, variants[eager].0, r[1], r[0], r[2]
        );
    }
}

fn main() {
    let reuse = std::env::args().any(|a| a == REUSE_FREED_MEMORY);
    if reuse && !vggdsl_runtime::memory::reuse_freed_memory() {
        println!("(glibc refused the 1 GiB mmap threshold: blocks above 32 MiB keep mappings)");
    }
    let threads = list("--threads", "1,2");
    let batches = list("--batches", "1,4,16,64,256");
    let iters: usize = arg("--iters").map_or(40, |n| n.parse().expect("--iters N"));
    // Kernels tuned afresh, in the warm-up, and the cost reported: not the user's cached choices.
    use_kernel_cache(KernelCache::open(None, "bench"));
    println!("{}", machine());
    let dir = vggdsl_test_support::tempdir();
    let seed_file = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/vgg16_bn.vgg");
    let models = Models::new(seed_file);
    let onnx = arg("--vggdsl").and_then(|v| export_onnx(&v, dir.path(), &models));

    let mut rows = Vec::new();
    let mut torch_version = String::new();
    for &t in &threads {
        let script = dir.path().join(format!("seed-{t}.pt"));
        let script = script.to_str().unwrap();
        let py = python((t, iters), script, &batches, reuse, onnx.as_ref());
        tch::set_num_threads(t as i32);
        let torchscript = CModule::load(script).expect("the frozen TorchScript loads");
        torch_version = py["torch"].as_str().unwrap_or("?").to_owned();
        let malloc = if reuse {
            ", both processes reusing freed memory"
        } else {
            ""
        };
        println!("\n{t} thread(s), libtorch {torch_version}{malloc}");
        println!("| batch | variant | time | images/s | vs eager PyTorch | spread (quartiles) |");
        println!("|---:|---|---:|---:|---:|---|");
        for &b in &batches {
            let theirs = &py["batches"][b.to_string()];
            rows.extend(measure(&models, &torchscript, theirs, t, b, iters));
        }
    }
    let last_threads = *threads.last().unwrap();
    tch::set_num_threads(last_threads as i32);
    let peak = gemm_peak();
    println!("\nf32 GEMM (1024³, {last_threads} thread(s)): {peak:.1} GFLOP/s");
    for b in [1, 64] {
        profile(&models.fast, b, iters, peak);
    }
    if let Some(path) = arg("--json") {
        let machine = format!(
            "{}; libtorch {torch_version}; median of per-iteration ratios, interleaved",
            machine()
        );
        let results = BenchResults {
            model: "Vgg16Bn (the seed)".to_owned(),
            machine: Some(machine),
            rows,
        };
        std::fs::write(&path, results.to_json()).expect("the results file is written");
        println!("\nwrote {path}");
    }
    if let Some(vggdsl) = arg("--vggdsl") {
        println!(
            "\n| `vggdsl compile` seed, whole process (median of 20) | {:.2} ms |",
            compile_time(&vggdsl, seed_file) * 1e3
        );
    }
}
