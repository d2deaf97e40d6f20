//! The generated models of the root package (`examples/*.vgg`, `tests/models/variants.vgg`, and one
//! `vgg!` model), each with the `reference.py --config` that builds the same network in PyTorch.

use std::fmt::Display;

use vggdsl_runtime::tch::nn::{self, Module, ModuleT, VarStore};
use vggdsl_runtime::tch::{self, Device, Kind, Tensor};

// The example and test models, compiled from `.vgg` files by `build.rs` through
// `vggdsl::Builder`. Warnings are errors here so that generated code stays warning-free.
#[deny(warnings)]
mod generated {
    vggdsl_runtime::include_vgg!("vgg16_bn");
    vggdsl_runtime::include_vgg!("hrank_vgg16_pruned");
    vggdsl_runtime::include_vgg!("variants");
}
pub use generated::*;

/// What the tests use of a generated model type, as a trait object.
pub trait Generated: ModuleT + Display {
    /// `to_inference()`: BatchNorm folded, ReLU fused, conv kernels chosen per batch size.
    fn inference(&self) -> Box<dyn Module>;
}

/// A generated model with the `reference.py --config` that builds the same network in PyTorch.
pub struct Model {
    pub name: &'static str,
    pub config: String,
    pub input: [i64; 3],
    pub classes: i64,
    pub build: fn(&nn::Path) -> Box<dyn Generated>,
}

/// Declares `fn $name() -> Model` for each generated type, and `all()` listing them.
macro_rules! models {
    ($($(#[$doc:meta])* $name:ident: $ty:ident = $config:expr;)*) => {
        $(
            impl Generated for $ty {
                fn inference(&self) -> Box<dyn Module> {
                    Box::new(self.to_inference())
                }
            }

            $(#[$doc])*
            pub fn $name() -> Model {
                Model {
                    name: stringify!($ty),
                    config: String::from($config),
                    input: $ty::INPUT_SHAPE,
                    classes: $ty::NUM_CLASSES,
                    build: |p| Box::new($ty::new(p)),
                }
            }
        )*

        /// Every generated model of the package: the comparisons with PyTorch cover them all.
        pub fn all() -> Vec<Model> {
            vec![$($name()),*]
        }
    };
}

/// A non-square input: 48 × 80 ends at 3 × 5 after four pools, 1 × 2 after the head (flat 1024).
/// Declared with `vgg!` (the others come from build.rs), so that route is compared with PyTorch
/// too.
mod inline {
    vggdsl_runtime::vgg!(pub Vgg11NonSquare<cfg = vgg11, input = [3, 48, 80]>);
}
pub use inline::Vgg11NonSquare;

pub const HRANK_RATES: &str = "[0.95, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.9, 0.9, 0.9, 0.9, 0.8, 0.8]";
pub const HRANK_PLUS_RATES: &str = "[0.95, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.9, 0.9, 0.9, 0.9, 0.8]";

models! {
    /// The seed: examples/vgg16_bn.vgg.
    seed: Vgg16Bn = r#"{"cfg": "default"}"#;
    torch_init: Vgg16TorchInit = r#"{"init": "pytorch"}"#;
    /// HRank's pruned VGG-16 (examples/hrank_vgg16_pruned.vgg): odd widths 3, 51, 102, …
    hrank: Vgg16BnHrank = format!(r#"{{"compress_rate": {HRANK_RATES}}}"#);
    no_bn: Vgg16NoBn = r#"{"cfg": "vgg16", "bn": false}"#;
    hrank_plus: Vgg16HrankPlus = format!(r#"{{"compress_rate": {HRANK_PLUS_RATES}}}"#);
    vgg19: Vgg19 = r#"{"cfg": "vgg19"}"#;
    vgg13: Vgg13 = r#"{"cfg": "vgg13"}"#;
    vgg11_cifar100: Vgg11Cifar100 = r#"{"cfg": "vgg11", "num_classes": 100}"#;
    input64: Vgg16Input64 = r#"{"input": [3, 64, 64]}"#;
    non_square: Vgg11NonSquare = r#"{"cfg": "vgg11", "input": [3, 48, 80]}"#;
}

/// `tch::manual_seed(seed)`, then the model, as `torch.manual_seed(seed)` before `VGG(...)`.
pub fn build(model: &Model, seed: i64) -> (VarStore, Box<dyn Generated>) {
    let _rng = vggdsl_test_support::rng();
    tch::manual_seed(seed);
    let vs = VarStore::new(Device::Cpu);
    let net = (model.build)(&vs.root());
    (vs, net)
}

/// A seeded batch of `n` inputs for `model` (`torch.randn`) and labels in `0..classes`.
pub fn batch(model: &Model, n: i64, seed: i64) -> (Tensor, Tensor) {
    let _rng = vggdsl_test_support::rng();
    tch::manual_seed(seed);
    let [c, h, w] = model.input;
    let x = Tensor::randn([n, c, h, w], (Kind::Float, Device::Cpu));
    let y = Tensor::randint(model.classes, [n], (Kind::Int64, Device::Cpu));
    (x, y)
}
