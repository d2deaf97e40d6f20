// Several models in one call, mixing both forms; init expressions use `in` (a Rust keyword),
// negative numbers and floats.
use vggdsl_runtime::tch::nn::{ModuleT, VarStore};
use vggdsl_runtime::tch::{Device, Kind, Tensor};

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

fn main() {
    let vs = VarStore::new(Device::Cpu);
    let small = Small::new(&(vs.root() / "small"));
    let xs = Tensor::zeros([2, 3, 16, 16], (Kind::Float, Device::Cpu));
    // Zeros through the convs give each bias; the last Linear adds its own -0.5.
    assert_eq!(small.forward_t(&xs, false).size(), [2, 7]);
    assert_eq!(small.features.conv0.bias.double_value(&[0]), -1.0);
    assert_eq!(small.classifier.linear2.bias.double_value(&[0]), -0.5);

    let pruned = Vgg16HrankPlus::new(&(vs.root() / "pruned"));
    let xs = Tensor::zeros([2, 3, 32, 32], (Kind::Float, Device::Cpu));
    assert_eq!(pruned.forward_t(&xs, false).size(), [2, 10]);
    // 0.95 of conv0's 64 filters pruned; the last conv keeps its 512 (HRankPlus form).
    assert_eq!(pruned.features.conv0.weight.size()[0], 3);
    assert_eq!(pruned.features.conv16.weight.size()[0], 512);
}
