// Temporary: time a seed sweep on synthetic CIFAR images.
use std::num::NonZeroUsize;
use std::path::Path;
use vggdsl_runtime::tch::{self, nn::VarStore, Device};
use vggdsl_runtime::Network;
use vggdsl_train::data::{Dataset, ImageSet, Split};
use vggdsl_train::latency::{At, LatencyTable};
use vggdsl_train::prune::{By, Request};
use vggdsl_train::sensitivity::{sweep, Sweep};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let threads: i32 = args.get(1).map_or(2, |a| a.parse().unwrap());
    tch::set_num_threads(threads);
    let dir = Path::new("/tmp/sweep");
    if !dir.join("data_batch_1.bin").exists() {
        vggdsl_test_support::cifar::write_cifar10(dir, 200, 100);
    }
    let source = std::fs::read_to_string("examples/vgg16_bn.vgg").unwrap();
    let model = vggdsl::check_source(&source).unwrap().remove(0);
    let weights = dir.join("seed.safetensors");
    if !weights.exists() {
        tch::manual_seed(0);
        let vs = VarStore::new(Device::Cpu);
        let _n = Network::new(&vs.root(), &model);
        vggdsl_runtime::save_state_dict(&vs, &weights).unwrap();
    }
    let set = ImageSet::load(Dataset::Cifar10, Split::Train, dir).unwrap();
    let request = Request {
        source: &source,
        file_name: "vgg16_bn.vgg",
        model: &model,
        weights: &weights,
        rates: None,
        by: By::L1,
        rule: Default::default(),
        round_to: None,
        inherit: Default::default(),
        seed: 0,
    };
    let rates: Vec<f64> = (1..10).map(|i| i as f64 / 10.0).collect();
    let mut table = LatencyTable::open(Some(dir.join("latency.json")), "test machine");
    let start = std::time::Instant::now();
    let file = sweep(
        &Sweep {
            request: &request,
            by: "l1",
            rates: &rates,
            validation: &set,
            batch_size: NonZeroUsize::new(250).unwrap(),
            latency: At { batch: 1, threads },
        },
        &mut table,
        &mut |p| {
            eprintln!(
                "{:>4.1}s {}/{} {} {}",
                start.elapsed().as_secs_f64(),
                p.done,
                p.total,
                p.conv,
                p.rate
            )
        },
    )
    .unwrap();
    println!("{:?}", file.seconds);
    println!("unpruned {:?}", file.unpruned);
    println!("blocks timed {} in {:.1}s", table.timed, table.seconds);
}
