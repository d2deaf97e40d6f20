//! The generated models are the seed's PyTorch network, checked number by number against
//! `reference.py` of `vggdsl-test-support` (the seed's code, parameterised) on the same libtorch,
//! for every generated model of the package (`common::models::all`):
//!
//! - the printed network equals the seed's and PyTorch's own `print(net)`;
//! - after the same `manual_seed`, construction gives bit-identical tensors;
//! - weights trained by PyTorch give PyTorch's outputs in eval and train mode, the same running
//!   statistics, and the same weights after SGD steps (lr 0.1, momentum 0.9, weight decay 5e-4);
//! - `torch.save` / safetensors checkpoints load, `save_state_dict` files load in PyTorch, partial
//!   loads keep a backbone, wrong checkpoints are refused, pruned checkpoints load.
//!
//! tch and PyTorch run the same ATen operations on the same libtorch, with the same thread count
//! (the Python process inherits this one's environment), so every number is compared for
//! equality, bit for bit: no tolerance. Run with `--nocapture` to see what was compared.
mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::mpsc;

use common::models::Vgg16Bn;
use common::models::{self, build, Model};
use vggdsl_runtime::tch::nn::{self, OptimizerConfig, VarStore};
use vggdsl_runtime::tch::{self, Device, Kind, Tensor};
use vggdsl_runtime::{
    load_state_dict, load_state_dict_with, read_state_dict, save_state_dict, LoadError, LoadMode,
    Mismatch,
};
use vggdsl_test_support::pytorch::{self, cmd, reference};
use vggdsl_test_support::{file_in, rng, tempdir, TempDir};

/// HRank's CIFAR fine-tuning optimiser, as `reference.py` (`SGD_ARGS`) uses it.
const LR: f64 = 0.1;
const SGD: nn::Sgd = nn::Sgd {
    momentum: 0.9,
    dampening: 0.,
    wd: 5e-4,
    nesterov: false,
};
/// The batch of the forward and SGD comparisons (> 1: BatchNorm1d trains on it).
const BATCH: i64 = 8;
/// SGD steps on one batch: from the second on, the momentum buffers take part.
const SGD_STEPS: usize = 3;

fn batch(model: &Model, seed: i64) -> (Tensor, Tensor) {
    models::batch(model, BATCH, seed)
}

// ---- comparisons -----------------------------------------------------------------------------

/// Every tensor of a file, by name.
fn tensors(path: impl AsRef<Path>) -> BTreeMap<String, Tensor> {
    read_state_dict(path.as_ref())
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .collect()
}

/// Every variable of a store, copied (so later steps don't change them), by name.
fn snapshot(vs: &VarStore) -> BTreeMap<String, Tensor> {
    vs.variables()
        .into_iter()
        .map(|(k, t)| (k, t.detach().copy()))
        .collect()
}

/// `max |a - b|` over all elements, after checking that shape and dtype agree.
fn max_diff(a: &Tensor, b: &Tensor, what: &str) -> f64 {
    assert_eq!(a.size(), b.size(), "{what}: shapes differ");
    assert_eq!(a.kind(), b.kind(), "{what}: dtypes differ");
    if a.numel() == 0 {
        return 0.0;
    }
    let (a, b) = (a.to_kind(Kind::Double), b.to_kind(Kind::Double));
    (a - b).abs().max().double_value(&[])
}

/// `ours` equals `theirs`: the same shape, dtype and every element.
fn assert_identical(ours: &Tensor, theirs: &Tensor, what: &str) {
    let d = max_diff(ours, theirs, what);
    assert!(ours.equal(theirs), "{what}: differs, max |diff| = {d:e}");
}

fn is_buffer(key: &str) -> bool {
    key.ends_with(".running_mean")
        || key.ends_with(".running_var")
        || key.ends_with(".num_batches_tracked")
}

/// The same keys, and every tensor identical.
fn assert_all_identical(
    ours: &BTreeMap<String, Tensor>,
    theirs: &BTreeMap<String, Tensor>,
    what: &str,
) {
    let keys = |m: &BTreeMap<String, Tensor>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(ours), keys(theirs), "{what}: the keys differ");
    for (key, theirs) in theirs {
        assert_identical(&ours[key], theirs, &format!("{what}: {key}"));
    }
    println!("{what}: {} tensors identical", theirs.len());
}

