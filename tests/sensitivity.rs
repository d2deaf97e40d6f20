//! `vggdsl sensitivity` and the studies that use it, through the binary, on a small CIFAR-shaped
//! model and CIFAR-10 files in the real format: the sweep runs on the validation images `train
//! --val-size` holds out (none trained on, none of the test set), rate 0 gives the unpruned
//! figures exactly, `plot sensitivity` draws the file, and a study's target budget runs each
//! strategy as a method of its own.

mod common;

use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::atomic::AtomicBool;

use vggdsl::files::results::StudyResults;
use vggdsl::files::sensitivity::SensitivityFile;
use vggdsl_runtime::tch::nn::VarStore;
use vggdsl_runtime::tch::Device;
use vggdsl_runtime::Network;
use vggdsl_test_support::{assert_success, cifar, tempdir, TempDir};
use vggdsl_train::data::split::first;
use vggdsl_train::data::{carve_validation, Dataset, ImageSet, Split};
use vggdsl_train::trainer::evaluate;

use common::{command, text};

const SMALL: &str = "model Small {\n    cfg = [8, M, 16, 16, M, 24, M, 32]\n}\n";

/// `small.vgg`, CIFAR-10 files in `data/` (150 training images), and weights trained one epoch
/// on 130 of them (20 held out) in `run/`.
fn setup() -> TempDir {
    let dir = tempdir();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    cifar::write_cifar10(&dir.path().join("data"), 30, 40);
    std::fs::write(dir.path().join("small.vgg"), SMALL).unwrap();
    run(
        dir.path(),
        &["train", "small.vgg", "--data", "data", "--val-size", "20"],
    );
    dir
}

/// `vggdsl ARGS --threads 1 …` in `dir`, which must succeed; its standard output.
fn run(dir: &Path, args: &[&str]) -> String {
    let mut all = args.to_vec();
    if args[0] != "plot" {
        all.extend(["--threads", "1"]);
    }
    if args[0] == "train" {
        all.extend(["--epochs", "1", "--batch-size", "32", "--out", "run"]);
    }
    let out = command(&all).current_dir(dir).output().unwrap();
    assert_success(&out, &all.join(" "));
    text(&out.stdout)
}

#[test]
fn the_sweep_runs_on_the_held_out_images_and_rate_zero_is_the_unpruned_model() {
    let dir = setup();
    let d = dir.path();
    let report = run(
        d,
        &[
            "sensitivity",
            "small.vgg",
            "--weights",
            "run/best.safetensors",
            "--by",
            "l1",
            "--data",
            "data",
            "--val-size",
            "20",
            "--rates",
            "0,0.5,0.9",
            "--out",
            "sweep",
        ],
    );
    assert!(
        report.contains("on 20 validation images of cifar10"),
        "{report}"
    );
    let file = SensitivityFile::read(&d.join("sweep/sensitivity.json")).unwrap();
    assert_eq!((file.by.as_str(), file.validation.images), ("l1", 20));
    assert_eq!(file.convs.len(), 4);
    for conv in &file.convs {
        let zero = &conv.points[0];
        assert_eq!((zero.rate, zero.filters), (0.0, conv.width));
        assert_eq!(
            (zero.accuracy, zero.loss),
            (file.unpruned.accuracy, file.unpruned.loss)
        );
        // int(8 × 0.1) = 0: conv0 has no point at 0.9.
        let rates: Vec<f64> = conv.points.iter().map(|p| p.rate).collect();
        let want: &[f64] = if conv.width == 8 {
            &[0.0, 0.5]
        } else {
            &[0.0, 0.5, 0.9]
        };
        assert_eq!(rates, want, "{}", conv.name);
    }

    // The images are the 20 that training held out: the same evaluation, exactly.
    let all = ImageSet::load(Dataset::Cifar10, Split::Train, &d.join("data")).unwrap();
    let test = ImageSet::load(Dataset::Cifar10, Split::Test, &d.join("data")).unwrap();
    let (trained, held_out) = carve_validation(&first(&all, all.len()), 20).unwrap();
    let held_out = held_out.unwrap();
    let state = std::fs::read_to_string(d.join("run/state.json")).unwrap();
    assert!(state.contains("\"validation_images\": 20"), "{state}");
    let model = vggdsl::check_source(SMALL).unwrap().remove(0);
    let mut vs = VarStore::new(Device::Cpu);
    let net = Network::new(&vs.root(), &model);
    vggdsl_runtime::load_state_dict(&mut vs, d.join("run/best.safetensors")).unwrap();
    let batch = NonZeroUsize::new(256).unwrap();
    let evaluation = evaluate(
        &net.to_inference(),
        &held_out,
        batch,
        &AtomicBool::new(false),
        &mut |_, _| {},
    )
    .unwrap()
    .unwrap();
    assert_eq!(evaluation.accuracy(), file.unpruned.accuracy);
    assert_eq!(evaluation.loss, file.unpruned.loss);
    // None of them was trained on, none is a test image (the noise makes every image unique).
    let images = |s: &ImageSet| {
        (0..s.len())
            .map(|i| s.image(i).to_vec())
            .collect::<Vec<_>>()
    };
    let (v, t, x) = (images(&held_out), images(&trained), images(&test));
    assert!(v.iter().all(|i| !t.contains(i) && !x.contains(i)));

    // Its picture.
    let svg = run(
        d,
        &["plot", "sensitivity", "sweep/sensitivity.json", "-o", "-"],
    );
    for want in [
        "Sensitivity of Small",
        "conv0 (8 filters)",
        "conv5 (24 filters)",
        "unpruned: ",
    ] {
        assert!(svg.contains(want), "no `{want}`");
    }
}

