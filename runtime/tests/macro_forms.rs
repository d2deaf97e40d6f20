//! `vgg!` through rustc: each accepted form compiles, and its models build and run. (Each refused
//! form and its error, underlining the offending tokens, is a trybuild case of
//! `vggdsl-macros/tests/ui.rs`.)
use vggdsl_runtime::tch::nn::{ModuleT, VarStore};
use vggdsl_runtime::tch::{Device, Kind, Tensor};

fn zeros(n: i64, [c, h, w]: [i64; 3]) -> Tensor {
    Tensor::zeros([n, c, h, w], (Kind::Float, Device::Cpu))
}

/// The compact form, with visibility and name.
mod compact {
    vggdsl_runtime::vgg!(pub Net<cfg = [64, M, 128, M, 256], bn = false, num_classes = 100, compress_rate = [0.5]*2>);
}

#[test]
fn compact_form() {
    let vs = VarStore::new(Device::Cpu);
    let net = compact::Net::new(&vs.root());
    let xs = zeros(2, [3, 32, 32]);
    assert_eq!(net.forward_t(&xs, false).size(), [2, 100]);
    // The rates halve both convs: 64 → 32 and 128 → 64 channels.
    assert_eq!(net.features.conv2.weight.size(), [64, 32, 3, 3]);
}

/// The file form, relative to `CARGO_MANIFEST_DIR` (runtime/).
mod file {
    vggdsl_runtime::vgg!("tests/models/net.vgg");
}

#[test]
fn file_form() {
    let vs = VarStore::new(Device::Cpu);
    let xs = zeros(2, [3, 32, 32]);
    let small = file::SmallPruned::new(&(vs.root() / "small"));
    assert_eq!(small.forward_t(&xs, false).size(), [2, 100]);
    let vgg11 = file::Vgg11Cifar100::new(&(vs.root() / "vgg11"));
    assert_eq!(vgg11.forward_t(&xs, false).size(), [2, 100]);
}

/// The full form, exactly as in a `.vgg` file: the seed network with its init rules.
mod full {
    vggdsl_runtime::vgg! {
        pub model Vgg16Bn {
            input = [3, 32, 32]
            cfg = [64, 64, M, 128, 128, M, 256, 256, 256, M, 512, 512, 512, M, 512, 512, 512, 512]
            bn = true
            num_classes = 10
            init = {
                conv.weight = normal(0, sqrt(2 / (k * k * out)))
                conv.bias = constant(0)
                norm2d.weight = constant(0.5)
                norm2d.bias = constant(0)
                linear.weight = normal(0, 0.01)
                linear.bias = constant(0)
            }
        }
    }
}

#[test]
fn full_form() {
    use full::Vgg16Bn;
    let vs = VarStore::new(Device::Cpu);
    let net = Vgg16Bn::new(&vs.root());
    let xs = zeros(2, Vgg16Bn::INPUT_SHAPE);
    assert_eq!(net.forward_t(&xs, false).size(), [2, 10]);
    assert_eq!(Vgg16Bn::PARAMS, 14_991_946);
    assert_eq!(net.features.norm0.weight.double_value(&[0]), 0.5);
}

/// Several models in one call, mixing both forms; init expressions use `in` (a Rust keyword),
/// negative numbers and floats.
mod several {
    vggdsl_runtime::vgg! {
        pub model Small {
            input = [3, 16, 16]
            cfg = [32, M, 64, M, 128]
            bn = false
            num_classes = 7
            init = {
                conv.weight = uniform(-0.1, sqrt(1 / (in * k * k)))
                conv.bias = constant(- 1)
                linear.weight = normal(0, 0.01)
                linear.bias = constant(-0.5)
            }
        }
        pub Vgg16HrankPlus<cfg = default, compress_rate = [0.95] + [0.5] * 6 + [0.9] * 4 + [0.8]>
    }
}

#[test]
fn several_models_in_one_call() {
    let vs = VarStore::new(Device::Cpu);
    let small = several::Small::new(&(vs.root() / "small"));
    // Zeros through the convs give each bias; the last Linear adds its own -0.5.
    assert_eq!(
        small.forward_t(&zeros(2, [3, 16, 16]), false).size(),
        [2, 7]
    );
    assert_eq!(small.features.conv0.bias.double_value(&[0]), -1.0);
    assert_eq!(small.classifier.linear2.bias.double_value(&[0]), -0.5);

    let pruned = several::Vgg16HrankPlus::new(&(vs.root() / "pruned"));
    assert_eq!(
        pruned.forward_t(&zeros(2, [3, 32, 32]), false).size(),
        [2, 10]
    );
    // 0.95 of conv0's 64 filters pruned; the last conv keeps its 512 (HRankPlus form).
    assert_eq!(pruned.features.conv0.weight.size()[0], 3);
    assert_eq!(pruned.features.conv16.weight.size()[0], 512);
}

/// `pub(crate)` and `pub(in path)` pass to the generated items as written.
mod models {
    vggdsl_runtime::vgg!(pub(crate) Vgg11<cfg = vgg11>);

    pub mod inner {
        vggdsl_runtime::vgg!(pub(in crate::models) Vgg13<cfg = vgg13, bn = false>);
    }

    pub fn vgg13_output(xs: &vggdsl_runtime::tch::Tensor) -> Vec<i64> {
        use vggdsl_runtime::tch::nn::{ModuleT, VarStore};
        let vs = VarStore::new(vggdsl_runtime::tch::Device::Cpu);
        inner::Vgg13::new(&vs.root()).forward_t(xs, false).size()
    }
}

#[test]
fn visibility() {
    let vs = VarStore::new(Device::Cpu);
    let net = models::Vgg11::new(&vs.root());
    let xs = zeros(2, [3, 32, 32]);
    assert_eq!(net.forward_t(&xs, false).size(), [2, 10]);
    assert_eq!(models::vgg13_output(&xs), [2, 10]);
}
