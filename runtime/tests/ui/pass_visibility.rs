// `pub(crate)` and `pub(in path)` pass to the generated items as written.
use vggdsl_runtime::tch::nn::{ModuleT, VarStore};
use vggdsl_runtime::tch::{Device, Kind, Tensor};

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

fn main() {
    let vs = VarStore::new(Device::Cpu);
    let net = models::Vgg11::new(&vs.root());
    let xs = Tensor::zeros([2, 3, 32, 32], (Kind::Float, Device::Cpu));
    assert_eq!(net.forward_t(&xs, false).size(), [2, 10]);
    assert_eq!(models::vgg13_output(&xs), [2, 10]);
}
