//! `vggdsl compile --target pytorch` against the Rust models, with PyTorch run by the test:
//!
//! - for every fidelity configuration, the generated class built after `torch.manual_seed(s)`
//!   has a state_dict bit-identical to the Rust struct built after `tch::manual_seed(s)`, and
//!   `print(model)` equals the struct's `Display`;
//! - its state_dict (after two SGD steps), saved with `torch.save` and as safetensors, loads
//!   strictly into the Rust struct, which then gives exactly PyTorch's outputs in eval and in
//!   train mode (the same libtorch runs the same ops);
//! - `examples/ddp_train.py` trains a generated module with 2 processes under torchrun (gloo, on
//!   the CPU) and writes a state_dict that loads strictly into the Rust struct, and metrics that
//!   `vggdsl plot training` draws.
//!
//! All checks of the first kind run in one Python process (`pytorch_target.py` of
//! `vggdsl-test-support`). Without Python and torch the tests say why and pass, unless `CI` is set.
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use vggdsl_runtime::tch::nn::{self, ModuleT, VarStore};
use vggdsl_runtime::tch::{self, Device, Tensor};
use vggdsl_runtime::{load_state_dict, read_state_dict, save_state_dict};
mod common;
use common::models::*;
use common::repo;
use vggdsl_test_support::pytorch::{python, run_json};
use vggdsl_test_support::{assert_success, file_in, rng, tempdir, text, TempDir};

vggdsl_runtime::vgg!("tests/models/tiny.vgg");

/// A generated Rust model and the `.vgg` file it comes from.
struct Model {
    name: &'static str,
    file: &'static str,
    build: fn(&nn::Path) -> Box<dyn ModuleT>,
    display: fn(&nn::Path) -> String,
}

macro_rules! model {
    ($ty:ident, $file:expr) => {
        Model {
            name: stringify!($ty),
            file: $file,
            build: |p| Box::new($ty::new(p)),
            display: |p| $ty::new(p).to_string(),
        }
    };
}

/// The fidelity configurations: the examples and every model of tests/models/variants.vgg.
fn models() -> Vec<Model> {
    const VARIANTS: &str = "tests/models/variants.vgg";
    vec![
        model!(Vgg16Bn, "examples/vgg16_bn.vgg"),
        model!(Vgg16BnHrank, "examples/hrank_vgg16_pruned.vgg"),
        model!(Vgg16HrankPlus, VARIANTS),
        model!(Vgg16NoBn, VARIANTS),
        model!(Vgg11Cifar100, VARIANTS),
        model!(Vgg13, VARIANTS),
        model!(Vgg19, VARIANTS),
        model!(Vgg16Input64, VARIANTS),
        model!(Vgg16TorchInit, VARIANTS),
    ]
}

/// `tch::manual_seed(seed)`, then `f`, holding libtorch's generator.
fn seeded<T>(seed: i64, f: impl FnOnce() -> T) -> T {
    let _rng = rng();
    tch::manual_seed(seed);
    f()
}

/// `vggdsl compile --target pytorch FILE -o OUT`.
fn compile_to_python(file: &str, out: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_vggdsl"))
        .args([
            "compile",
            "--target",
            "pytorch",
            &repo(file),
            "-o",
            &text(out),
        ])
        .output()
        .unwrap();
    assert_success(&out, "vggdsl compile --target pytorch");
}

/// The Python module a `.vgg` file compiles to, in `dir`.
fn module_path(dir: &TempDir, file: &str) -> PathBuf {
    let stem = Path::new(file).file_stem().unwrap().to_str().unwrap();
    dir.path().join(format!("{stem}.py"))
}

