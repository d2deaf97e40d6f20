//! `vggdsl train` and `vggdsl eval` through the binary, on a tiny model and small CIFAR-10 files
//! in the real binary format: the run folder, PyTorch loading the checkpoint strictly and getting
//! the same test accuracy, exact resume (also after Ctrl-C), bad input as one sentence, and
//! `--device` on the CPU (CI has no GPU; `scripts/gpu-check.sh` runs the CUDA side).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use vggdsl_runtime::state_dict::safetensors_bytes;
use vggdsl_runtime::tch::{self, Cuda, Device, Tensor};
use vggdsl_runtime::{device, read_state_dict};
use vggdsl_test_support::{cifar, pytorch, tempdir, TempDir};

const VGGDSL: &str = env!("CARGO_BIN_EXE_vggdsl");

/// A tiny model and its `reference.py` config, trained 2 epochs by default.
const TINY: &str = "model Tiny {
    cfg = [8, M, 16, M, 32]
    train { epochs = 2  batch_size = 16  lr = 0.05  milestones = [1]  gamma = 0.5  seed = 3 }
}
";
const TINY_CONFIG: &str = r#"{"cfg": [8, "M", 16, "M", 32]}"#;

/// A data folder (5 × 14 training images, 30 test images) and a file `tiny.vgg` in a temporary
/// folder; runs go in it too.
struct Setup {
    dir: TempDir,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempdir();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        cifar::write_cifar10(&dir.path().join("data"), 14, 30);
        std::fs::write(dir.path().join("tiny.vgg"), TINY).unwrap();
        Setup { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `vggdsl <args>` with `--data` pointing at the data folder, in the temporary folder.
    fn vggdsl(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// `vggdsl <args>` in the temporary folder, without `--data` (for the commands that take
    /// none, or another).
    fn bare(&self, args: &[&str]) -> Output {
        Command::new(VGGDSL)
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(VGGDSL);
        cmd.args(args)
            .arg("--data")
            .arg(self.path("data"))
            .current_dir(self.dir.path());
        cmd
    }

    /// Starts `vggdsl <args>` and waits until it says `wanted` on stderr: the process, the rest
    /// of its stderr, and what it said so far.
    fn spawn_until(&self, args: &[&str], wanted: &str) -> (Child, BufReader<ChildStderr>, String) {
        let mut child = self.command(args).stderr(Stdio::piped()).spawn().unwrap();
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let seen = stderr_until(&mut err, wanted);
        (child, err, seen)
    }

    /// Trains `tiny.vgg` into `run` with `extra` flags; panics unless it succeeds.
    fn train(&self, run: &str, extra: &[&str]) -> Output {
        let mut args = vec!["train", "tiny.vgg", "--out", run];
        args.extend(extra);
        let out = self.vggdsl(&args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        out
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The command failed with `code` and said one sentence: `error: …` on one line.
fn assert_one_sentence(out: &Output, code: i32) -> String {
    let text = stderr(out);
    assert_eq!(out.status.code(), Some(code), "stderr: {text}");
    assert!(
        text.starts_with("error: ") && text.ends_with('\n') && text.lines().count() == 1,
        "not one sentence: {text:?}"
    );
    assert!(!text.contains("panicked"), "{text}");
    text
}

fn tensors(path: &Path) -> BTreeMap<String, Tensor> {
    read_state_dict(path).unwrap().into_iter().collect()
}

fn assert_same_tensors(a: &Path, b: &Path) {
    let (a_tensors, b_tensors) = (tensors(a), tensors(b));
    assert_eq!(
        a_tensors.keys().collect::<Vec<_>>(),
        b_tensors.keys().collect::<Vec<_>>()
    );
    for (key, t) in &a_tensors {
        assert!(
            t.equal(&b_tensors[key]),
            "{key} differs between {} and {}",
            a.display(),
            b.display()
        );
    }
}

fn metrics(run: &Path) -> Vec<Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The weights, momentum buffers and figures of two runs are the same (wall times aside).
fn assert_same_run(a: &Path, b: &Path) {
    assert_same_tensors(&a.join("last.safetensors"), &b.join("last.safetensors"));
    assert_same_tensors(&a.join("best.safetensors"), &b.join("best.safetensors"));
    assert_same_tensors(
        &a.join("optimizer.safetensors"),
        &b.join("optimizer.safetensors"),
    );
    let without_seconds = |run: &Path| {
        let mut lines = metrics(run);
        for l in &mut lines {
            l.as_object_mut().unwrap().remove("seconds");
        }
        lines
    };
    assert_eq!(without_seconds(a), without_seconds(b));
}

/// Every name in `dir`, hidden ones included, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// `prune` on `tiny.vgg` with arguments that need no ranks.
const PRUNE_TINY: [&str; 6] = [
    "prune",
    "tiny.vgg",
    "--by",
    "l1",
    "--compress-rate",
    "[0.5] * 2",
];

/// What a run folder holds once a run has saved: its five files and nothing else.
const RUN_FILES: [&str; 5] = [
    "best.safetensors",
    "last.safetensors",
    "metrics.jsonl",
    "optimizer.safetensors",
    "state.json",
];

/// Reads `child`'s stderr until a line contains `wanted`; returns all read.
fn stderr_until(err: &mut impl BufRead, wanted: &str) -> String {
    let mut seen = String::new();
    while !seen.contains(wanted) {
        let mut line = String::new();
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "no `{wanted}` in: {seen}"
        );
        seen += &line;
    }
    seen
}

/// Sends SIGINT to `child`.
fn interrupt(child: &Child) {
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
}

#[test]
fn a_run_folder_that_pytorch_loads_strictly_with_the_same_accuracy() {
    let s = Setup::new();
    let out = s.train("run", &[]);
    let run = s.path("run");
    let mut names: Vec<String> = std::fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "best.safetensors",
            "last.safetensors",
            "metrics.jsonl",
            "optimizer.safetensors",
            "state.json"
        ]
    );
    // Not a terminal: one line per epoch, no progress bar.
    let text = stderr(&out);
    assert!(text.contains("epoch 1/2  loss "), "{text}");
    assert!(text.contains("epoch 2/2  loss "), "{text}");
    assert!(!text.contains("ETA"), "{text}");

    let lines = metrics(&run);
    assert_eq!(lines.len(), 2);
    for (i, line) in lines.iter().enumerate() {
        for key in ["loss", "train_accuracy", "test_accuracy", "lr", "seconds"] {
            assert!(line[key].is_f64(), "{key} in {line}");
        }
        assert_eq!(line["epoch"], i + 1);
    }
    // The multistep schedule of the file: ×0.5 from epoch 1 (from 0).
    assert_eq!(
        (lines[0]["lr"].as_f64(), lines[1]["lr"].as_f64()),
        (Some(0.05), Some(0.025))
    );
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("state.json")).unwrap()).unwrap();
    // 70 training images less the default validation split, a tenth of them: 4 batches of 16.
    assert_eq!(
        (&state["epoch"], &state["batch"], &state["step"]),
        (&Value::from(2), &Value::from(0), &Value::from(8))
    );
    assert_eq!(state["validation_images"], 7);
    assert!(
        lines.iter().all(|l| l["val_accuracy"].is_f64()),
        "{lines:?}"
    );
    assert_eq!(state["recipe"]["seed"], 3);

