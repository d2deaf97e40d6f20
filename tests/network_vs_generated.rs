//! The run-time network (`vggdsl_runtime::Network`, built from a `.vgg` file with no cargo build)
//! against the struct the compiler generates from the same model, for every example and fidelity
//! model and a few odd shapes: after the same seed every variable is bit-identical, and so are
//! the outputs of `forward_t` in both modes, the gradients, the running statistics, the
//! activations at `relu_cfg`, the repr and the inference model's outputs. Checkpoints move
//! between the two through safetensors.
#![cfg(feature = "torch")]

mod common;
use common::models::*;
use common::repo;

use std::collections::BTreeMap;
use vggdsl_runtime::tch::nn::{ModuleT, VarStore};
use vggdsl_runtime::tch::{self, Device, Kind, Tensor};
use vggdsl_runtime::{load_state_dict, save_state_dict, Network};
use vggdsl_test_support::{rng, tempdir};

/// Models with shapes the example files lack, declared with `vgg!` and kept as text for the
/// run-time network: features starting with a pool, two pools in a row, no BatchNorm, a single
/// conv (no `relu_cfg` point), and init rules using `uniform`, `norm1d` and `fan_in`.
mod odd {
    macro_rules! vgg_with_source {
        ($($source:tt)*) => {
            vggdsl_runtime::vgg!($($source)*);
            pub const SOURCE: &str = stringify!($($source)*);
        };
    }

    vgg_with_source! {
        pub model PoolFirst {
            input = [3, 16, 16]
            cfg = [M, 8, M, M, 16, 24]
            bn = false
            num_classes = 3
            init = {
                conv.weight = uniform(-sqrt(1 / fan_in), sqrt(1 / fan_in))
                conv.bias = constant(0.1)
                norm1d.weight = normal(1, 0.02)
                linear.bias = constant(-0.5)
            }
        }
        pub OneConv<input = [1, 8, 8], cfg = [4, M, 6], num_classes = 2, init = pytorch>
    }
}

/// Model `name` of `file` (from the repository root), loaded as a program loads it.
fn from_file(file: &str, name: &str) -> vggdsl::Architecture {
    let models = vggdsl_runtime::load_models(repo(file)).unwrap_or_else(|e| panic!("{e}"));
    models
        .into_iter()
        .find(|m| m.spec.name == name)
        .unwrap_or_else(|| panic!("{file} has no model {name}"))
}

fn from_source(source: &str, name: &str) -> vggdsl::Architecture {
    let models = vggdsl::load(source, "odd").unwrap_or_else(|d| panic!("{d}"));
    models
        .into_iter()
        .find(|m| m.spec.name == name)
        .expect("the model")
}

fn assert_identical(a: &Tensor, b: &Tensor, what: &str) {
    assert_eq!(a.size(), b.size(), "{what}: shapes differ");
    assert_eq!(a.kind(), b.kind(), "{what}: dtypes differ");
    assert!(a.equal(b), "{what}: values differ");
}

/// Every variable, by key, with whether it is trained.
fn variables(vs: &VarStore) -> BTreeMap<String, (Tensor, bool)> {
    vs.variables()
        .into_iter()
        .map(|(k, t)| {
            let trained = t.requires_grad();
            (k, (t, trained))
        })
        .collect()
}

/// The same keys, the same trainable set, every tensor bit-identical; with `grads`, also
/// every gradient.
fn assert_same_variables(a: &VarStore, b: &VarStore, grads: bool, what: &str) {
    let (a, b) = (variables(a), variables(b));
    let keys = |m: &BTreeMap<String, (Tensor, bool)>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&a), keys(&b), "{what}: keys differ");
    for (key, (x, x_trained)) in &a {
        let (y, y_trained) = &b[key];
        assert_eq!(x_trained, y_trained, "{what}: {key} is trained in one only");
        assert_identical(x, y, &format!("{what}: {key}"));
        if grads && *x_trained {
            assert_identical(&x.grad(), &y.grad(), &format!("{what}: grad of {key}"));
        }
    }
}

const SEED: i64 = 17;

