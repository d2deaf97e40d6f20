//! The trainer on a tiny model and small CIFAR-10 files written here in the real binary format:
//! its SGD steps against `torch.optim.SGD` (bit for bit), and resuming (after an epoch, in the
//! middle of one, during the test pass) against an uninterrupted run (bit for bit).

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use vggdsl::files::metrics::EpochMetrics;
use vggdsl::files::run::{LAST, METRICS, OPTIMIZER};
use vggdsl::spec::{Recipe, Schedule};
use vggdsl_runtime::tch::nn::VarStore;
use vggdsl_runtime::tch::{self, Device, Kind, Tensor};
use vggdsl_runtime::{ops, read_state_dict, save_state_dict};
use vggdsl_test_support::cifar::write_cifar10;
use vggdsl_test_support::{pytorch, rng, tempdir};
use vggdsl_train::checkpoint::RunDir;
use vggdsl_train::data::{Augment, Dataset, ImageSet, Split};
use vggdsl_train::sgd::{Sgd, SgdConfig};
use vggdsl_train::sparsity::Sparsity;
use vggdsl_train::trainer::{sparse_train_step, Data, Observer, Outcome, Progress};
use vggdsl_train::Trainer;

vggdsl_runtime::vgg!(pub Tiny<cfg = [8, M, 16, M, 32]>);

/// `Tiny` for `reference.py`'s `build_model`.
const TINY_CONFIG: &str = r#"{"cfg": [8, "M", 16, "M", 32]}"#;

fn data(dir: &Path) -> Data {
    Data {
        train: ImageSet::load(Dataset::Cifar10, Split::Train, dir).unwrap(),
        validation: None,
        test: ImageSet::load(Dataset::Cifar10, Split::Test, dir).unwrap(),
    }
}

fn tiny(seed: i64) -> (VarStore, Tiny) {
    tch::manual_seed(seed);
    let vs = VarStore::new(Device::Cpu);
    let net = Tiny::new(&vs.root());
    (vs, net)
}

fn recipe(epochs: u32, batch_size: u32) -> Recipe {
    Recipe {
        epochs,
        batch_size,
        lr: 0.05,
        schedule: Schedule::MultiStep {
            milestones: vec![1],
            gamma: 0.5,
        },
        seed: 7,
        ..Recipe::default()
    }
}

fn tensors(path: &Path) -> BTreeMap<String, Tensor> {
    read_state_dict(path).unwrap().into_iter().collect()
}

/// Every tensor of `a` equals the one of the same name in `b` (and the names are the same).
fn assert_same(a: &BTreeMap<String, Tensor>, b: &BTreeMap<String, Tensor>, what: &str) {
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "{what}: the names differ"
    );
    for (key, t) in a {
        assert!(t.equal(&b[key]), "{what}: {key} differs");
    }
}

/// Runs `train_reference.py` `command_and_inputs` with the steps' learning rates and SGD's
/// momentum, weight decay and nesterov; it writes its results to `out`. `None` without PyTorch.
fn pytorch_sgd(
    command_and_inputs: &[&str],
    lrs: &[f64],
    sgd: (f64, f64, bool),
    out: &Path,
) -> Option<()> {
    let (momentum, weight_decay, nesterov) = sgd;
    let lrs = lrs.iter().map(f64::to_string).collect::<Vec<_>>().join(",");
    let (m, wd) = (momentum.to_string(), weight_decay.to_string());
    let mut args = command_and_inputs.to_vec();
    args.extend([
        "--lrs",
        &lrs,
        "--momentum",
        &m,
        "--weight-decay",
        &wd,
        "--out",
        out.to_str().unwrap(),
    ]);
    if nesterov {
        args.push("--nesterov");
    }
    pytorch::run("train_reference.py", args).map(drop)
}

