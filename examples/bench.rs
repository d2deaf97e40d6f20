//! `./dev.sh bench`: the generated seed model in tch against the seed's PyTorch code (eager,
//! TorchScript frozen, torch.compile) in one run, same machine, same thread count. Prints
//! medians and ratios against eager PyTorch; BENCHMARKS.md keeps the table.
//!
//! Options: `--threads N` (2), `--rounds N` (3), `--quick` (fewer iterations), `--skip-compile`.
use std::process::Command;
use std::time::{Duration, Instant};
use vggdsl_runtime::tch::{self, nn, nn::ModuleT, nn::OptimizerConfig, Device, Kind, Tensor};

vggdsl_runtime::include_vgg!("vgg16_bn");

fn median(mut f: impl FnMut(), iters: usize, warmup: usize) -> f64 {
    for _ in 0..warmup {
        f();
    }
    let mut times: Vec<Duration> = (0..iters)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[iters / 2].as_secs_f64()
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn flag(name: &str) -> bool {
    std::env::args().any(|a| a == name)
}

/// Whole-process wall time of `vggdsl compile FILE` (median), in seconds.
fn compile_time(vggdsl: &str, file: &str, iters: usize) -> f64 {
    median(
        || {
            let out = Command::new(vggdsl)
                .args(["compile", file])
                .output()
                .expect("vggdsl runs");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        },
        iters,
        2,
    )
}

/// One round of the tch side: medians in seconds, keyed like torch_bench.py's figures.
fn rust_round(
    net: &Vgg16Bn,
    vs: &nn::VarStore,
    (it64, it1, it_train): (usize, usize, usize),
) -> Vec<(String, f64)> {
    let fast = net.to_inference();
    let mut out = Vec::new();
    for (batch, iters) in [(64, it64), (1, it1)] {
        let xs = Tensor::randn([batch, 3, 32, 32], (Kind::Float, Device::Cpu));
        let eager = median(
            || drop(tch::no_grad(|| net.forward_t(&xs, false))),
            iters,
            3,
        );
        let inference = median(|| drop(fast.forward(&xs)), iters, 3);
        out.push((format!("vggdsl_b{batch}"), eager));
        out.push((format!("vggdsl_inference_b{batch}"), inference));
    }
    let xs = Tensor::randn([64, 3, 32, 32], (Kind::Float, Device::Cpu));
    let ys = Tensor::randint(10, [64], (Kind::Int64, Device::Cpu));
    let sgd = nn::Sgd {
        momentum: 0.9,
        dampening: 0.0,
        wd: 5e-4,
        nesterov: false,
    };
    let mut opt = sgd.build(vs, 0.01).unwrap();
    let train = median(
        || {
            let loss = net.forward_t(&xs, true).cross_entropy_for_logits(&ys);
            opt.backward_step(&loss);
        },
        it_train,
        2,
    );
    out.push(("vggdsl_train_b64".to_owned(), train));
    out
}

/// One round of the PyTorch side (bench/torch_bench.py), in a fresh process.
fn torch_round(threads: i64, (it64, it1, it_train): (usize, usize, usize)) -> serde_json::Value {
    let python = std::env::var("VGGDSL_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/torch_bench.py");
    let mut cmd = Command::new(python);
    cmd.arg(script)
        .args([threads, it64 as i64, it1 as i64, it_train as i64].map(|n| n.to_string()));
    if flag("--skip-compile") {
        cmd.env("VGGDSL_BENCH_SKIP_COMPILE", "1");
    }
    let out = cmd.output().expect("python runs");
    assert!(
        out.status.success(),
        "torch_bench.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("torch_bench.py prints JSON")
}

fn main() {
    let threads: i64 = arg("--threads").map_or(2, |t| t.parse().expect("--threads N"));
    let rounds: usize = arg("--rounds").map_or(3, |t| t.parse().expect("--rounds N"));
    let iters = if flag("--quick") {
        (5, 20, 3)
    } else {
        (20, 200, 10)
    };
    tch::set_num_threads(threads as i32);
    tch::manual_seed(0);
    let vs = nn::VarStore::new(Device::Cpu);
    let net = Vgg16Bn::new(&vs.root());
    // This machine's speed drifts (shared host): rounds alternate tch and PyTorch, and each
    // figure is the median over rounds, so both sides see the same conditions.
    let mut figures: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
    let mut version = String::new();
    for _ in 0..rounds {
        for (k, v) in rust_round(&net, &vs, iters) {
            figures.entry(k).or_default().push(v);
        }
        let torch = torch_round(threads, iters);
        version = torch["torch"].as_str().unwrap_or("?").to_owned();
        for (k, v) in torch.as_object().expect("an object") {
            if let Some(v) = v.as_f64().filter(|_| k != "threads") {
                figures.entry(k.clone()).or_default().push(v);
            }
        }
    }
    let t = |k: &str| {
        figures.get(k).map(|v| {
            let mut v = v.clone();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        })
    };

    println!("seed VGG-16-BN, CIFAR input, {threads} threads, libtorch {version}; medians of {rounds} rounds");
    println!("| case | variant | time | images/s | vs eager PyTorch |");
    println!("|---|---|---:|---:|---:|");
    let row = |case: &str, variant: &str, secs: Option<f64>, batch: f64, base: f64| {
        if let Some(s) = secs {
            println!(
                "| {case} | {variant} | {:.2} ms | {:.0} | {:.2}x |",
                s * 1e3,
                batch / s,
                base / s
            );
        }
    };
    for batch in [64, 1] {
        let case = format!("inference B={batch}");
        let base = t(&format!("eager_b{batch}")).expect("eager figure");
        let b = batch as f64;
        row(&case, "PyTorch eager (seed code)", Some(base), b, base);
        row(
            &case,
            "PyTorch TorchScript frozen",
            t(&format!("torchscript_b{batch}")),
            b,
            base,
        );
        row(
            &case,
            "PyTorch torch.compile (freezing)",
            t(&format!("compile_b{batch}")),
            b,
            base,
        );
        row(
            &case,
            "vggdsl forward_t(eval)",
            t(&format!("vggdsl_b{batch}")),
            b,
            base,
        );
        row(
            &case,
            "vggdsl to_inference()",
            t(&format!("vggdsl_inference_b{batch}")),
            b,
            base,
        );
    }
    let base = t("eager_train_b64").expect("eager training figure");
    row(
        "train step B=64",
        "PyTorch eager (seed code)",
        Some(base),
        64.0,
        base,
    );
    row(
        "train step B=64",
        "PyTorch torch.compile",
        t("compile_train_b64"),
        64.0,
        base,
    );
    row(
        "train step B=64",
        "vggdsl forward_t(train) + tch SGD",
        t("vggdsl_train_b64"),
        64.0,
        base,
    );

    if let Some(vggdsl) = arg("--vggdsl") {
        let dir = std::env::temp_dir().join(format!("vggdsl-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // A 2,000-layer model: 500 conv blocks (conv, norm, relu) and pools, on a large input.
        let mut cfg = Vec::new();
        for i in 0..500 {
            cfg.push("8".to_owned());
            if i % 100 == 99 {
                cfg.push("M".to_owned());
            }
        }
        cfg.push("8".to_owned());
        let big = dir.join("big.vgg");
        std::fs::write(
            &big,
            format!(
                "pub model Big {{ input = [3, 256, 256]  cfg = [{}] }}",
                cfg.join(", ")
            ),
        )
        .unwrap();
        let seed = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/vgg16_bn.vgg");
        println!();
        println!("| compiler | whole-process time (median of 20) |");
        println!("|---|---:|");
        println!(
            "| `vggdsl compile` seed | {:.2} ms |",
            compile_time(&vggdsl, seed, 20) * 1e3
        );
        println!(
            "| `vggdsl compile` 2,000-layer model | {:.2} ms |",
            compile_time(&vggdsl, big.to_str().unwrap(), 20) * 1e3
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