fn tensors(path: &Path) -> Vec<(String, Tensor)> {
    read_state_dict(path).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn generated_modules_match_the_rust_models() {
    if python().is_none() {
        return;
    }
    let dir = tempdir();
    let models = models();
    let mut files: Vec<&str> = models.iter().map(|m| m.file).collect();
    files.dedup();
    for file in files {
        compile_to_python(file, &module_path(&dir, file));
    }

    // Rust: seeded construction, saved; the printed network.
    let seed_of = |i: usize| 200 + i as i64;
    let mut jobs = Vec::new();
    for (i, m) in models.iter().enumerate() {
        let vs = VarStore::new(Device::Cpu);
        let display = seeded(seed_of(i), || (m.display)(&vs.root()));
        let init = dir.path().join(format!("{}.rust.safetensors", m.name));
        save_state_dict(&vs, &init).unwrap();
        jobs.push(serde_json::json!({
            "module": text(&module_path(&dir, m.file)),
            "class": m.name,
            "seed": seed_of(i),
            "rust_init": text(&init),
            "rust_repr": display,
            "out": file_in(&dir, m.name),
        }));
    }
    let jobs_file = dir.path().join("jobs.json");
    std::fs::write(&jobs_file, serde_json::to_string(&jobs).unwrap()).unwrap();
    let report = run_json("pytorch_target.py", [&jobs_file]).expect("PyTorch was found");
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len(), models.len());

    for (m, result) in models.iter().zip(results) {
        assert_eq!(result["class"], m.name);
        assert_eq!(
            result["init_differs"],
            serde_json::json!([]),
            "{}: after the same manual_seed these tensors differ from the Rust model's",
            m.name
        );
        assert!(
            result["repr_equal"].as_bool().unwrap(),
            "{}: print(model) differs from the Rust Display:\n{}",
            m.name,
            result["repr"].as_str().unwrap()
        );

        // PyTorch's trained weights, both formats, loaded strictly; then the same outputs.
        let pt = dir.path().join(format!("{}.pt", m.name));
        let safetensors = dir.path().join(format!("{}.safetensors", m.name));
        let mut vs = VarStore::new(Device::Cpu);
        let net = seeded(0, || (m.build)(&vs.root()));
        load_state_dict(&mut vs, &safetensors).unwrap_or_else(|e| panic!("{}: {e}", m.name));
        let from_safetensors: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .map(|(k, t)| (k, t.copy()))
            .collect();
        load_state_dict(&mut vs, &pt).unwrap_or_else(|e| panic!("{}: {e}", m.name));
        let variables = vs.variables();
        for (key, t) in &from_safetensors {
            assert!(
                variables[key].equal(t),
                "{}: {key} differs between the .pt and the .safetensors",
                m.name
            );
        }
        assert_eq!(
            from_safetensors.len(),
            tensors(&safetensors).len(),
            "{}",
            m.name
        );

        let outputs: std::collections::HashMap<String, Tensor> =
            tensors(&dir.path().join(format!("{}.outputs.safetensors", m.name)))
                .into_iter()
                .collect();
        let x = &outputs["x"];
        let eval = tch::no_grad(|| net.forward_t(x, false));
        let train = tch::no_grad(|| net.forward_t(x, true));
        for (what, ours, theirs) in [
            ("eval", &eval, &outputs["eval"]),
            ("train", &train, &outputs["train"]),
        ] {
            let diff = (ours - theirs).abs().max().double_value(&[]);
            println!("{}: {what}-mode outputs, max |diff| = {diff:e}", m.name);
            assert!(
                ours.equal(theirs),
                "{}: {what}-mode outputs differ from PyTorch's by up to {diff:e}",
                m.name
            );
        }
    }
}

/// The command CI runs once: 2 processes of `examples/ddp_train.py` on the CPU.
#[test]
fn ddp_training_writes_a_state_dict_the_rust_model_loads() {
    let Some(python) = python() else { return };
    let dir = tempdir();
    let module = dir.path().join("tiny.py");
    compile_to_python("tests/models/tiny.vgg", &module);
    let run = dir.path().join("run");
    let budget = Duration::from_secs(120);
    let started = Instant::now();
    let mut child = Command::new(python)
        .args([
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
        ])
        .arg(repo("examples/ddp_train.py"))
        .args([&text(&module), "--out-dir", &text(&run), "--epochs", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > budget {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "ddp_train.py took more than {budget:?}:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = child.wait_with_output().unwrap();
    assert_success(&out, "torchrun examples/ddp_train.py");
    println!(
        "ddp_train.py, 2 processes: {:.1} s\n{}",
        started.elapsed().as_secs_f64(),
        String::from_utf8_lossy(&out.stdout)
    );

    let mut vs = VarStore::new(Device::Cpu);
    let net = seeded(0, || TinyDdp::new(&vs.root()));
    let report = load_state_dict(&mut vs, run.join("last.safetensors")).unwrap();
    assert_eq!(report.loaded.len(), vs.variables().len());
    let [c, h, w] = TinyDdp::INPUT_SHAPE;
    let x = Tensor::ones([2, c, h, w], (tch::Kind::Float, Device::Cpu));
    let y = tch::no_grad(|| net.forward_t(&x, false));
    assert_eq!(y.size(), [2, TinyDdp::NUM_CLASSES]);

    // The run folder is what `vggdsl plot training` reads.
    let picture = run.join("training.svg");
    let plot = Command::new(env!("CARGO_BIN_EXE_vggdsl"))
        .args(["plot", "training", &text(&run), "-o", &text(&picture)])
        .output()
        .unwrap();
    assert_success(&plot, "vggdsl plot training");
    assert!(std::fs::read_to_string(&picture)
        .unwrap()
        .contains("Training: run"));

    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let epochs: Vec<Value> = metrics
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(epochs.len(), 2);
    for (i, e) in epochs.iter().enumerate() {
        assert_eq!(e["epoch"], i as u64 + 1);
        for key in ["loss", "train_accuracy", "test_accuracy", "lr", "seconds"] {
            assert!(e[key].is_f64(), "{key} in {e}");
        }
    }
}