#[test]
fn sgd_steps_equal_pytorch_bit_for_bit() {
    let _rng = rng();
    let dir = tempdir();
    write_cifar10(dir.path(), 20, 10);
    let train = data(dir.path()).train;
    let batch = NonZeroUsize::new(16).unwrap();
    let batches: Vec<_> = train.epoch(batch, Augment::HRANK, 3, 0).take(4).collect();
    let mut file = Vec::new();
    for (i, b) in batches.iter().enumerate() {
        file.push((format!("x.{i}"), b.images.shallow_clone()));
        file.push((format!("y.{i}"), b.labels.shallow_clone()));
    }
    let batches_path = dir.path().join("batches.safetensors");
    std::fs::write(
        &batches_path,
        vggdsl_runtime::state_dict::safetensors_bytes(file).unwrap(),
    )
    .unwrap();
    let (vs, _) = tiny(11);
    let init = dir.path().join("init.safetensors");
    save_state_dict(&vs, &init).unwrap();
    // The learning rate changes between steps, as a schedule makes it. The last case adds
    // Network Slimming's sparsity step (`--sparsity`) on the BatchNorm scales.
    let lrs = [0.1, 0.1, 0.05, 0.02];
    let ir = vggdsl::check_source("model Tiny { cfg = [8, M, 16, M, 32] }").unwrap();
    for (momentum, weight_decay, nesterov, lambda) in [
        (0.9, 5e-4, false, 0.0),
        (0.8, 1e-3, true, 0.0),
        (0.9, 5e-4, false, 0.01),
    ] {
        let what = format!(
            "momentum {momentum}, weight decay {weight_decay}, nesterov {nesterov}, sparsity \
             {lambda}"
        );
        let (mut vs, net) = tiny(0);
        vggdsl_runtime::load_state_dict(&mut vs, &init).unwrap();
        let sparsity = (lambda > 0.0).then(|| Sparsity::new(&vs, &ir[0], lambda).unwrap());
        let mut sgd = Sgd::new(
            &vs,
            SgdConfig {
                momentum,
                weight_decay,
                nesterov,
            },
        );
        let mut ours = BTreeMap::new();
        for (i, (b, lr)) in batches.iter().zip(lrs).enumerate() {
            let (loss, _) = sparse_train_step(&net, &mut sgd, sparsity.as_ref(), b, lr).unwrap();
            ours.insert(format!("loss.{i}"), Tensor::from(loss as f32));
        }
        ours.extend(vs.variables());
        for (key, buf) in sgd.state() {
            ours.insert(format!("momentum_buffer.{key}"), buf);
        }
        let out = dir.path().join("pytorch.safetensors");
        let lambda = lambda.to_string();
        let inputs = [
            "sgd",
            "--config",
            TINY_CONFIG,
            "--weights",
            init.to_str().unwrap(),
            "--batches",
            batches_path.to_str().unwrap(),
            "--sparsity",
            &lambda,
        ];
        if pytorch_sgd(&inputs, &lrs, (momentum, weight_decay, nesterov), &out).is_none() {
            return;
        }
        assert_same(&ours, &tensors(&out), &what);
        println!("{what}: {} tensors equal to PyTorch's", ours.len());
    }
}

