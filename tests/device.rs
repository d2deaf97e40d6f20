//! `--device` through the binary, on the CPU (CI has no GPU; `scripts/gpu-check.sh` runs the
//! CUDA side): a GPU that is not there is one sentence before any work, a device that is not one
//! is a usage error, and `--device cpu` is the default, bit for bit.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use vggdsl_runtime::device;
use vggdsl_runtime::read_state_dict;
use vggdsl_runtime::tch::{Cuda, Device};
use vggdsl_test_support::{cifar, tempdir, TempDir};

/// A tiny model whose run is over in a second.
const TINY: &str = "model Tiny {
    cfg = [8, M, 16, M, 32]
    train { epochs = 1  batch_size = 16  lr = 0.05  seed = 3 }
}
";

/// `tiny.vgg` and a small CIFAR-10 folder (5 × 14 training, 30 test images) in a temporary
/// folder.
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

    /// `vggdsl <args> --data DATA` in the temporary folder.
    fn vggdsl(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_vggdsl"))
            .args(args)
            .arg("--data")
            .arg(self.path("data"))
            .current_dir(self.dir.path())
            .output()
            .unwrap()
    }

    /// `vggdsl <args>`, which must succeed: its stdout.
    fn ok(&self, args: &[&str]) -> Vec<u8> {
        let out = self.vggdsl(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        out.stdout
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
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
        args.extend(["--device", &device]);
        let out = Command::new(env!("CARGO_BIN_EXE_vggdsl"))
            .args(&args)
            .args(["--data", "missing-folder"])
            .current_dir(s.dir.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert_eq!(stderr(&out), sentence, "{args:?}");
        assert!(out.stdout.is_empty());
    }
    // Nothing was made.
    for folder in ["run", "ranks", "sens"] {
        assert!(!s.path(folder).exists(), "{folder}");
    }
    // `cuda` is GPU 0.
    if Cuda::device_count() == 0 {
        let out = s.vggdsl(&["train", "tiny.vgg", "--device", "cuda"]);
        assert_eq!(out.status.code(), Some(2));
        assert_eq!(
            stderr(&out),
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

/// The tensors of a `.safetensors` file, by name.
fn tensors(path: &Path) -> Vec<(String, vggdsl_runtime::tch::Tensor)> {
    read_state_dict(path).unwrap()
}

fn metrics_without_seconds(run: &Path) -> Vec<Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut line: Value = serde_json::from_str(l).unwrap();
            line.as_object_mut().unwrap().remove("seconds");
            line
        })
        .collect()
}

#[test]
fn device_cpu_is_the_default_bit_for_bit() {
    let s = Setup::new();
    s.ok(&["train", "tiny.vgg", "--out", "plain"]);
    s.ok(&["train", "tiny.vgg", "--out", "cpu", "--device", "cpu"]);
    for file in [
        "last.safetensors",
        "best.safetensors",
        "optimizer.safetensors",
    ] {
        let (a, b) = (
            tensors(&s.path("plain").join(file)),
            tensors(&s.path("cpu").join(file)),
        );
        assert_eq!(a.len(), b.len());
        for ((key, x), (_, y)) in a.iter().zip(&b) {
            assert!(x.equal(y), "{file}: {key} differs");
        }
    }
    assert_eq!(
        metrics_without_seconds(&s.path("plain")),
        metrics_without_seconds(&s.path("cpu"))
    );

    let weights = "plain/last.safetensors";
    let eval = ["eval", "tiny.vgg", "--weights", weights, "--json"];
    let plain = s.ok(&eval);
    assert_eq!(s.ok(&[&eval[..], &["--device", "cpu"]].concat()), plain);
    // The figures are real: the report names all 30 test images.
    let report: Value = serde_json::from_slice(&plain).unwrap();
    assert_eq!(report["images"], 30);

    let rank = ["rank", "tiny.vgg", "--weights", weights, "--limit", "2"];
    s.ok(&[&rank[..], &["--out", "ranks-plain"]].concat());
    s.ok(&[&rank[..], &["--out", "ranks-cpu", "--device", "cpu"]].concat());
    let ranks = |dir: &str| std::fs::read(s.path(dir).join("ranks.json")).unwrap();
    assert_eq!(ranks("ranks-plain"), ranks("ranks-cpu"));
}