/// The largest change of the tensors `keep` selects from `before` to `after`.
fn moved(
    before: &BTreeMap<String, Tensor>,
    after: &BTreeMap<String, Tensor>,
    keep: impl Fn(&str) -> bool,
) -> f64 {
    before
        .iter()
        .filter(|(k, _)| keep(k) && !k.ends_with(".num_batches_tracked"))
        .map(|(k, t)| max_diff(&after[k], t, k))
        .fold(0.0, f64::max)
}

/// The state a train-mode forward leaves in the BatchNorm buffers, as PyTorch's `forward`
/// command names it.
fn after_train(pytorch: &BTreeMap<String, Tensor>) -> BTreeMap<String, Tensor> {
    pytorch
        .iter()
        .filter_map(|(k, t)| Some((k.strip_prefix("after_train.")?.to_owned(), t.copy())))
        .collect()
}

fn buffers(vs: &VarStore) -> BTreeMap<String, Tensor> {
    buffers_of(&snapshot(vs))
}

fn buffers_of(tensors: &BTreeMap<String, Tensor>) -> BTreeMap<String, Tensor> {
    tensors
        .iter()
        .filter(|(k, _)| is_buffer(k))
        .map(|(k, t)| (k.clone(), t.copy()))
        .collect()
}

fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

// ---- the tests -------------------------------------------------------------------------------

#[test]
fn printed_network_equals_the_seed_and_pytorch() {
    // The seed document's print(net), collapsed to one line by whoever copied it.
    let seed_txt = std::fs::read_to_string(pytorch::script("seed_repr.txt")).unwrap();
    let vs = VarStore::new(Device::Cpu);
    let net = {
        let _rng = rng();
        Vgg16Bn::new(&vs.root())
    };
    let ours = collapse(&format!("{net}"));
    let want = collapse(&seed_txt);
    assert!(want.starts_with("VGG( (features): Sequential( (conv0): Conv2d(3, 64,"));
    assert_eq!(
        ours, want,
        "the seed model's repr differs from the seed's print(net)"
    );
    println!("seed repr: {} characters equal", ours.len());

    // Every configuration against PyTorch's own repr of it, exactly (not only collapsed).
    let models = models::all();
    let commands: Vec<_> = models
        .iter()
        .map(|m| cmd(&["repr", "--config", &m.config]))
        .collect();
    let Some(answers) = reference(&commands) else {
        return;
    };
    for (m, json) in models.iter().zip(answers) {
        let vs = VarStore::new(Device::Cpu);
        let ours = {
            let _rng = rng();
            (m.build)(&vs.root()).to_string()
        };
        let theirs = json["repr"].as_str().unwrap();
        assert_eq!(ours, theirs, "{}: repr differs from PyTorch's", m.name);
        println!(
            "{}: repr equal to PyTorch's ({} characters)",
            m.name,
            ours.len()
        );
    }
}

#[test]
fn seeded_construction_is_bit_identical_to_pytorch() {
    let models = models::all();
    let dir = tempdir();
    let seed_of = |i: usize| 100 + i as i64;
    let commands: Vec<_> = models
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let out = file_in(&dir, &format!("{}.safetensors", m.name));
            cmd(&[
                "init",
                "--config",
                &m.config,
                "--seed",
                &seed_of(i).to_string(),
                "--out",
                &out,
            ])
        })
        .collect();
    if reference(&commands).is_none() {
        return;
    }
    for (i, m) in models.iter().enumerate() {
        let (vs, _net) = build(m, seed_of(i));
        let theirs = tensors(file_in(&dir, &format!("{}.safetensors", m.name)));
        let what = format!("{}: after manual_seed({})", m.name, seed_of(i));
        assert_all_identical(&snapshot(&vs), &theirs, &what);
    }
    // The seed's state_dict: 13 convs and norms (5 tensors each), 2 linears, 1 BatchNorm1d.
    assert_eq!(snapshot(&build(&models::seed(), 0).0).len(), 100);
}