    // vggdsl eval on the last weights gives the last epoch's figures.
    let last = run.join("last.safetensors");
    let out = s.vggdsl(&[
        "eval",
        "tiny.vgg",
        "--weights",
        last.to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let ours: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(ours["accuracy"], lines[1]["test_accuracy"]);
    assert_eq!(ours["per_class"][0]["class"], "airplane");
    let per_class: Vec<u64> = (0..10)
        .map(|i| ours["per_class"][i]["correct"].as_u64().unwrap())
        .collect();

    // PyTorch: the seed's model, load_state_dict(strict=True), the same test file.
    let Some(torch) = pytorch::run_json(
        "train_reference.py",
        [
            "evaluate",
            "--config",
            TINY_CONFIG,
            "--weights",
            last.to_str().unwrap(),
            "--data",
            s.path("data").to_str().unwrap(),
        ],
    ) else {
        return;
    };
    assert_eq!(torch["accuracy"], ours["accuracy"]);
    assert_eq!(
        torch["per_class_correct"],
        serde_json::to_value(&per_class).unwrap()
    );
    let (a, b) = (
        torch["loss"].as_f64().unwrap(),
        ours["loss"].as_f64().unwrap(),
    );
    assert!((a - b).abs() <= 1e-5 * a.abs(), "loss {a} vs {b}");
    println!(
        "PyTorch loads last.safetensors strictly: accuracy {} in both, loss {a} vs {b}",
        ours["accuracy"]
    );

    // The human-readable report names the classes.
    let out = s.vggdsl(&["eval", "tiny.vgg", "--weights", last.to_str().unwrap()]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("accuracy ") && text.contains("truck"),
        "{text}"
    );
}

#[test]
fn two_epochs_equal_one_and_a_resumed_one_bit_for_bit() {
    let s = Setup::new();
    s.train("whole", &[]);
    s.train("halves", &["--epochs", "1"]);
    assert_eq!(metrics(&s.path("halves")).len(), 1);
    let out = s.train("halves", &["--resume", "--epochs", "2"]);
    assert!(
        stderr(&out).starts_with("resuming Tiny"),
        "{}",
        stderr(&out)
    );
    assert_same_run(&s.path("whole"), &s.path("halves"));

    // A finished run has nothing left to do.
    let out = s.train("halves", &["--resume"]);
    assert!(stderr(&out).contains("has trained all 2 epochs"));
}

#[test]
fn ctrl_c_saves_a_checkpoint_that_resumes_exactly() {
    let s = Setup::new();
    // Long enough that Ctrl-C, sent when the first epoch is reported, lands during training.
    let epochs = ["--epochs", "6"];
    s.train("whole", &epochs);

    let args = ["train", "tiny.vgg", "--out", "stopped", "--epochs", "6"];
    let (mut child, mut err, mut seen) = s.spawn_until(&args, "epoch 1/6");
    interrupt(&child);
    err.read_to_string(&mut seen).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{seen}");
    let run = s.path("stopped");
    assert!(
        seen.contains("interrupted: checkpoint saved in stopped at epoch")
            && seen.contains("--out stopped --resume"),
        "{seen}"
    );
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("state.json")).unwrap()).unwrap();
    println!(
        "stopped at epoch {} (from 0), batch {}",
        state["epoch"], state["batch"]
    );
    s.train("stopped", &["--resume"]);
    assert_same_run(&s.path("whole"), &run);
}

