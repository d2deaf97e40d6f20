// The compact form, with visibility and name.
use vggdsl_runtime::tch::nn::{ModuleT, VarStore};
use vggdsl_runtime::tch::{Device, Kind, Tensor};

vggdsl_runtime::vgg!(pub Net<cfg = [64, M, 128, M, 256], bn = false, num_classes = 100, compress_rate = [0.5]*2>);

fn main() {
    let vs = VarStore::new(Device::Cpu);
    let net = Net::new(&vs.root());
    let xs = Tensor::zeros([2, 3, 32, 32], (Kind::Float, Device::Cpu));
    assert_eq!(net.forward_t(&xs, false).size(), [2, 100]);
    // The rates halve both convs: 64 → 32 and 128 → 64 channels.
    assert_eq!(net.features.conv2.weight.size(), [64, 32, 3, 3]);
}
