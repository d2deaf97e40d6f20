//! The main job: the seed network (`examples/vgg16_bn.vgg`, compiled by build.rs) on a random
//! CIFAR-sized batch. Prints the PyTorch-style repr, the output shape and the time.
use std::time::Instant;
use vggdsl_runtime::tch::{self, nn, nn::ModuleT, Device, Kind, Tensor};

vggdsl_runtime::include_vgg!("vgg16_bn");

fn main() {
    tch::manual_seed(0);
    let vs = nn::VarStore::new(Device::Cpu);
    let net = Vgg16Bn::new(&vs.root());
    println!("{net}");
    let batch = 64;
    let xs = Tensor::randn([batch, 3, 32, 32], (Kind::Float, Device::Cpu));
    let _warmup = tch::no_grad(|| net.forward_t(&xs, false));
    let start = Instant::now();
    let ys = tch::no_grad(|| net.forward_t(&xs, false));
    let elapsed = start.elapsed();
    println!();
    println!("input  {:?}", xs.size());
    println!("output {:?}", ys.size());
    println!(
        "eval forward, batch {batch}: {:.1} ms ({:.0} images/s, {} threads)",
        elapsed.as_secs_f64() * 1e3,
        batch as f64 / elapsed.as_secs_f64(),
        tch::get_num_threads()
    );
    println!(
        "{} parameters, {} MACs per image",
        Vgg16Bn::PARAMS,
        Vgg16Bn::MACS
    );
}