#[test]
fn bad_data_is_one_sentence() {
    let s = Setup::new();
    let data = s.path("data");
    let train = |s: &Setup| s.vggdsl(&["train", "tiny.vgg", "--out", "run"]);

    let test_file = std::fs::read(data.join("test_batch.bin")).unwrap();
    std::fs::remove_file(data.join("test_batch.bin")).unwrap();
    let text = assert_one_sentence(&train(&s), 1);
    assert!(
        text.contains("cannot find test_batch.bin (cifar10)"),
        "{text}"
    );
    std::fs::write(data.join("test_batch.bin"), &test_file).unwrap();

    let batch = data.join("data_batch_3.bin");
    let good = std::fs::read(&batch).unwrap();
    std::fs::write(&batch, &good[..good.len() - 5]).unwrap();
    let text = assert_one_sentence(&train(&s), 1);
    assert!(
        text.contains("it is truncated or from another dataset"),
        "{text}"
    );

    let mut bad_label = good.clone();
    bad_label[3073] = 10; // the label byte of record 1
    std::fs::write(&batch, &bad_label).unwrap();
    let text = assert_one_sentence(&train(&s), 1);
    assert!(
        text.contains("has label 10, but cifar10 labels are 0 to 9"),
        "{text}"
    );
    std::fs::write(&batch, &good).unwrap();

    // Nothing of a run is left behind by a run that could not start.
    assert!(!s.path("run").exists());

    let text = assert_one_sentence(
        &s.vggdsl(&["train", "tiny.vgg", "--dataset", "fashion-mnist"]),
        1,
    );
    assert!(
        text.contains("fashion-mnist images are 1×28×28 but model Tiny takes 3×32×32"),
        "{text}"
    );
    std::fs::write(s.path("c100.vgg"), "model Wide { num_classes = 100 }").unwrap();
    let text = assert_one_sentence(&s.vggdsl(&["train", "c100.vgg", "--dataset", "cifar10"]), 1);
    assert!(
        text.contains("cifar10 has 10 classes but model Wide has 100 outputs"),
        "{text}"
    );
}

