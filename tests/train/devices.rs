//! `--device` on the CPU: a GPU that is not there, a device that is not one, cpu as the default.

use super::*;

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
