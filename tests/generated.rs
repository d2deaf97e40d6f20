//! Generated models compile, run, and hold exactly the variables of the seed's PyTorch code.
use serde_json::Value;
use std::process::Command;
use vggdsl_runtime::tch::{self, nn, nn::ModuleT, Device, Kind, Tensor};
mod common;
use common::models::*;

/// Runs `tests/python/reference.py` (the seed's PyTorch code, parameterised) and parses its JSON.
fn reference(args: &[&str]) -> Value {
    let python = std::env::var("VGGDSL_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/python/reference.py"
        ))
        .args(args)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "reference.py {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("reference.py prints JSON")
}

/// `(name, shape, dtype)` of every variable, sorted by name.
fn variables(vs: &nn::VarStore) -> Vec<(String, Vec<i64>, String)> {
    let mut v: Vec<_> = vs
        .variables()
        .into_iter()
        .map(|(name, t)| {
            let kind = match t.kind() {
                Kind::Float => "float32",
                Kind::Int64 => "int64",
                k => panic!("unexpected kind {k:?}"),
            };
            (name, t.size(), kind.to_owned())
        })
        .collect();
    v.sort();
    v
}

fn torch_variables(config: &str) -> Vec<(String, Vec<i64>, String)> {
    let json = reference(&["state-dict", "--config", config]);
    let mut v: Vec<_> = json["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            let shape = k[1]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_i64().unwrap())
                .collect();
            (
                k[0].as_str().unwrap().to_owned(),
                shape,
                k[2].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    v.sort();
    v
}

/// Builds the model, checks [2, classes] outputs in train and eval mode, and compares its
/// variables with PyTorch's `state_dict()` for the same configuration.
fn check<M: ModuleT>(build: impl Fn(&nn::Path) -> M, input: [i64; 3], classes: i64, config: &str) {
    let vs = nn::VarStore::new(Device::Cpu);
    let net = build(&vs.root());
    let [c, h, w] = input;
    let xs = Tensor::randn([2, c, h, w], (Kind::Float, Device::Cpu));
    assert_eq!(net.forward_t(&xs, true).size(), [2, classes]);
    assert_eq!(net.forward_t(&xs, false).size(), [2, classes]);
    assert_eq!(variables(&vs), torch_variables(config), "{config}");
}

#[test]
fn seed() {
    check(
        Vgg16Bn::new,
        Vgg16Bn::INPUT_SHAPE,
        10,
        r#"{"cfg": "default"}"#,
    );
    assert_eq!(torch_variables("{}").len(), 100);
}

#[test]
fn hrank_pruned() {
    let cfg =
        r#"{"compress_rate": [0.95, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.9, 0.9, 0.9, 0.9, 0.8, 0.8]}"#;
    check(Vgg16BnHrank::new, Vgg16BnHrank::INPUT_SHAPE, 10, cfg);
}

#[test]
fn hrank_plus_twelve_rates() {
    let cfg = r#"{"compress_rate": [0.95, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.9, 0.9, 0.9, 0.9, 0.8]}"#;
    check(Vgg16HrankPlus::new, Vgg16HrankPlus::INPUT_SHAPE, 10, cfg);
}

#[test]
fn without_batch_norm() {
    check(
        Vgg16NoBn::new,
        Vgg16NoBn::INPUT_SHAPE,
        10,
        r#"{"cfg": "vgg16", "bn": false}"#,
    );
}

#[test]
fn presets() {
    check(Vgg19::new, Vgg19::INPUT_SHAPE, 10, r#"{"cfg": "vgg19"}"#);
    check(Vgg13::new, Vgg13::INPUT_SHAPE, 10, r#"{"cfg": "vgg13"}"#);
    check(
        Vgg11Cifar100::new,
        Vgg11Cifar100::INPUT_SHAPE,
        100,
        r#"{"cfg": "vgg11", "num_classes": 100}"#,
    );
}

#[test]
fn larger_input() {
    check(
        Vgg16Input64::new,
        Vgg16Input64::INPUT_SHAPE,
        10,
        r#"{"input": [3, 64, 64]}"#,
    );
}

#[test]
fn activations_are_the_relu_cfg_points() {
    let vs = nn::VarStore::new(Device::Cpu);
    let net = Vgg16Bn::new(&vs.root());
    let xs = Tensor::randn([2, 3, 32, 32], (Kind::Float, Device::Cpu));
    let (out, acts) = net.forward_with_activations(&xs, false);
    assert_eq!(out.size(), [2, 10]);
    assert!(out.allclose(&net.forward_t(&xs, false), 0.0, 0.0, false));
    assert_eq!(acts.relu0.size(), [2, 64, 32, 32]);
    assert_eq!(acts.pool2.size(), [2, 64, 16, 16]);
    assert_eq!(acts.relu15.size(), [2, 512, 2, 2]);
    // Every tap is post-ReLU (or a pool of it): no negative values.
    assert_eq!(
        acts.pool9.min().double_value(&[]),
        acts.pool9.relu().min().double_value(&[])
    );
}

/// `to_inference()` (BatchNorm folded, oneDNN layout) gives the eval-mode outputs within 1e-4.
fn check_inference<M: ModuleT>(net: &M, fast: impl Fn(&Tensor) -> Tensor, classes: i64) {
    // Non-trivial running statistics, so folding has something to fold.
    let batch = Tensor::randn([8, 3, 32, 32], (Kind::Float, Device::Cpu));
    for _ in 0..3 {
        let _ = net.forward_t(&batch, true);
    }
    let xs = Tensor::randn([4, 3, 32, 32], (Kind::Float, Device::Cpu));
    let eval = tch::no_grad(|| net.forward_t(&xs, false));
    let out = fast(&xs);
    assert_eq!(out.size(), [4, classes]);
    let diff = (&out - &eval).abs().max().double_value(&[]);
    assert!(diff < 1e-4, "max abs diff {diff}");
}

#[test]
fn inference_model_matches_eval_mode() {
    let vs = nn::VarStore::new(Device::Cpu);
    let seed = Vgg16Bn::new(&vs.root());
    let fast = |xs: &Tensor| seed.to_inference().forward(xs);
    check_inference(&seed, fast, 10);
    let pruned = Vgg16BnHrank::new(&(vs.root() / "pruned"));
    check_inference(&pruned, |xs| pruned.to_inference().forward(xs), 10);
    let plain = Vgg16NoBn::new(&(vs.root() / "plain"));
    check_inference(&plain, |xs| plain.to_inference().forward(xs), 10);
}

#[test]
fn inference_model_runs_small_and_large_batches() {
    // Below `BLOCKED_FROM_BATCH` the folded weights run on plain tensors, from it in oneDNN's
    // blocked layout: both must give the eval-mode outputs.
    let vs = nn::VarStore::new(Device::Cpu);
    let net = Vgg16Bn::new(&vs.root());
    let fast = net.to_inference();
    for batch in [1, vggdsl_runtime::inference::BLOCKED_FROM_BATCH] {
        let xs = Tensor::randn([batch, 3, 32, 32], (Kind::Float, Device::Cpu));
        let eval = tch::no_grad(|| net.forward_t(&xs, false));
        let diff = (fast.forward(&xs) - eval).abs().max().double_value(&[]);
        assert!(diff < 1e-4, "batch {batch}: max abs diff {diff}");
    }
}
