//! The criteria of `vggdsl prune --by bn|fpgm|taylor` against their PyTorch reference
//! (`criteria.py` of `vggdsl-test-support`, written from the papers): on a small model trained a
//! few steps here (so that its scales, kernels and gradients have moved from their init), each
//! criterion keeps the same filters as PyTorch's, and its scores agree.

use std::num::NonZeroUsize;

use serde_json::Value;
use vggdsl::select::WidthRule;
use vggdsl_runtime::tch::nn::VarStore;
use vggdsl_runtime::tch::{self, Device, Tensor};
use vggdsl_runtime::Network;
use vggdsl_test_support::cifar::write_cifar10;
use vggdsl_test_support::{file_in, pytorch, rng, tempdir};
use vggdsl_train::criteria::{bn, fpgm, taylor};
use vggdsl_train::data::{Augment, Dataset, ImageSet, Split};
use vggdsl_train::hrank::{choose, Criterion};
use vggdsl_train::sgd::{Sgd, SgdConfig};
use vggdsl_train::sparsity::Sparsity;
use vggdsl_train::trainer::sparse_train_step;

const SMALL: &str = "model Small { cfg = [8, M, 16, M, 16, 24] }";
const SMALL_CONFIG: &str = r#"{"cfg": [8, "M", 16, "M", 16, 24]}"#;
const RATES: [f64; 3] = [0.5, 0.25, 0.5];

#[test]
fn bn_fpgm_and_taylor_keep_the_filters_pytorch_keeps() {
    let _rng = rng();
    let dir = tempdir();
    write_cifar10(dir.path(), 40, 10);
    let train = ImageSet::load(Dataset::Cifar10, Split::Train, dir.path()).unwrap();
    let ir = vggdsl::check_source(SMALL).unwrap().remove(0);
    tch::manual_seed(2);
    let vs = VarStore::new(Device::Cpu);
    let net = Network::new(&vs.root(), &ir);
    // A few steps of sparsity training, so that the BatchNorm scales spread.
    let config = SgdConfig {
        momentum: 0.9,
        weight_decay: 5e-4,
        nesterov: false,
    };
    let mut sgd = Sgd::new(&vs, config);
    let sparsity = Sparsity::new(&vs, &ir, 1e-2).unwrap();
    let batch = NonZeroUsize::new(20).unwrap();
    for b in train.epoch(batch, Augment::HRANK, 1, 0) {
        sparse_train_step(&net, &mut sgd, Some(&sparsity), &b, 0.05).unwrap();
    }
    let weights = file_in(&dir, "w.safetensors");
    vggdsl_runtime::save_state_dict(&vs, &weights).unwrap();

    // Taylor's images: the first 3 batches of 16 of the training set, in file order.
    let (batch_size, images) = (NonZeroUsize::new(16).unwrap(), 48);
    let (xs, ys): (Vec<Tensor>, Vec<Tensor>) = train
        .in_order(batch_size, images)
        .map(|b| (b.images, b.labels))
        .unzip();
    let file = file_in(&dir, "images.safetensors");
    Tensor::write_safetensors(
        &[
            ("images", Tensor::cat(&xs, 0)),
            ("labels", Tensor::cat(&ys, 0)),
        ],
        &file,
    )
    .unwrap();

    let keep: Vec<i64> = ir
        .convs()
        .zip(RATES)
        .map(|((.., c), r)| WidthRule::HRankPlus.kept(c, r, 1))
        .collect();
    let ours = [
        ("bn", bn::scores(&net).unwrap()),
        ("fpgm", fpgm::scores(&net)),
        (
            "taylor",
            taylor::scores(&net, &train, batch_size, images, &mut |_| {}).unwrap(),
        ),
    ];

    let out = file_in(&dir, "reference.json");
    let rates = RATES.map(|r| r.to_string()).join(",");
    let args = [
        "--config",
        SMALL_CONFIG,
        "--weights",
        &weights,
        "--images",
        &file,
        "--batch-size",
        "16",
        "--rates",
        &rates,
        "--out",
        &out,
    ];
    if pytorch::run("criteria.py", args).is_none() {
        return;
    }
    let reference: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let convs: Vec<&str> = ir.convs().map(|(_, name, _)| name).collect();
    for (criterion, scores) in ours {
        let theirs = &reference[criterion];
        let kept = choose(&net, &keep, &Criterion::Scores(scores.clone()));
        for (conv, (scores, kept)) in convs.iter().zip(scores.iter().zip(&kept)) {
            let want: Vec<i64> = serde_json::from_value(theirs["kept"][conv].clone()).unwrap();
            assert_eq!(kept, &want, "{criterion} {conv}: kept filters");
            let reference: Vec<f64> =
                serde_json::from_value(theirs["scores"][conv].clone()).unwrap();
            assert_eq!(scores.len(), reference.len());
            for (i, (a, b)) in scores.iter().zip(&reference).enumerate() {
                let close = (a - b).abs() <= 1e-6 * a.abs().max(b.abs()).max(1e-12);
                assert!(close, "{criterion} {conv} filter {i}: {a} against {b}");
            }
            // The scores separate the filters: the kept ones are not a tie broken by index.
            let distinct: std::collections::HashSet<u64> =
                scores.iter().map(|s| s.to_bits()).collect();
            assert!(
                distinct.len() > kept.len(),
                "{criterion} {conv}: {scores:?}"
            );
        }
        println!("{criterion}: the filters PyTorch keeps");
    }
}

#[test]
fn bn_refuses_a_model_without_batchnorm() {
    let ir = vggdsl::check_source("model Plain { cfg = [8, M, 16, 24]  bn = false }")
        .unwrap()
        .remove(0);
    let vs = VarStore::new(Device::Cpu);
    let net = Network::new(&vs.root(), &ir);
    assert_eq!(
        bn::scores(&net).unwrap_err().to_string(),
        "model Plain has no BatchNorm after its convs (bn = false), and --by bn scores filters by \
         the BatchNorm scale factors"
    );
}