/// The `reference.py` commands for [`check_trained`]: PyTorch trains the model for 3 steps from
/// `manual_seed(7)` (BatchNorm statistics become non-trivial), then from those weights gives
/// the eval and train-mode outputs on `xy`, the running statistics after the train forward, and
/// the weights after [`SGD_STEPS`] SGD steps on `xy`.
fn trained_commands(m: &Model, dir: &TempDir) -> Vec<Vec<String>> {
    let config = m.config.as_str();
    let (weights, xy) = (
        trained_file(m, dir),
        file_in(dir, &format!("{}_xy.safetensors", m.name)),
    );
    vec![
        cmd(&[
            "train",
            "--config",
            config,
            "--seed",
            "7",
            "--steps",
            "3",
            "--out-prefix",
            &file_in(dir, m.name),
        ]),
        cmd(&[
            "forward",
            "--config",
            config,
            "--weights",
            &weights,
            "--input",
            &xy,
            "--out",
            &file_in(dir, &format!("{}_forward.safetensors", m.name)),
        ]),
        cmd(&[
            "sgd-step",
            "--config",
            config,
            "--weights",
            &weights,
            "--input",
            &xy,
            "--out",
            &file_in(dir, &format!("{}_step.safetensors", m.name)),
            "--steps",
            &SGD_STEPS.to_string(),
        ]),
    ]
}

fn trained_file(m: &Model, dir: &TempDir) -> String {
    file_in(dir, &format!("{}.safetensors", m.name))
}

/// From PyTorch's trained weights (see [`trained_commands`]), the generated model gives
/// PyTorch's eval and train-mode outputs, running statistics, losses and weights after SGD steps.
fn check_trained(m: &Model, dir: &TempDir, x: &Tensor, y: &Tensor) {
    let weights = trained_file(m, dir);
    let pytorch = tensors(file_in(dir, &format!("{}_forward.safetensors", m.name)));
    let loaded = |seed| {
        let (mut vs, net) = build(m, seed);
        load_state_dict(&mut vs, &weights).unwrap_or_else(|e| panic!("{e}"));
        (vs, net)
    };
    let trained = tensors(&weights);
    assert!(
        trained
            .iter()
            .any(|(k, t)| k.ends_with(".num_batches_tracked") && t.int64_value(&[]) == 3),
        "{}: PyTorch's checkpoint has the statistics of 3 steps",
        m.name
    );

    // Eval mode: the running statistics of the file.
    let (vs, net) = loaded(1);
    let out = tch::no_grad(|| net.forward_t(x, false));
    assert_identical(&out, &pytorch["eval"], &format!("{}: eval output", m.name));
    assert!(
        !pytorch["eval"].equal(&pytorch["train"]),
        "{}: train mode should differ from eval mode",
        m.name
    );
    // The eval forward left the running statistics alone.
    let what = format!("{}: running stats after an eval forward", m.name);
    assert_all_identical(&buffers(&vs), &buffers_of(&trained), &what);

    // Train mode: batch statistics, and the running statistics they update.
    let (vs, net) = loaded(2);
    let out = tch::no_grad(|| net.forward_t(x, true));
    assert_identical(
        &out,
        &pytorch["train"],
        &format!("{}: train output", m.name),
    );
    let what = format!("{}: running stats after a train forward", m.name);
    assert_all_identical(&buffers(&vs), &after_train(&pytorch), &what);
    // ... which moved away from the file's: the comparison above is not of unchanged values.
    let stats_moved = moved(&buffers_of(&trained), &after_train(&pytorch), |_| true);
    assert!(
        stats_moved > 1e-3,
        "{}: the train forward left the stats alone",
        m.name
    );

    // SGD steps on (x, y): the loss of each, then every tensor.
    let (vs, net) = loaded(3);
    let mut opt = SGD.build(&vs, LR).unwrap();
    let mut losses = Vec::new();
    for _ in 0..SGD_STEPS {
        let loss = net.forward_t(x, true).cross_entropy_for_logits(y);
        opt.backward_step(&loss);
        losses.push(loss.detach());
    }
    let mut pytorch = tensors(file_in(dir, &format!("{}_step.safetensors", m.name)));
    let what = format!("{}: losses of {SGD_STEPS} SGD steps", m.name);
    let torch_losses = pytorch.remove("losses").expect("the loss of each step");
    assert_identical(&Tensor::stack(&losses, 0), &torch_losses, &what);
    let last = pytorch.remove("loss").unwrap();
    assert_identical(&losses[SGD_STEPS - 1], &last, &what);
    let what = format!("{}: after {SGD_STEPS} SGD steps", m.name);
    let after = snapshot(&vs);
    assert_all_identical(&after, &pytorch, &what);
    // The steps did something: they moved the weights away from the file's.
    assert!(
        moved(&trained, &after, |k| !is_buffer(k)) > 1e-3,
        "{}: the SGD steps moved nothing",
        m.name
    );
}

