// The file form. trybuild builds its cases in target/tests/trybuild/vggdsl-runtime, their
// CARGO_MANIFEST_DIR, so the path climbs back to the workspace.
use vggdsl_runtime::tch::nn::{ModuleT, VarStore};
use vggdsl_runtime::tch::{Device, Kind, Tensor};

vggdsl_runtime::vgg!("../../../../runtime/tests/models/net.vgg");

fn main() {
    let vs = VarStore::new(Device::Cpu);
    let xs = Tensor::zeros([2, 3, 32, 32], (Kind::Float, Device::Cpu));
    let small = SmallPruned::new(&(vs.root() / "small"));
    assert_eq!(small.forward_t(&xs, false).size(), [2, 100]);
    let vgg11 = Vgg11Cifar100::new(&(vs.root() / "vgg11"));
    assert_eq!(vgg11.forward_t(&xs, false).size(), [2, 100]);
}
