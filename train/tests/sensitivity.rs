//! Sensitivity sweeps, evaluation on the fused inference path and the latency table, on a small
//! CIFAR-shaped model and CIFAR-10 files in the real format: a split pass equals a whole one, so a
//! conv pruned at rate 0 gives exactly the unpruned figures and one pruned at 0.5 exactly the
//! figures of the network `vggdsl prune` cuts.

use std::num::NonZeroUsize;
use std::sync::atomic::AtomicBool;

use vggdsl::Architecture;
use vggdsl_runtime::tch::nn::VarStore;
use vggdsl_runtime::tch::{self, Device};
use vggdsl_runtime::Network;
use vggdsl_test_support::{cifar, file_in, tempdir, TempDir};
use vggdsl_train::data::{Dataset, ImageSet, Split};
use vggdsl_train::latency::{self, At, Block, LatencyTable};
use vggdsl_train::prune::{self, By, Rates, Request};
use vggdsl_train::sensitivity::{sweep, Sweep};
use vggdsl_train::trainer::{evaluate, Evaluation};

const SMALL: &str = "model Small { cfg = [8, M, 16, 16, M, 24, 32] }";

struct Setup {
    dir: TempDir,
    model: Architecture,
    images: ImageSet,
}

/// The model with seeded weights whose BatchNorm statistics are drawn too, and 60 images.
fn setup() -> Setup {
    let dir = tempdir();
    cifar::write_cifar10(dir.path(), 12, 10);
    let model = vggdsl::check_source(SMALL).unwrap().remove(0);
    let _guard = vggdsl_test_support::rng();
    tch::manual_seed(3);
    let vs = VarStore::new(Device::Cpu);
    let _net = Network::new(&vs.root(), &model);
    tch::no_grad(|| {
        for (key, mut t) in vs.variables() {
            if key.ends_with("running_var") {
                let _ = t.uniform_(0.5, 2.0);
            } else if key.ends_with("running_mean") || key.ends_with("bias") {
                let _ = t.normal_(0.0, 0.2);
            }
        }
    });
    vggdsl_runtime::save_state_dict(&vs, file_in(&dir, "w.safetensors")).unwrap();
    let images = ImageSet::load(Dataset::Cifar10, Split::Train, dir.path()).unwrap();
    Setup { dir, model, images }
}

fn request<'a>(s: &'a Setup, weights: &'a std::path::Path, rates: Option<Rates>) -> Request<'a> {
    Request {
        source: SMALL,
        file_name: "small.vgg",
        model: &s.model,
        weights,
        rates,
        by: By::L1,
        rule: Default::default(),
        round_to: None,
        inherit: Default::default(),
        seed: 0,
        name: None,
    }
}

fn batch(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap()
}

fn table(s: &Setup) -> LatencyTable {
    LatencyTable::open(Some(s.dir.path().join("latency.json")), "test machine")
}

#[test]
fn rate_zero_gives_the_unpruned_figures_and_a_rate_the_pruned_networks() {
    let s = setup();
    let weights = s.dir.path().join("w.safetensors");
    let unpruned_request = request(&s, &weights, None);
    let at = At {
        batch: 2,
        threads: 1,
    };
    let file = sweep(
        &Sweep {
            request: &unpruned_request,
            by: "l1",
            rates: &[0.0, 0.5],
            validation: &s.images,
            batch_size: batch(16),
            latency: at,
        },
        &mut table(&s),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(file.convs.len(), 4);
    // What the fused network makes of the images, whole.
    let vs = {
        let mut vs = VarStore::new(Device::Cpu);
        let net = Network::new(&vs.root(), &s.model);
        vggdsl_runtime::load_state_dict(&mut vs, &weights).unwrap();
        (vs, net)
    };
    let unpruned = run(&vs.1.to_inference(), &s.images);
    assert_eq!(file.unpruned.accuracy, unpruned.accuracy());
    assert_eq!(file.unpruned.loss, unpruned.loss);
    for (i, conv) in file.convs.iter().enumerate() {
        let zero = &conv.points[0];
        assert_eq!((zero.rate, zero.filters), (0.0, conv.width));
        assert_eq!(zero.accuracy, file.unpruned.accuracy, "{}", conv.name);
        assert_eq!(zero.loss, file.unpruned.loss, "{}", conv.name);
        assert_eq!(
            (zero.params, zero.macs),
            (file.unpruned.params, file.unpruned.macs)
        );
        // At 0.5: the network `prune` cuts with that conv alone at 0.5, run whole.
        let half = &conv.points[1];
        let mut rates = vec![0.0; 4];
        rates[i] = 0.5;
        let pruned = prune::prune(&request(
            &s,
            &weights,
            Some(Rates {
                text: vggdsl::rewrite::rate_list(&rates),
                values: rates,
            }),
        ))
        .unwrap();
        let net = {
            let mut vs = VarStore::new(Device::Cpu);
            let net = Network::new(&vs.root(), &pruned.architecture);
            vs.copy(&pruned.vars).unwrap();
            net.to_inference()
        };
        let whole = run(&net, &s.images);
        assert_eq!(half.filters, conv.width / 2);
        assert_eq!(half.accuracy, whole.accuracy(), "{}", conv.name);
        assert_eq!(half.loss, whole.loss, "{}", conv.name);
        assert_eq!(
            half.macs,
            vggdsl::analysis::summarize(&pruned.architecture).macs
        );
    }
}

fn run(net: &dyn tch::nn::ModuleT, set: &ImageSet) -> Evaluation {
    evaluate(net, set, batch(16), &AtomicBool::new(false), &mut |_, _| {})
        .unwrap()
        .unwrap()
}

#[test]
fn the_inference_path_classifies_as_the_eager_forward_pass() {
    let s = setup();
    let mut vs = VarStore::new(Device::Cpu);
    let net = Network::new(&vs.root(), &s.model);
    vggdsl_runtime::load_state_dict(&mut vs, s.dir.path().join("w.safetensors")).unwrap();
    let eager = run(&net, &s.images);
    let fused = run(&net.to_inference(), &s.images);
    assert_eq!(fused.correct, eager.correct);
    assert_eq!(fused.images, eager.images);
    assert!(
        (fused.loss - eager.loss).abs() < 1e-5 * eager.loss,
        "{fused:?} {eager:?}"
    );
}

#[test]
fn the_latency_table_times_a_block_once_per_machine() {
    let s = setup();
    let at = At {
        batch: 1,
        threads: 1,
    };
    let blocks = latency::blocks(&s.model);
    assert_eq!(
        blocks
            .iter()
            .map(|b| (b.in_channels, b.out_channels, b.map, b.pool))
            .collect::<Vec<_>>(),
        [
            (3, 8, [32, 32], true),
            (8, 16, [16, 16], false),
            (16, 16, [16, 16], true),
            (16, 24, [8, 8], false),
        ]
    );
    let mut first = table(&s);
    let sum = first.blocks(&s.model, at);
    assert_eq!(first.timed, 4);
    assert!(sum > 0.0);
    // Another process reads them back without timing; another machine's file counts as empty.
    let mut again = table(&s);
    assert_eq!(again.blocks(&s.model, at), sum);
    assert_eq!(again.timed, 0);
    let mut other = LatencyTable::open(Some(s.dir.path().join("latency.json")), "other");
    let block = Block {
        in_channels: 3,
        out_channels: 8,
        map: [32, 32],
        pool: true,
    };
    other.block(block, at);
    assert_eq!(other.timed, 1);
}