/// `ops::sgd_step` against `torch.optim.SGD` where the models above do not reach: lengths that
/// end outside a whole vector, lengths split over threads, f64, a non-contiguous parameter
/// (aten's ops then), each hyper-parameter on and off; bit for bit.
#[test]
fn sgd_step_equals_pytorch_on_every_path() {
    let _rng = rng();
    let dir = tempdir();
    tch::manual_seed(5);
    let lrs = [0.1, 0.05, 0.02];
    // Name, shape, dtype, transposed.
    let shapes: [(&str, &[i64], Kind, bool); 7] = [
        ("one", &[1], Kind::Float, false),
        ("fifteen", &[15], Kind::Float, false),
        ("seventeen", &[17], Kind::Float, false),
        ("threads", &[5, 20001], Kind::Float, false),
        ("double", &[7], Kind::Double, false),
        ("double_threads", &[3, 33335], Kind::Double, false),
        ("transposed", &[300, 7], Kind::Float, true),
    ];
    let mut file = Vec::new();
    let mut start = Vec::new();
    for (name, shape, kind, transposed) in shapes {
        let p = Tensor::randn(shape, (kind, Device::Cpu));
        let p = if transposed { p.tr() } else { p };
        file.push((format!("param.{name}"), p.contiguous()));
        let grads: Vec<Tensor> = lrs.iter().map(|_| p.randn_like()).collect();
        for (i, g) in grads.iter().enumerate() {
            file.push((format!("grad.{name}.{i}"), g.contiguous()));
        }
        start.push((name, p, grads));
    }
    let input = dir.path().join("tensors.safetensors");
    std::fs::write(
        &input,
        vggdsl_runtime::state_dict::safetensors_bytes(file).unwrap(),
    )
    .unwrap();
    for (momentum, weight_decay, nesterov) in [
        (0.9, 5e-4, false),
        (0.8, 1e-3, true),
        (0.9, 0.0, false),
        (0.0, 5e-4, false),
    ] {
        let what = format!("momentum {momentum}, weight decay {weight_decay}, nesterov {nesterov}");
        let mut ours = BTreeMap::new();
        for (name, p, grads) in &start {
            // `copy` keeps the strides: the transposed parameter stays non-contiguous.
            let mut param = p.copy().set_requires_grad(true);
            assert_eq!(param.is_contiguous(), !name.starts_with("transposed"));
            let mut buffer = None;
            for (g, lr) in grads.iter().zip(lrs) {
                ops::grad_to_none(&mut param);
                // d(sum(param·g))/dparam is g exactly.
                (&param * g).sum(param.kind()).backward();
                ops::sgd_step(
                    &mut param,
                    &mut buffer,
                    lr,
                    momentum,
                    weight_decay,
                    nesterov,
                )
                .unwrap();
            }
            ours.insert(format!("param.{name}"), param.detach().contiguous());
            if let Some(buf) = buffer {
                ours.insert(format!("momentum_buffer.{name}"), buf.contiguous());
            }
        }
        let out = dir.path().join("pytorch.safetensors");
        let inputs = ["sgd-tensors", "--tensors", input.to_str().unwrap()];
        if pytorch_sgd(&inputs, &lrs, (momentum, weight_decay, nesterov), &out).is_none() {
            return;
        }
        assert_same(&ours, &tensors(&out), &what);
    }
}

/// Raises `stop` after `after` batches in all, or when the test pass starts if `after` is None.
struct StopAfter<'a> {
    stop: &'a AtomicBool,
    after: Option<usize>,
    batches: usize,
    epochs: Vec<EpochMetrics>,
}

impl Observer for StopAfter<'_> {
    fn batch(&mut self, _: &Progress) {
        self.batches += 1;
        if Some(self.batches) == self.after {
            self.stop.store(true, Ordering::Relaxed);
        }
    }

    fn evaluating(&mut self, _: usize, _: usize) {
        if self.after.is_none() {
            self.stop.store(true, Ordering::Relaxed);
        }
    }

    fn epoch_end(&mut self, metrics: &EpochMetrics, _: bool) {
        self.epochs.push(metrics.clone());
    }
}

/// Trains `recipe` in `dir` from a fresh model; `stop_after` as in [`StopAfter`], `Some(0)` for
/// no stop.
fn start(data_dir: &Path, run: &Path, recipe: Recipe, stop_after: Option<usize>) -> Outcome {
    let (vs, net) = tiny(i64::try_from(recipe.seed).unwrap());
    let dir = RunDir::new(run);
    let mut trainer = Trainer::new(&net, &vs, "Tiny", data(data_dir), recipe, dir).unwrap();
    let stop = AtomicBool::new(false);
    let mut observer = StopAfter {
        stop: &stop,
        after: stop_after,
        batches: 0,
        epochs: Vec::new(),
    };
    trainer.run(&stop, &mut observer).unwrap()
}