#[test]
fn weights_of_another_model_are_one_sentence() {
    let s = Setup::new();
    std::fs::write(
        s.path("other.vgg"),
        "model Other { cfg = [8, M, 24, M, 32]  train { epochs = 1  batch_size = 16 } }",
    )
    .unwrap();
    let out = s.vggdsl(&["train", "other.vgg", "--out", "other"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let other = s.path("other/last.safetensors");
    let other = other.to_str().unwrap();

    let text = assert_one_sentence(&s.vggdsl(&["train", "tiny.vgg", "--init", other]), 1);
    assert!(
        text.contains("holds weights of another model than Tiny: shape mismatch for"),
        "{text}"
    );
    let text = assert_one_sentence(&s.vggdsl(&["eval", "tiny.vgg", "--weights", other]), 1);
    assert!(
        text.contains("holds weights of another model than Tiny"),
        "{text}"
    );
    let text = assert_one_sentence(
        &s.vggdsl(&["eval", "tiny.vgg", "--weights", "missing.safetensors"]),
        2,
    );
    assert!(text.contains("cannot read missing.safetensors"), "{text}");

    // --init with the right model's weights starts from them: an epoch more of training.
    s.train("first", &["--epochs", "1"]);
    s.train(
        "second",
        &["--epochs", "1", "--init", "first/last.safetensors"],
    );
    assert!(
        !tensors(&s.path("first/last.safetensors"))["features.conv0.weight"]
            .equal(&tensors(&s.path("second/last.safetensors"))["features.conv0.weight"])
    );

    // A run whose weights were replaced by another model's does not resume.
    std::fs::copy(other, s.path("first/last.safetensors")).unwrap();
    let text = assert_one_sentence(
        &s.vggdsl(&[
            "train", "tiny.vgg", "--out", "first", "--resume", "--epochs", "2",
        ]),
        1,
    );
    assert!(text.contains("does not belong to the checkpoint"), "{text}");
}

#[test]
fn command_line_mistakes_are_one_sentence() {
    let s = Setup::new();
    std::fs::write(
        s.path("two.vgg"),
        "model A { cfg = vgg11 }\nmodel B { cfg = vgg13 }",
    )
    .unwrap();
    let text = assert_one_sentence(&s.vggdsl(&["train", "two.vgg"]), 2);
    assert!(
        text.contains("two.vgg declares several models (A, B); choose one with --model NAME"),
        "{text}"
    );
    let text = assert_one_sentence(
        &s.vggdsl(&["eval", "two.vgg", "--model", "C", "--weights", "w"]),
        2,
    );
    assert!(
        text.contains("two.vgg has no model `C`; it has A, B"),
        "{text}"
    );

    s.train("run", &["--epochs", "1"]);
    let text = assert_one_sentence(&s.vggdsl(&["train", "tiny.vgg", "--out", "run"]), 2);
    assert!(
        text.contains(
            "run already holds a training run; continue it with `vggdsl train tiny.vgg --data "
        ) && text.ends_with("--out run --resume`, or choose another --out\n"),
        "{text}"
    );
    let text = assert_one_sentence(
        &s.vggdsl(&[
            "train", "tiny.vgg", "--out", "run", "--resume", "--lr", "0.1",
        ]),
        2,
    );
    assert!(text.contains("--lr cannot change when resuming"), "{text}");
    let text = assert_one_sentence(
        &s.vggdsl(&["train", "tiny.vgg", "--out", "none", "--resume"]),
        2,
    );
    assert!(
        text.contains("none holds no training run to resume"),
        "{text}"
    );
    let text = assert_one_sentence(
        &s.vggdsl(&[
            "train",
            "tiny.vgg",
            "--schedule",
            "cosine",
            "--gamma",
            "0.2",
        ]),
        2,
    );
    assert!(
        text.contains("--milestones and --gamma belong to the multistep schedule"),
        "{text}"
    );
    let text = assert_one_sentence(&s.vggdsl(&["train", "tiny.vgg", "--momentum", "1.5"]), 2);
    assert!(
        text.contains("momentum must be a number in [0, 1), not 1.5"),
        "{text}"
    );
    // A negative number is a value, which the recipe's range refuses.
    let text = assert_one_sentence(&s.vggdsl(&["train", "tiny.vgg", "--lr", "-1"]), 2);
    assert!(
        text.contains("the recipe is not valid: lr must be a positive number, not -1"),
        "{text}"
    );
    // Every whole-number flag of every command says its range alike, the real limit included.
    for (args, range) in [
        (
            &["train", "tiny.vgg", "--epochs", "0"][..],
            "1 to 1,000,000",
        ),
        (
            &["train", "tiny.vgg", "--batch-size", "70000"],
            "1 to 65,536",
        ),
        (&["train", "tiny.vgg", "--threads", "-1"], "1 to 1,024"),
        (
            &["eval", "tiny.vgg", "--weights", "w", "--batch-size", "0"],
            "1 to 65,536",
        ),
        (
            &[
                "rank",
                "tiny.vgg",
                "--weights",
                "w",
                "--out",
                "r",
                "--limit",
                "0",
            ],
            "1 to 1,000,000",
        ),
    ] {
        let out = s.vggdsl(args);
        let text = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {text}");
        let first = text.lines().next().unwrap();
        assert!(
            first.starts_with("error: invalid value ")
                && first.ends_with(&format!(": expected a whole number from {range}")),
            "{args:?}: {text}"
        );
    }
}

#[test]
fn a_full_disk_leaves_the_previous_checkpoint_intact() {
    let s = Setup::new();
    s.train("run", &["--epochs", "1"]);
    // A 1 MiB tmpfs, mounted in a private mount namespace: the run is copied in, the disk filled,
    // the resumed run fails to save, and what is left is copied out for inspection.
    let script = r#"set -e
mount -t tmpfs -o size=1m tmpfs "$DISK"
cp -r run "$DISK/run"
dd if=/dev/zero of="$DISK/fill" bs=4k 2>/dev/null || true
set +e
"$VGGDSL" train tiny.vgg --data data --out "$DISK/run" --resume --epochs 2 2>resume.err
echo $? > resume.code
cp -r "$DISK/run" after
"$VGGDSL" train tiny.vgg --data data --out "$DISK/fresh" 2>fresh.err
echo $? > fresh.code
ls -A "$DISK" > disk.list
"#;
    std::fs::create_dir(s.path("disk")).unwrap();
    let out = Command::new("unshare")
        .args(["-rm", "sh", "-c", script])
        .env("DISK", s.path("disk"))
        .env("VGGDSL", VGGDSL)
        .current_dir(s.dir.path())
        .output()
        .unwrap();
    if !out.status.success() {
        let why = format!("cannot mount a small tmpfs with unshare: {}", stderr(&out));
        vggdsl_test_support::skip(&why);
        return;
    }
    // The last line a command of the script said on stderr, having exited with 1.
    let failed = |name: &str| {
        let code = std::fs::read_to_string(s.path(&format!("{name}.code"))).unwrap();
        let text = std::fs::read_to_string(s.path(&format!("{name}.err"))).unwrap();
        assert_eq!(code.trim(), "1", "{text}");
        let error = text.lines().last().unwrap().to_owned();
        assert!(
            error.starts_with("error: cannot save the checkpoint in")
                && error.contains("No space left on device"),
            "{text}"
        );
        error
    };
    let error = failed("resume");
    assert!(
        error.ends_with("the previous checkpoint there is intact"),
        "{error}"
    );
    // Every file as it was, and no temporary file left.
    assert_eq!(listing(&s.path("run")), listing(&s.path("after")));
    for name in listing(&s.path("run")) {
        assert_eq!(
            std::fs::read(s.path("run").join(&name)).unwrap(),
            std::fs::read(s.path("after").join(&name)).unwrap(),
            "{name:?} changed"
        );
    }
    // And the run still resumes from it.
    s.train("after", &["--resume", "--epochs", "2"]);
    // A new run's first save claims no previous checkpoint, and leaves no folder behind.
    let error = failed("fresh");
    assert!(
        error.ends_with("no checkpoint had been saved there yet"),
        "{error}"
    );
    let disk = std::fs::read_to_string(s.path("disk.list")).unwrap();
    assert_eq!(disk.lines().collect::<Vec<_>>(), ["fill", "run"]);
}

#[test]
fn trains_on_the_real_fashion_mnist() {
    let Some(dir) = vggdsl_train::data::Dataset::FashionMnist.default_dir() else {
        let why =
            "Debian's dataset-fashion-mnist is not installed (/usr/share/datasets/fashion-mnist)";
        vggdsl_test_support::skip(why);
        return;
    };
    let tmp = tempdir();
    std::fs::write(
        tmp.path().join("small.vgg"),
        "model Small { input = [1, 28, 28]  cfg = [8, M, 16, M, 32] \
         train { epochs = 1  batch_size = 256  lr = 0.05 } }",
    )
    .unwrap();
    // No --data: the Debian package's folder is the default.
    let out = Command::new(VGGDSL)
        .args(["train", "small.vgg"])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains(
        "Small on fashion-mnist (55,000 training, 5,000 validation, 10,000 test images)"
    ));
    let line = &metrics(&tmp.path().join("runs/Small"))[0];
    let accuracy = line["test_accuracy"].as_f64().unwrap();
    println!(
        "{}: one epoch of a tiny model: test accuracy {accuracy}",
        dir.display()
    );
    assert!(accuracy > 0.6, "{line}");
}

#[test]
fn training_md_repeats_the_exit_codes() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/TRAINING.md")).unwrap();
    for command in ["train", "eval"] {
        let out = Command::new(VGGDSL)
            .args([command, "--help"])
            .output()
            .unwrap();
        let help = String::from_utf8(out.stdout).unwrap();
        let block = &help[help
            .find("Exit codes:")
            .expect("the help lists the exit codes")..];
        assert!(
            doc.contains(block.trim_end()),
            "TRAINING.md lacks:\n{block}"
        );
        // eval has no checkpoint to save on Ctrl-C, so no code of its own for it.
        assert_eq!(block.contains("130"), command == "train", "{block}");
    }
}

