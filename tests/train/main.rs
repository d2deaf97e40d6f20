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

mod devices;
mod folders;
mod refusals;
mod runs;

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
