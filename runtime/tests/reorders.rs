//! No forward pass of an inference model reorders a weight: every oneDNN kernel runs on a weight
//! packed for its problem (`inference`'s packings). oneDNN's verbose log (ONEDNN_VERBOSE=1, on
//! stdout) names every reorder it executes; a child process runs each model, kernel choice and
//! batch size after a warm-up between two marks, and any reorder of a conv weight between them
//! fails the test. Under the machine's own ISA and under the AVX2 emulation
//! (`ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2`), where
//! oneDNN picks other formats.
use std::io::Write;
use std::process::Command;

use vggdsl_runtime::inference::{
    set_kernel_choice, use_kernel_cache, Kernel, KernelCache, KernelChoice,
};
use vggdsl_runtime::tch::nn::{ModuleT, VarStore};
use vggdsl_runtime::tch::{self, Device, Kind, Tensor};
use vggdsl_runtime::Network;

vggdsl_runtime::vgg!("../examples/vgg16_bn.vgg");

/// Set in the child's environment.
const CHILD: &str = "VGGDSL_REORDER_CHILD";
const BEGIN: &str = "vggdsl-checked-pass";
const END: &str = "vggdsl-checked-pass-end";

/// Writes a mark on stdout between oneDNN's lines, which C's stdio buffers.
fn mark(text: &str) {
    // SAFETY: flushes every C stream; no stream is being closed.
    unsafe { libc::fflush(std::ptr::null_mut()) };
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}").unwrap();
    out.flush().unwrap();
}

const ALL: &[&str] = &["generated", "network", "pruned"];
const SEED_AND_PRUNED: &[&str] = &["network", "pruned"];

/// Kernel choices (`None`: the environment's) and the models the child runs them on. Winograd's
/// and the matrix form run no oneDNN code; a fixed oneDNN runs it on every layer.
const CHOICES: [(Option<KernelChoice>, &[&str]); 3] = [
    (None, ALL),
    (Some(KernelChoice::Tune), ALL),
    (Some(KernelChoice::Fixed(Kernel::OneDnn)), SEED_AND_PRUNED),
];

const BATCHES: [i64; 4] = [1, 4, 16, 64];

/// An inference model's forward pass.
type Forward = Box<dyn Fn(&Tensor) -> Tensor>;

/// The child's work: for each model and kernel choice, at each batch size, two passes, then a
/// checked one between marks.
#[test]
fn child() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    // Tuning for real (it runs every candidate, also under the marks' guard), in memory only.
    use_kernel_cache(KernelCache::open(None, "reorder test"));
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
    tch::manual_seed(0);
    let vs = VarStore::new(Device::Cpu);
    let generated = Vgg16Bn::new(&vs.root());
    let seed = Network::from_file(
        &VarStore::new(Device::Cpu).root(),
        format!("{examples}/vgg16_bn.vgg"),
        None,
    )
    .unwrap();
    let pruned = Network::from_file(
        &VarStore::new(Device::Cpu).root(),
        format!("{examples}/hrank_vgg16_pruned.vgg"),
        None,
    )
    .unwrap();
    // A model's inference form, built anew under each choice.
    let build = |name: &str| -> Forward {
        match name {
            "generated" => {
                let m = generated.to_inference();
                Box::new(move |x| m.forward(x))
            }
            "network" => {
                let m = seed.to_inference();
                Box::new(move |x| m.forward(x))
            }
            _ => {
                let m = pruned.to_inference();
                Box::new(move |x| m.forward(x))
            }
        }
    };
    // The environment's choice (`VGGDSL_KERNELS`, set by the parent) and tuning on every model;
    // oneDNN's kernel on every layer of the seed and the pruned model (the generated model runs
    // the seed's layers as the network does).
    for (choice, which) in CHOICES {
        set_kernel_choice(choice);
        for name in which {
            let forward = build(name);
            for batch in BATCHES {
                let xs = Tensor::randn([batch, 3, 32, 32], (Kind::Float, Device::Cpu));
                drop(forward(&xs));
                drop(forward(&xs));
                mark(&format!("{BEGIN} {name}, {choice:?}, batch {batch}"));
                drop(forward(&xs));
                mark(END);
            }
        }
    }
    // The eager model reorders its plain weights on every call: the check sees reorders.
    let xs = Tensor::randn([4, 3, 32, 32], (Kind::Float, Device::Cpu));
    drop(tch::no_grad(|| generated.forward_t(&xs, false)));
    mark(&format!("{BEGIN} eager forward_t"));
    drop(tch::no_grad(|| generated.forward_t(&xs, false)));
    mark(END);
}

/// The weight reorders oneDNN logged between each pair of marks: `(pass, reorder line)`.
fn weight_reorders(log: &str) -> Vec<(String, String)> {
    let mut pass = None;
    let mut found = Vec::new();
    for line in log.lines() {
        if let Some(name) = line.strip_prefix(BEGIN).filter(|_| !line.starts_with(END)) {
            pass = Some(name.trim().to_owned());
        } else if line == END {
            pass = None;
        } else if let Some(pass) = &pass {
            // onednn_verbose,…,exec,cpu,reorder,impl,…,src:… dst:…,attrs,,PROBLEM,ms
            let fields: Vec<&str> = line.split(',').collect();
            let is_reorder = line.starts_with("onednn_verbose") && fields.contains(&"reorder");
            let dims: Vec<&str> = fields
                .iter()
                .rev()
                .nth(1)
                .map_or(vec![], |p| p.split('x').collect());
            // OxIx3x3: a conv weight (no activation of these models has a 3×3 map).
            if is_reorder && dims.len() == 4 && dims[2] == "3" && dims[3] == "3" {
                found.push((pass.clone(), line.to_owned()));
            }
        }
    }
    found
}

#[test]
fn no_forward_pass_reorders_a_weight() {
    if std::env::var_os(CHILD).is_some() || !tch::utils::has_mkldnn() {
        return;
    }
    let emulations: [&[(&str, &str)]; 2] = [
        &[],
        &[
            ("ONEDNN_MAX_CPU_ISA", "AVX2"),
            ("ATEN_CPU_CAPABILITY", "avx2"),
            ("MKL_ENABLE_INSTRUCTIONS", "AVX2"),
        ],
    ];
    for isa in emulations {
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child", "--nocapture", "--test-threads=1"])
            .env(CHILD, "1")
            .env("ONEDNN_VERBOSE", "1")
            .env("VGGDSL_KERNELS", "guess")
            .envs(isa.iter().copied())
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{isa:?}: the child failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let passes = log
            .lines()
            .filter(|l| l.starts_with(BEGIN) && !l.starts_with(END))
            .count();
        let expected: usize = CHOICES
            .iter()
            .map(|(_, models)| models.len() * BATCHES.len())
            .sum();
        assert_eq!(passes, expected + 1, "{isa:?}: the child's passes");
        let reorders = weight_reorders(&log);
        let (eager, fused): (Vec<_>, Vec<_>) = reorders
            .into_iter()
            .partition(|(pass, _)| pass == "eager forward_t");
        // The check sees reorders where there are some: the eager model's, of each conv weight.
        assert!(
            eager.len() >= 13,
            "{isa:?}: {} reorders of the eager pass",
            eager.len()
        );
        assert!(
            fused.is_empty(),
            "{isa:?}: weights reordered in a forward pass:\n{fused:#?}"
        );
    }
}