#[test]
fn a_new_run_never_replaces_files_it_did_not_write() {
    let s = Setup::new();
    // The run folder examples/ddp_train.py writes: metrics.jsonl and last.safetensors.
    let ddp = s.path("ddp");
    std::fs::create_dir(&ddp).unwrap();
    std::fs::write(ddp.join("metrics.jsonl"), "{\"epoch\": 1, \"loss\": 2.0}\n").unwrap();
    std::fs::write(ddp.join("last.safetensors"), "its weights").unwrap();
    let text = assert_one_sentence(&s.vggdsl(&["train", "tiny.vgg", "--out", "ddp"]), 1);
    assert!(
        text.contains(
            "ddp holds files that are not a vggdsl training run (last.safetensors, \
             metrics.jsonl); choose an empty or new folder for the run"
        ),
        "{text}"
    );
    // Nor its own input weights.
    let out = s.vggdsl(&[
        "train",
        "tiny.vgg",
        "--out",
        "ddp",
        "--init",
        "ddp/last.safetensors",
    ]);
    let text = assert_one_sentence(&out, 2);
    assert!(
        text.contains("--init ddp/last.safetensors is inside ddp, the folder of the new run"),
        "{text}"
    );
    assert_eq!(listing(&ddp), ["last.safetensors", "metrics.jsonl"]);
    assert_eq!(
        std::fs::read_to_string(ddp.join("last.safetensors")).unwrap(),
        "its weights"
    );
}