#[test]
fn a_study_runs_each_strategy_of_a_target_as_a_method() {
    let dir = setup();
    let d = dir.path();
    let study = "model = \"small.vgg\"\nseeds = [0]\nthreads = 1\ndataset = \"cifar10\"\n\
         data = \"data\"\nval_size = 20\nlimit_test = 40\n\n[base]\n\
         weights = \"run/best.safetensors\"\n\n[prune]\ncriteria = [\"l1\"]\n\
         budgets = [{ target_macs = \"50%\", strategies = [\"sensitivity\", \"global\"] }]\n\n\
         [finetune]\nepochs = 1\nbatch_size = 32\n";
    std::fs::write(d.join("small.toml"), study).unwrap();
    let out = command(&["study", "small.toml", "--out", "study"])
        .current_dir(d)
        .output()
        .unwrap();
    assert_success(&out, "the study");
    let results = std::fs::read_to_string(d.join("study/results.json")).unwrap();
    let results = StudyResults::from_json(&results).unwrap();
    let methods: Vec<&str> = results.rows.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(methods, ["l1-sensitivity", "l1-global"]);
    for row in &results.rows {
        assert_eq!(row.budget, "target-macs-50%");
        assert!(2 * row.macs <= results.base.macs, "{row:?}");
    }
    assert!(d.join("study/sensitivity/l1/sensitivity.json").exists());
    let pruned =
        std::fs::read_to_string(d.join("study/target-macs-50pct/l1-global/prune/model.vgg"));
    assert!(pruned.unwrap().contains(&results.rows[1].compress_rate));
}

#[test]
fn a_folder_that_cannot_be_written_fails_before_the_data_is_read() {
    let dir = tempdir();
    let d = dir.path();
    std::fs::write(d.join("small.vgg"), SMALL).unwrap();
    std::fs::write(d.join("file"), "").unwrap();
    // Neither the data folder nor the weights exist: the folder is refused first.
    let args = [
        "sensitivity",
        "small.vgg",
        "--weights",
        "w.safetensors",
        "--by",
        "l1",
        "--data",
        "nodata",
        "--out",
        "file/sweep",
    ];
    let out = command(&args).current_dir(d).output().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("file/sweep") && !stderr.contains("nodata"),
        "{stderr}"
    );
}