#[test]
fn trained_weights_forward_and_sgd_steps_match_pytorch() {
    // PyTorch works on the next model while this thread checks the last one.
    if pytorch::python().is_none() {
        return;
    }
    let models = models::all();
    let dir = tempdir();
    let inputs: Vec<_> = models
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let (x, y) = batch(m, 1000 + i as i64);
            let xy = file_in(&dir, &format!("{}_xy.safetensors", m.name));
            Tensor::write_safetensors(&[("x", &x), ("y", &y)], &xy).unwrap();
            (x, y)
        })
        .collect();
    let (done, ready) = mpsc::channel();
    std::thread::scope(|s| {
        s.spawn(|| {
            let done = done; // dropped if PyTorch fails, which ends the checks' wait
            for m in &models {
                reference(&trained_commands(m, &dir)).expect("PyTorch was found");
                if done.send(()).is_err() {
                    break; // the checks below failed
                }
            }
        });
        let ready = ready; // dropped if a check fails, which stops PyTorch
        for (m, (x, y)) in models.iter().zip(&inputs) {
            ready.recv().expect("PyTorch's results");
            check_trained(m, &dir, x, y);
        }
    });
}

#[test]
fn checkpoints_move_between_pytorch_and_the_generated_model() {
    let m = models::seed();
    let dir = tempdir();
    let (x, _) = batch(&m, 2000);
    let xy = file_in(&dir, "xy.safetensors");
    Tensor::write_safetensors(&[("x", &x)], &xy).unwrap();

    // Our weights, with non-trivial running statistics, saved for PyTorch.
    let (vs, net) = build(&m, 2001);
    let (x_stats, _) = batch(&m, 2002);
    let _ = tch::no_grad(|| net.forward_t(&x_stats, true));
    let ours = file_in(&dir, "ours.safetensors");
    save_state_dict(&vs, &ours).unwrap();

    let prefix = file_in(&dir, "torch");
    let Some(results) = reference(&[
        cmd(&[
            "train",
            "--seed",
            "9",
            "--steps",
            "3",
            "--out-prefix",
            &prefix,
        ]),
        cmd(&[
            "forward",
            "--weights",
            &format!("{prefix}.safetensors"),
            "--input",
            &xy,
            "--out",
            &file_in(&dir, "torch_forward.safetensors"),
        ]),
        cmd(&["check-load", "--weights", &ours, "--strict-dtype"]),
        cmd(&[
            "forward",
            "--weights",
            &ours,
            "--input",
            &xy,
            "--out",
            &file_in(&dir, "ours_forward.safetensors"),
        ]),
    ]) else {
        return;
    };

    // PyTorch loads our file with load_state_dict(strict=True), no dtype cast needed, and
    // computes our outputs from it.
    assert_eq!(results[2], serde_json::json!({"ok": true}), "check-load");
    let pytorch = tensors(file_in(&dir, "ours_forward.safetensors"));
    let out = tch::no_grad(|| net.forward_t(&x, false));
    let what = "save_state_dict file in PyTorch: eval output";
    assert_identical(&out, &pytorch["eval"], what);

    // PyTorch's three files: torch.save(state_dict) (an OrderedDict), a plain dict, safetensors.
    let pytorch = tensors(file_in(&dir, "torch_forward.safetensors"));
    let file = tensors(format!("{prefix}.safetensors"));
    for suffix in [".pt", "_plain.pt", ".safetensors"] {
        let path = format!("{prefix}{suffix}");
        let (mut vs, net) = build(&m, 2003);
        let report = load_state_dict(&mut vs, &path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(report.loaded.len(), file.len(), "{suffix}");
        assert!(report.skipped.is_empty(), "{suffix}");
        assert_all_identical(&snapshot(&vs), &file, &format!("torch{suffix} loaded"));
        let out = tch::no_grad(|| net.forward_t(&x, false));
        let what = format!("torch{suffix} loaded: eval output");
        assert_identical(&out, &pytorch["eval"], &what);
    }
}

#[test]
fn checkpoints_of_other_models_load_partially_or_are_refused() {
    let dir = tempdir();
    let vgg11_10 = file_in(&dir, "vgg11_10.safetensors");
    let vgg19 = file_in(&dir, "vgg19.safetensors");
    let answers = reference(&[
        cmd(&[
            "init",
            "--config",
            r#"{"cfg": "vgg11"}"#,
            "--seed",
            "5",
            "--out",
            &vgg11_10,
        ]),
        cmd(&[
            "init",
            "--config",
            &models::vgg19().config,
            "--seed",
            "6",
            "--out",
            &vgg19,
        ]),
    ]);
    if answers.is_none() {
        return;
    }

    // A 10-class VGG-11 backbone into the 100-class VGG-11: all but linear2 is taken.
    let (mut vs, _net) = build(&models::vgg11_cifar100(), 3000);
    let before = snapshot(&vs);
    let file = tensors(&vgg11_10);
    let report = load_state_dict_with(&mut vs, &vgg11_10, LoadMode::Partial)
        .unwrap_or_else(|e| panic!("{e}"));
    println!("partial load: {report}");
    let skipped: Vec<_> = report.skipped.iter().map(Mismatch::key).collect();
    assert_eq!(
        skipped,
        ["classifier.linear2.bias", "classifier.linear2.weight"]
    );
    for mismatch in &report.skipped {
        let key = mismatch.key();
        let want = Mismatch::Shape {
            key: key.to_owned(),
            model: before[key].size(),
            file: file[key].size(),
        };
        assert_eq!(mismatch, &want);
        assert_ne!(before[key].size(), file[key].size());
    }
    let after = snapshot(&vs);
    let mut loaded = report.loaded.clone();
    loaded.sort();
    let expected: Vec<_> = file
        .keys()
        .filter(|k| !skipped.contains(&k.as_str()))
        .collect();
    assert_eq!(loaded.iter().collect::<Vec<_>>(), expected);
    assert_eq!(after.len(), file.len());
    for (key, t) in &after {
        if skipped.contains(&key.as_str()) {
            assert!(t.equal(&before[key]), "{key} changed, but was skipped");
        } else {
            assert!(t.equal(&file[key]), "{key} is not the file's");
        }
    }

    // A VGG-19 checkpoint into VGG-16: refused, every difference named, nothing changed.
    let (mut vs, _net) = build(&models::seed(), 3001);
    let before = snapshot(&vs);
    let file = tensors(&vgg19);
    let err = load_state_dict(&mut vs, &vgg19).expect_err("a VGG-19 checkpoint loads into VGG-16");
    let message = err.to_string();
    println!("wrong model: {message}");
    let LoadError::Mismatch { path, mismatches } = &err else {
        panic!("expected a mismatch error, got {err}")
    };
    assert_eq!(path, Path::new(&vgg19));
    assert!(message.contains(&vgg19), "the message names the file");
    // The differences, worked out here from the two sets of names and shapes.
    let mut expected = Vec::new();
    for (key, t) in &before {
        match file.get(key) {
            None => expected.push(format!("missing key {key}:")),
            Some(f) if f.size() != t.size() => expected.push(format!("shape mismatch for {key}:")),
            Some(_) => {}
        }
    }
    for key in file.keys().filter(|k| !before.contains_key(*k)) {
        expected.push(format!("unexpected key {key}:"));
    }
    assert!(
        expected.len() > 10,
        "VGG-16 and VGG-19 differ in many tensors"
    );
    assert_eq!(mismatches.len(), expected.len(), "{message}");
    for phrase in &expected {
        assert!(
            message.contains(phrase),
            "the message lacks `{phrase}`:\n{message}"
        );
    }
    assert_all_identical(&snapshot(&vs), &before, "after the refused load");
}