#[test]
fn a_kill_at_any_step_of_a_save_leaves_a_run_that_resumes_exactly() {
    let s = Setup::new();
    s.train("whole", &["--threads", "1"]);
    // VGGDSL_TEST_FAIL=commit:N aborts the process at the N-th step of its saves, where a kill
    // could stop it: before a save's commit, after it, and after each of its files is in place.
    let mut steps = 0;
    for step in 1.. {
        let run = format!("k{step}");
        let out = s
            .command(&["train", "tiny.vgg", "--threads", "1", "--out", &run])
            .env("VGGDSL_TEST_FAIL", format!("commit:{step}"))
            .output()
            .unwrap();
        if out.status.success() {
            break; // past the last step of the run's two saves
        }
        assert_eq!(
            out.status.signal(),
            Some(6),
            "step {step}: {}",
            stderr(&out)
        );
        steps = step;
        // Killed before its first checkpoint, the run has nothing to resume and starts again;
        // otherwise it resumes, and the save the kill cut short is completed or discarded first.
        let resumed = s.vggdsl(&[
            "train",
            "tiny.vgg",
            "--threads",
            "1",
            "--out",
            &run,
            "--resume",
        ]);
        if !resumed.status.success() {
            let text = assert_one_sentence(&resumed, 2);
            assert!(
                text.contains("holds no training run to resume")
                    && text.contains("starts again without --resume"),
                "step {step}: {text}"
            );
            s.train(&run, &["--threads", "1"]);
        }
        assert_same_run(&s.path("whole"), &s.path(&run));
        assert_eq!(listing(&s.path(&run)), RUN_FILES, "step {step}");
    }
    // Two saves of at least 4 files (the weights, the momentum buffers, the metrics and the
    // state), each with a step before and after its commit.
    assert!(steps >= 12, "{steps} steps");
}

#[test]
fn a_folder_in_use_is_refused_at_once_naming_its_process() {
    let s = Setup::new();
    s.train("weights", &["--epochs", "1"]);
    let args = ["train", "tiny.vgg", "--out", "busy", "--epochs", "1000"];
    let (mut first, _err, _) = s.spawn_until(&args, "epoch 1/1000");
    let busy = format!(
        "busy is being written by another vggdsl command (process {})",
        first.id()
    );
    let weights = ["--weights", "weights/last.safetensors"];
    for args in [
        vec!["train", "tiny.vgg", "--out", "busy"],
        vec!["train", "tiny.vgg", "--out", "busy", "--resume"],
        [&["rank", "tiny.vgg", "--out", "busy"][..], &weights].concat(),
    ] {
        let text = assert_one_sentence(&s.vggdsl(&args), 1);
        assert!(text.contains(&busy), "{args:?}: {text}");
    }
    let out = s.bare(&[&PRUNE_TINY[..], &weights, &["--out", "busy"]].concat());
    let text = assert_one_sentence(&out, 1);
    assert!(text.contains(&busy), "prune: {text}");
    interrupt(&first);
    assert_eq!(first.wait().unwrap().code(), Some(130));
    // Released: the next command takes the folder (and finds more epochs done than it asks for).
    let out = s.vggdsl(&[
        "train", "tiny.vgg", "--out", "busy", "--resume", "--epochs", "1",
    ]);
    let text = assert_one_sentence(&out, 2);
    assert!(text.contains("more than the 1 asked for"), "{text}");
}

#[test]
fn a_batch_of_one_image_is_refused_before_training() {
    let s = Setup::new();
    // 70 training images, none held out: batches of 69 leave one image, as do batches of 1.
    for (batch, sizes) in [
        ("69", "batch sizes such as 68 or 70 leave none"),
        ("1", "a batch size such as 2 leaves none"),
    ] {
        let out = s.vggdsl(&[
            "train",
            "tiny.vgg",
            "--out",
            "one",
            "--val-size",
            "0",
            "--batch-size",
            batch,
        ]);
        let text = assert_one_sentence(&out, 2);
        assert!(
            text.contains(
                "and BatchNorm cannot train on one image (PyTorch refuses such a batch too)"
            ) && text.contains(sizes),
            "{text}"
        );
        assert!(!s.path("one").exists());
    }
    s.train(
        "two",
        &["--epochs", "1", "--val-size", "0", "--batch-size", "68"],
    );
}