/// Compares generated model `$model` with the run-time network of `$ir`; `[$tap, …]` are the
/// fields of its activations struct, which must be the `relu_cfg` layers in order.
macro_rules! compare {
    ($model:ty, $ir:expr, [$($tap:ident),*]) => {{
        let ir: vggdsl::Architecture = $ir;
        let what = stringify!($model);
        let _rng = rng();
        tch::manual_seed(SEED);
        let gvs = VarStore::new(Device::Cpu);
        let generated = <$model>::new(&gvs.root());
        tch::manual_seed(SEED);
        let rvs = VarStore::new(Device::Cpu);
        let network = Network::new(&rvs.root(), &ir);
        assert_same_variables(&gvs, &rvs, false, &format!("{what} after init"));
        assert_eq!(network.to_string(), <$model>::REPR, "{what}: repr");

        let taps: &[&str] = &[$(stringify!($tap)),*];
        let relu_cfg: Vec<&str> = ir.relu_cfg.iter().map(|&i| ir.features[i].name.as_str()).collect();
        assert_eq!(taps, relu_cfg, "{what}: the test's tap list");

        tch::manual_seed(SEED + 1);
        let [c, h, w] = <$model>::INPUT_SHAPE;
        let xs = Tensor::randn([2, c, h, w], (Kind::Float, Device::Cpu));
        for train in [false, true] {
            let what = format!("{what} (train = {train})");
            #[allow(unused_variables)] // a model with one conv has no activations
            let (want, maps) = generated.forward_with_activations(&xs, train);
            let (got, got_maps) = network.forward_with_activations(&xs, train);
            assert_identical(&got, &want, &format!("{what}: forward_with_activations"));
            let mut got_maps = got_maps.iter();
            $(
                let (name, map) = got_maps.next().expect("a map per relu_cfg point");
                assert_eq!(*name, stringify!($tap));
                assert_identical(map, &maps.$tap, &format!("{what}: activation {name}"));
            )*
            assert!(got_maps.next().is_none(), "{what}: more activations than relu_cfg");
            let want = generated.forward_t(&xs, train);
            let got = network.forward_t(&xs, train);
            assert_identical(&got, &want, &format!("{what}: forward_t"));
            want.sum(Kind::Float).backward();
            got.sum(Kind::Float).backward();
            // Train mode has moved the running statistics twice, identically.
            assert_same_variables(&gvs, &rvs, true, &what);
        }

        let (want, got) = (generated.to_inference(), network.to_inference());
        // Two batch-size classes, each with the kernels the first model chose (and the tuner's
        // cache hands the second).
        for n in [4, 16] {
            let xs = Tensor::randn([n, c, h, w], (Kind::Float, Device::Cpu));
            let what = format!("{what}: to_inference, batch {n}");
            assert_identical(&got.forward(&xs), &want.forward(&xs), &what);
        }

        // Checkpoints both ways, into models drawn from another seed.
        let dir = tempdir();
        let file = dir.path().join("weights.safetensors");
        save_state_dict(&gvs, &file).unwrap();
        tch::manual_seed(SEED + 2);
        let mut other = VarStore::new(Device::Cpu);
        let _network = Network::new(&other.root(), &ir);
        load_state_dict(&mut other, &file).unwrap();
        assert_same_variables(&gvs, &other, false, &format!("{what}: generated → run-time"));
        save_state_dict(&rvs, &file).unwrap();
        tch::manual_seed(SEED + 3);
        let mut other = VarStore::new(Device::Cpu);
        let _generated = <$model>::new(&other.root());
        load_state_dict(&mut other, &file).unwrap();
        assert_same_variables(&rvs, &other, false, &format!("{what}: run-time → generated"));
    }};
}

macro_rules! vgg16 {
    ($model:ty, $file:literal) => {
        compare!(
            $model,
            from_file($file, stringify!($model)),
            [
                relu0, pool2, relu3, pool5, relu6, relu7, pool9, relu10, relu11, pool13, relu14,
                relu15
            ]
        )
    };
}

#[test]
fn seed() {
    vgg16!(Vgg16Bn, "examples/vgg16_bn.vgg");
}

#[test]
fn hrank_pruned() {
    vgg16!(Vgg16BnHrank, "examples/hrank_vgg16_pruned.vgg");
}

#[test]
fn hrank_plus_pruned() {
    vgg16!(Vgg16HrankPlus, "tests/models/variants.vgg");
}

#[test]
fn no_batchnorm() {
    vgg16!(Vgg16NoBn, "tests/models/variants.vgg");
}

#[test]
fn input_64() {
    vgg16!(Vgg16Input64, "tests/models/variants.vgg");
}

#[test]
fn pytorch_init() {
    vgg16!(Vgg16TorchInit, "tests/models/variants.vgg");
}

#[test]
fn vgg19() {
    compare!(
        Vgg19,
        from_file("tests/models/variants.vgg", "Vgg19"),
        [
            relu0, pool2, relu3, pool5, relu6, relu7, relu8, pool10, relu11, relu12, relu13,
            pool15, relu16, relu17, relu18
        ]
    );
}

#[test]
fn vgg13() {
    compare!(
        Vgg13,
        from_file("tests/models/variants.vgg", "Vgg13"),
        [relu0, pool2, relu3, pool5, relu6, pool8, relu9, pool11, relu12]
    );
}

#[test]
fn vgg11_cifar100() {
    compare!(
        Vgg11Cifar100,
        from_file("tests/models/variants.vgg", "Vgg11Cifar100"),
        [pool1, pool3, relu4, pool6, relu7, pool9, relu10]
    );
}

#[test]
fn pool_first_uniform_init() {
    compare!(
        odd::PoolFirst,
        from_source(odd::SOURCE, "PoolFirst"),
        [pool2]
    );
}

#[test]
fn one_conv() {
    compare!(odd::OneConv, from_source(odd::SOURCE, "OneConv"), []);
}
