// The full form, exactly as in a `.vgg` file: the seed network with its init rules.
use vggdsl_runtime::tch::nn::{ModuleT, VarStore};
use vggdsl_runtime::tch::{Device, Kind, Tensor};

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

fn main() {
    let vs = VarStore::new(Device::Cpu);
    let net = Vgg16Bn::new(&vs.root());
    let xs = Tensor::zeros([2, 3, 32, 32], (Kind::Float, Device::Cpu));
    assert_eq!(net.forward_t(&xs, false).size(), [2, 10]);
    assert_eq!(Vgg16Bn::PARAMS, 14_991_946);
    assert_eq!(net.features.norm0.weight.double_value(&[0]), 0.5);
}