#[test]
fn resuming_accepts_the_flags_of_the_first_command_and_keeps_a_cosine_schedule() {
    let s = Setup::new();
    s.train("whole", &[]);
    s.train("run", &["--epochs", "1", "--batch-size", "16"]);
    // A restart script repeats the command: every value equal to the run's own is accepted.
    s.train(
        "run",
        &[
            "--resume",
            "--epochs",
            "2",
            "--batch-size",
            "16",
            "--lr",
            "0.05",
            "--momentum",
            "0.9",
            "--weight-decay",
            "5e-4",
            "--nesterov",
            "false",
            "--schedule",
            "multistep",
            "--milestones",
            "1",
            "--gamma",
            "0.5",
            "--seed",
            "3",
        ],
    );
    assert_same_run(&s.path("whole"), &s.path("run"));
    // A value that differs is named; a named recipe that differs in any setting too.
    for (flag, value) in [("--seed", "4"), ("--recipe", "seed")] {
        let out = s.vggdsl(&["train", "tiny.vgg", "--out", "run", "--resume", flag, value]);
        let text = assert_one_sentence(&out, 2);
        assert!(
            text.contains(&format!("{flag} cannot change when resuming")),
            "{text}"
        );
    }

    // The cosine schedule's length is the run's epochs: it stays.
    s.train(
        "cos",
        &[
            "--schedule",
            "cosine",
            "--epochs",
            "2",
            "--batch-size",
            "35",
        ],
    );
    let text = assert_one_sentence(
        &s.vggdsl(&[
            "train", "tiny.vgg", "--out", "cos", "--resume", "--epochs", "3",
        ]),
        2,
    );
    assert!(
        text.contains(
            "the run's cosine schedule decays the learning rate over its 2 epochs, which cannot \
             change to 3 when resuming"
        ),
        "{text}"
    );
    let out = s.train(
        "cos",
        &["--resume", "--epochs", "2", "--schedule", "cosine"],
    );
    assert!(stderr(&out).contains("has trained all 2 epochs"));
}

/// The weights of `from` with `value` at the first element of `key`, written to `to`.
fn spoiled(from: &Path, key: &str, value: f64, to: &Path) {
    let tensors: Vec<(String, Tensor)> = read_state_dict(from)
        .unwrap()
        .into_iter()
        .map(|(name, t)| {
            if name == key {
                let _ = tch::no_grad(|| t.view([-1]).get(0).fill_(value));
            }
            (name, t)
        })
        .collect();
    std::fs::write(to, safetensors_bytes(tensors).unwrap()).unwrap();
}