fn resume(data_dir: &Path, run: &Path, epochs: Option<u32>) -> Outcome {
    let (mut vs, net) = tiny(99);
    let dir = RunDir::new(run);
    let mut trainer = Trainer::resume(&net, &mut vs, "Tiny", data(data_dir), dir, epochs).unwrap();
    trainer.run(&AtomicBool::new(false), &mut ()).unwrap()
}

/// The run's weights, momentum buffers and metrics without the wall times.
fn outcome_files(run: &Path) -> (BTreeMap<String, Tensor>, BTreeMap<String, Tensor>, String) {
    let metrics = std::fs::read_to_string(run.join(METRICS)).unwrap();
    let metrics = metrics
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("seconds");
            v.to_string() + "\n"
        })
        .collect();
    (
        tensors(&run.join(LAST)),
        tensors(&run.join(OPTIMIZER)),
        metrics,
    )
}

fn assert_same_run(a: &Path, b: &Path, what: &str) {
    let (weights_a, momentum_a, metrics_a) = outcome_files(a);
    let (weights_b, momentum_b, metrics_b) = outcome_files(b);
    assert_same(&weights_a, &weights_b, &format!("{what}: weights"));
    assert_same(&momentum_a, &momentum_b, &format!("{what}: momentum"));
    assert_eq!(metrics_a, metrics_b, "{what}: metrics");
}

#[test]
fn resumed_runs_equal_uninterrupted_ones_bit_for_bit() {
    let _rng = rng();
    let data_dir = tempdir();
    // 5 × 14 = 70 images in batches of 16: 5 batches an epoch, the last one of 6.
    write_cifar10(data_dir.path(), 14, 30);
    let runs = tempdir();
    let run = |name: &str| runs.path().join(name);

    let whole = run("whole");
    assert_eq!(
        start(data_dir.path(), &whole, recipe(3, 16), Some(0)),
        Outcome::Finished
    );
    let (weights, _, metrics) = outcome_files(&whole);
    assert_eq!(metrics.lines().count(), 3);
    // The milestone at epoch 1 halves the learning rate.
    assert!(metrics.lines().next().unwrap().contains(r#""lr":0.05"#));
    assert!(metrics.lines().nth(1).unwrap().contains(r#""lr":0.025"#));

    // One epoch, then resumed with the number of epochs raised to 3.
    let epochwise = run("epochwise");
    assert_eq!(
        start(data_dir.path(), &epochwise, recipe(1, 16), Some(0)),
        Outcome::Finished
    );
    assert_eq!(
        resume(data_dir.path(), &epochwise, Some(3)),
        Outcome::Finished
    );
    assert_same_run(&whole, &epochwise, "1 epoch + resumed 2");

    // Stopped after 7 batches: epoch 1 (from 0), after its second batch.
    let midway = run("midway");
    assert_eq!(
        start(data_dir.path(), &midway, recipe(3, 16), Some(7)),
        Outcome::Stopped {
            epoch: 1,
            batch: 2,
            batches: 5
        }
    );
    assert_eq!(resume(data_dir.path(), &midway, None), Outcome::Finished);
    assert_same_run(&whole, &midway, "stopped after 7 batches, resumed");

    // Stopped during the first test pass.
    let evaluating = run("evaluating");
    assert_eq!(
        start(data_dir.path(), &evaluating, recipe(3, 16), None),
        Outcome::Stopped {
            epoch: 0,
            batch: 5,
            batches: 5
        }
    );
    assert_eq!(
        resume(data_dir.path(), &evaluating, None),
        Outcome::Finished
    );
    assert_same_run(&whole, &evaluating, "stopped in the test pass, resumed");

    // And the weights are not simply those of the start: training did something.
    let (vs, _) = tiny(7);
    let moved = vs
        .variables()
        .iter()
        .filter(|(k, t)| t.requires_grad() && !t.equal(&weights[*k]))
        .count();
    assert!(moved > 0);
}
