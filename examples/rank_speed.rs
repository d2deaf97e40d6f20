//! How fast `vggdsl rank` computes HRank's ranks, against HRank's own way, on the seed network
//! (VGG-16-BN, 3×32×32) with the same weights and the same images.
//!
//! HRank's way (`hrank.py ranks` of `vggdsl-test-support`, written from shared/HRANK.md): one pass over the
//! images per conv with a forward hook on its block output, and `torch.linalg.matrix_rank` per
//! image and channel (here for all 13 convs, as vggdsl ranks them). vggdsl's way
//! ([`RankSums`]): one forward pass per batch tapping every block output, and one batched
//! `linalg_matrix_rank` per block output. Both run on the same libtorch, eval-mode BatchNorm, no
//! gradients, batches of 128. The images are seeded Gaussian noise (the time does not depend on
//! what they show); the weights are the seed's init. The mean ranks must come out equal.
//!
//! ```text
//! cargo run --release --example rank_speed [-- --images 640]
//! ```

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use vggdsl::files::ranks::RanksFile;
use vggdsl_runtime::tch::nn::VarStore;
use vggdsl_runtime::tch::{self, Device, Kind, Tensor};
use vggdsl_runtime::Network;
use vggdsl_test_support::pytorch;
use vggdsl_train::hrank::RankSums;

const BATCH: i64 = 128;

/// vggdsl's mean ranks of `xs`, `BATCH` images at a time.
fn ranks(net: &Network, xs: &Tensor) -> RanksFile {
    let images = xs.size()[0];
    let mut sums = RankSums::new(net);
    for first in (0..images).step_by(BATCH as usize) {
        let batch = xs.narrow(0, first, BATCH.min(images - first));
        sums.add(net, &batch).expect("the seed's maps are finite");
    }
    sums.means()
}

fn main() {
    let mut images = 640;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match (a.as_str(), args.next()) {
            ("--images", Some(n)) => images = n.parse().expect("--images N"),
            _ => panic!("usage: rank_speed [--images N]"),
        }
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::temp_dir().join(format!("vggdsl-rank-speed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    let ir = vggdsl_runtime::load_models(root.join("examples/vgg16_bn.vgg"))
        .unwrap()
        .remove(0);
    tch::manual_seed(0);
    let vs = VarStore::new(Device::Cpu);
    let net = Network::new(&vs.root(), &ir);
    vggdsl_runtime::save_state_dict(&vs, dir.join("w.safetensors")).unwrap();
    let xs = Tensor::randn([images, 3, 32, 32], (Kind::Float, Device::Cpu));
    Tensor::write_safetensors(&[("images", &xs)], dir.join("images.safetensors")).unwrap();
    println!(
        "{} images, VGG-16-BN (13 convs, {} threads)",
        images,
        tch::get_num_threads()
    );

    let start = Instant::now();
    let means = ranks(&net, &xs);
    let ours = start.elapsed().as_secs_f64();
    println!("vggdsl (one pass, batched matrix_rank):          {ours:8.2} s");

    let python = pytorch::interpreter();
    let out = Command::new(&python)
        .arg(pytorch::script("hrank.py"))
        .args(["ranks", "--weights"])
        .arg(dir.join("w.safetensors"))
        .arg("--images")
        .arg(dir.join("images.safetensors"))
        .args(["--batch-size", &BATCH.to_string(), "--out"])
        .arg(dir.join("ranks.safetensors"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    assert!(
        out.status.success(),
        "hrank.py: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let theirs = report["seconds"].as_f64().unwrap();
    println!("HRank's loop (13 passes, matrix_rank per map):   {theirs:8.2} s");

    let expected: std::collections::HashMap<String, Tensor> =
        Tensor::read_safetensors(dir.join("ranks.safetensors"))
            .unwrap()
            .into_iter()
            .collect();
    let equal = means.convs.iter().all(|(conv, mean)| {
        let sums = expected[conv].sum_dim_intlist(0, false, Kind::Int64);
        let want: Vec<f64> = Vec::<i64>::try_from(&sums)
            .unwrap()
            .iter()
            .map(|&s| s as f64 / images as f64)
            .collect();
        &want == mean
    });
    println!(
        "speed-up: {:.1}×; mean ranks {}",
        theirs / ours,
        if equal { "equal" } else { "DIFFER" }
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert!(equal, "the mean ranks differ from HRank's loop");
}