#[test]
fn unusable_weights_are_refused_with_the_tensors_name() {
    let s = Setup::new();
    s.train("run", &["--epochs", "1"]);
    let last = s.path("run/last.safetensors");
    spoiled(
        &last,
        "features.conv0.weight",
        f64::NAN,
        &s.path("nan.safetensors"),
    );
    spoiled(
        &last,
        "classifier.norm1.running_var",
        -1.0,
        &s.path("neg.safetensors"),
    );
    let nan = "error: nan.safetensors holds NaN in features.conv0.weight: such weights give NaN \
               outputs, so vggdsl does not use them\n";
    let out = s.vggdsl(&["eval", "tiny.vgg", "--weights", "nan.safetensors"]);
    assert_eq!(assert_one_sentence(&out, 1), nan);
    // Not "diverged": --init names the tensor too, before any epoch.
    let out = s.vggdsl(&[
        "train",
        "tiny.vgg",
        "--out",
        "nan",
        "--init",
        "nan.safetensors",
    ]);
    assert_eq!(assert_one_sentence(&out, 1), nan);
    assert!(!s.path("nan").exists());
    let out = s.vggdsl(&["eval", "tiny.vgg", "--weights", "neg.safetensors"]);
    assert!(
        assert_one_sentence(&out, 1)
            .contains("holds a negative variance in classifier.norm1.running_var"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn outputs_and_data_are_checked_before_any_work() {
    let s = Setup::new();
    let data = s.path("data");
    let data = data.to_str().unwrap();
    let weights = ["--weights", "w.safetensors"];
    let file = "tiny.vgg is a file, not a folder";
    // Each fails before reading data or weights (none of the weights exist).
    for (args, code, why) in [
        (
            vec!["train", "tiny.vgg", "--data", data, "--out", "tiny.vgg"],
            1,
            file,
        ),
        (
            vec![
                "train",
                "tiny.vgg",
                "--data",
                data,
                "--out",
                "/proc/vggdsl/run",
            ],
            1,
            "cannot create the folder /proc/vggdsl/run",
        ),
        (
            vec!["train", "tiny.vgg", "--data", "tiny.vgg", "--out", "r"],
            2,
            "--data tiny.vgg is a file, not a folder of cifar10 data",
        ),
        (
            [&["rank", "tiny.vgg", "--out", "tiny.vgg"][..], &weights].concat(),
            1,
            file,
        ),
        (
            [&PRUNE_TINY[..], &weights, &["--out", "tiny.vgg"]].concat(),
            1,
            file,
        ),
    ] {
        let text = assert_one_sentence(&s.bare(&args), code);
        assert!(text.contains(why), "{args:?}: {text}");
    }
    assert!(!s.path("r").exists());
}

#[test]
fn an_interrupt_while_setting_up_stops_before_training_even_in_a_background_job() {
    let s = Setup::new();
    // A background job of a shell without job control: SIGINT ignored as the shell leaves it,
    // FILE read from standard input and held open, so that set-up waits for the test.
    let mut child = Command::new("sh")
        .args(["-c", "trap '' INT; exec \"$0\" \"$@\""])
        .arg(VGGDSL)
        .args(["train", "-", "--out", "bg", "--data", "data"])
        .current_dir(s.dir.path())
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let mut stdin = child.stdin.take().unwrap();
    let (heard_tx, heard) = std::sync::mpsc::channel::<()>();
    let sender = std::thread::spawn(move || {
        // Until vggdsl says it heard one (signals before its handler are ignored, as SIGINT is),
        // for 10 s at most; then FILE, so that set-up goes on.
        for _ in 0..200 {
            let _ = Command::new("kill").args(["-INT", &pid]).status();
            if heard.recv_timeout(Duration::from_millis(50)).is_ok() {
                break;
            }
        }
        stdin.write_all(TINY.as_bytes()).unwrap();
    });
    let mut seen = String::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        if line.contains("stopping before training starts") {
            let _ = heard_tx.send(());
        }
        seen += &line;
        seen.push('\n');
    }
    sender.join().unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(130), "{seen}");
    assert!(
        seen.contains("interrupted before training started; nothing was saved"),
        "{seen}"
    );
    assert!(!s.path("bg").exists());
}

/// The first CUDA device libtorch does not see, and how the commands refuse it: in words
/// written out here on a machine without a GPU (CI), in the runtime's on one with GPUs.
fn missing_gpu() -> (String, String) {
    let count = Cuda::device_count();
    let sentence = if count == 0 {
        "error: --device cuda:0 is not available: this machine has no CUDA device (libtorch \
         sees 0); use --device cpu\n"
            .to_owned()
    } else {
        let e = device::available(Device::Cuda(count as usize)).unwrap_err();
        format!("error: --device {e}\n")
    };
    (format!("cuda:{count}"), sentence)
}

#[test]
fn a_gpu_that_is_not_there_is_one_sentence_before_any_work() {
    let s = Setup::new();
    let (device, sentence) = missing_gpu();
    // Weights and a data folder that do not exist: the device is refused before they are read.
    let commands: [&[&str]; 4] = [
        &["train", "tiny.vgg", "--out", "run"],
        &["eval", "tiny.vgg", "--weights", "missing.safetensors"],
        &[
            "rank",
            "tiny.vgg",
            "--weights",
            "missing.safetensors",
            "--out",
            "ranks",
        ],
        &[
            "sensitivity",
            "tiny.vgg",
            "--weights",
            "missing.safetensors",
            "--out",
            "sens",
        ],
    ];
    for args in commands {
        let mut args = args.to_vec();
        args.extend(["--device", &device, "--data", "missing-folder"]);
        let out = s.bare(&args);
        assert_eq!(assert_one_sentence(&out, 2), sentence, "{args:?}");
        assert!(out.stdout.is_empty());
    }
    // Nothing was made.
    for folder in ["run", "ranks", "sens"] {
        assert!(!s.path(folder).exists(), "{folder}");
    }
    // `cuda` is GPU 0.
    if Cuda::device_count() == 0 {
        let out = s.vggdsl(&["train", "tiny.vgg", "--device", "cuda"]);
        assert_eq!(
            assert_one_sentence(&out, 2),
            "error: --device cuda:0 is not available: this machine has no CUDA device (libtorch \
             sees 0); use --device cpu\n"
        );
    }
}

#[test]
fn a_device_that_is_not_one_is_a_usage_error() {
    let s = Setup::new();
    for bad in ["gpu", "cuda:", "cuda:-1", "cuda:one", "CPU"] {
        let out = s.vggdsl(&["eval", "tiny.vgg", "--weights", "w", "--device", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let text = stderr(&out);
        assert!(
            text.starts_with(&format!(
                "error: invalid value '{bad}' for '--device <DEVICE>': a device is cpu, cuda or \
                 cuda:N (N a GPU's index from 0), not {bad:?}\n"
            )),
            "{text}"
        );
        assert!(!text.contains("panicked"), "{text}");
    }
}

#[test]
fn device_cpu_is_the_default_bit_for_bit() {
    let s = Setup::new();
    s.train("plain", &["--epochs", "1"]);
    s.train("cpu", &["--epochs", "1", "--device", "cpu"]);
    assert_same_run(&s.path("plain"), &s.path("cpu"));

    let ok = |args: &[&str]| {
        let out = s.vggdsl(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        out.stdout
    };
    let weights = "plain/last.safetensors";
    let eval = ["eval", "tiny.vgg", "--weights", weights, "--json"];
    let plain = ok(&eval);
    assert_eq!(ok(&[&eval[..], &["--device", "cpu"]].concat()), plain);
    // The figures are real: the report counts all 30 test images.
    let report: Value = serde_json::from_slice(&plain).unwrap();
    assert_eq!(report["images"], 30);

    let rank = ["rank", "tiny.vgg", "--weights", weights, "--limit", "2"];
    ok(&[&rank[..], &["--out", "ranks-plain"]].concat());
    ok(&[&rank[..], &["--out", "ranks-cpu", "--device", "cpu"]].concat());
    let ranks = |dir: &str| std::fs::read(s.path(dir).join("ranks.json")).unwrap();
    assert_eq!(ranks("ranks-plain"), ranks("ranks-cpu"));
}
