//! `vggdsl rank` and `vggdsl prune` through the binary, on a small CIFAR-shaped model and small
//! CIFAR-10 files in the real format: pruned models against the same surgery done in PyTorch
//! (`hrank.py` of `vggdsl-test-support`, one process for this file), rates of 0 giving back the model, the
//! files written and their formats, and bad input as one sentence with nothing written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use vggdsl::files::kept::KeptFile;
use vggdsl_runtime::tch::nn::{ModuleT, VarStore};
use vggdsl_runtime::tch::{self, Device, Kind, Tensor};
use vggdsl_runtime::{read_state_dict, Network};
use vggdsl_test_support::{cifar, pytorch, tempdir, TempDir};

mod images;
mod refusals;

const VGGDSL: &str = env!("CARGO_BIN_EXE_vggdsl");

/// Four convs (conv0 8, conv2 16, conv3 16, conv5 24), a pool after the last one, so its block
/// output is a pool; 2×2 per channel after the head.
const SMALL: &str = "// A small CIFAR model.
model Small {
    cfg = [8, M, 16, 16, M, 24, M, 32]
}
";
const SMALL_CONFIG: &str = r#"{"cfg": [8, "M", 16, 16, "M", 24, "M", 32]}"#;
const CONVS: [&str; 4] = ["conv0", "conv2", "conv3", "conv5"];

/// A temporary folder with `small.vgg`, weights `w.safetensors` (seeded, BatchNorm statistics
/// and biases drawn at random so that surgery that forgets them shows) and CIFAR-10 files.
struct Setup {
    dir: TempDir,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempdir();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        cifar::write_cifar10(&dir.path().join("data"), 30, 10);
        std::fs::write(dir.path().join("small.vgg"), SMALL).unwrap();
        let setup = Setup { dir };
        let ir = vggdsl::check_source(SMALL).unwrap().remove(0);
        tch::manual_seed(1);
        let vs = VarStore::new(Device::Cpu);
        let _net = Network::new(&vs.root(), &ir);
        tch::no_grad(|| {
            for (key, mut t) in vs.variables() {
                let _ = match key.rsplit('.').next().unwrap() {
                    "running_var" => t.uniform_(0.5, 2.0),
                    "num_batches_tracked" => t.fill_(7),
                    "bias" | "running_mean" => t.normal_(0.0, 0.1),
                    "weight" if key.contains("norm") => t.uniform_(0.5, 1.5),
                    _ => continue,
                };
            }
        });
        vggdsl_runtime::save_state_dict(&vs, setup.path("w.safetensors")).unwrap();
        setup
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn vggdsl(&self, args: &[&str]) -> Output {
        Command::new(VGGDSL)
            .args(args)
            .current_dir(self.dir.path())
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    }

    /// `vggdsl rank small.vgg` over 2 batches of 32 into `ranks/`.
    fn rank(&self) {
        let out = self.vggdsl(&[
            "rank",
            "small.vgg",
            "--weights",
            "w.safetensors",
            "--data",
            "data",
            "--limit",
            "2",
            "--batch-size",
            "32",
            "--out",
            "ranks",
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
    }

    /// `vggdsl prune small.vgg` with `args`, into `out`; panics unless it succeeds.
    fn prune(&self, out: &str, args: &[&str]) -> Output {
        self.prune_with("small.vgg", "w.safetensors", out, args)
    }

    /// `vggdsl prune file --weights weights` with `args`, into `out`; panics unless it succeeds.
    fn prune_with(&self, file: &str, weights: &str, out: &str, args: &[&str]) -> Output {
        let mut all = vec!["prune", file, "--weights", weights, "--out", out];
        all.extend(args);
        let output = self.vggdsl(&all);
        assert!(output.status.success(), "{all:?}: {}", stderr(&output));
        output
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn tensors(path: impl AsRef<Path>) -> BTreeMap<String, Tensor> {
    read_state_dict(path).unwrap().into_iter().collect()
}

/// The eval-mode outputs of the model in `dir/model.vgg` with `dir/model.safetensors`, loaded
/// strictly into the run-time network.
fn outputs(dir: &Path, xs: &Tensor) -> Tensor {
    let mut vs = VarStore::new(Device::Cpu);
    let net = Network::from_file(&vs.root(), dir.join("model.vgg"), None).unwrap();
    vggdsl_runtime::load_state_dict(&mut vs, dir.join("model.safetensors")).unwrap();
    tch::no_grad(|| net.forward_t(xs, false))
}

fn input() -> Tensor {
    tch::manual_seed(9);
    Tensor::randn([6, 3, 32, 32], (Kind::Float, Device::Cpu))
}

/// The per-conv rates of the model `dir/model.vgg`, as a reference.py config key.
fn pruned_config(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("model.vgg")).unwrap();
    let net = vggdsl::check_source(&text).unwrap().remove(0);
    serde_json::json!({ "compress_rate": net.spec.compress_rate.unwrap() }).to_string()
}

/// Runs `hrank.py batch` on the command lines in one process; `None` without PyTorch.
fn pytorch(commands: &[Vec<String>]) -> Option<()> {
    let commands = serde_json::to_string(commands).unwrap();
    pytorch::run("hrank.py", ["batch", "--commands", &commands]).map(drop)
}

#[test]
fn pruned_models_equal_the_same_surgery_in_pytorch() {
    let s = Setup::new();
    s.rank();
    let xs = input();
    Tensor::write_safetensors(&[("x", &xs)], s.path("x.safetensors")).unwrap();
    // (out folder, flags, PyTorch copies only conv kernels, seed)
    let cases: [(&str, &[&str], bool, u64); 3] = [
        (
            "by-rank",
            &[
                "--ranks",
                "ranks/ranks.json",
                "--compress-rate",
                "[0.5] * 2 + [0.25, 0.75]",
            ],
            false,
            0,
        ),
        (
            "l1-hrank",
            &[
                "--by",
                "l1",
                "--rule",
                "hrank",
                "--compress-rate",
                "[0.5, 0.3, 0.3, 0.9]",
            ],
            false,
            0,
        ),
        (
            "random-conv-only",
            &[
                "--by",
                "random",
                "--seed",
                "3",
                "--copy",
                "conv-only",
                "--compress-rate",
                "[0.5, 0.5, 0.25]",
            ],
            true,
            3,
        ),
    ];
    let mut commands = Vec::new();
    for (dir, flags, conv_only, seed) in &cases {
        s.prune(dir, flags);
        let mut command = vec![
            "prune".to_owned(),
            "--config".into(),
            SMALL_CONFIG.into(),
            "--pruned-config".into(),
            pruned_config(&s.path(dir)),
            "--weights".into(),
            s.path("w.safetensors").display().to_string(),
            "--kept".into(),
            s.path(dir).join("kept.json").display().to_string(),
            "--input".into(),
            s.path("x.safetensors").display().to_string(),
            "--out".into(),
            s.path(&format!("{dir}.torch.safetensors"))
                .display()
                .to_string(),
            "--seed".into(),
            seed.to_string(),
        ];
        if *conv_only {
            command.push("--conv-only".into());
        }
        commands.push(command);
    }
    if pytorch(&commands).is_none() {
        return;
    }

    for (dir, ..) in &cases {
        let mut torch = tensors(s.path(&format!("{dir}.torch.safetensors")));
        let output = torch.remove("output").unwrap();
        let ours = tensors(s.path(dir).join("model.safetensors"));
        assert_eq!(
            ours.keys().collect::<Vec<_>>(),
            torch.keys().collect::<Vec<_>>(),
            "{dir}"
        );
        for (key, t) in &ours {
            assert!(t.equal(&torch[key]), "{dir}: {key} differs from PyTorch's");
        }
        // Same ops on the same tensors: bit for bit.
        assert!(
            outputs(&s.path(dir), &xs).equal(&output),
            "{dir}: outputs differ from PyTorch's"
        );
    }

    // The widths each rule gave: HRankPlus's int(c·(1 − r)), HRank's c − int(r·c).
    let widths = |dir: &str| -> Vec<usize> {
        let text = std::fs::read_to_string(s.path(dir).join("kept.json")).unwrap();
        let kept = KeptFile::from_json(&text).unwrap();
        let names: Vec<&str> = kept.convs.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, CONVS, "{dir}: the convs in order");
        kept.convs.iter().map(|(_, k)| k.len()).collect()
    };
    assert_eq!(widths("by-rank"), [4, 8, 12, 6]);
    assert_eq!(widths("l1-hrank"), [4, 12, 12, 3]);
    assert_eq!(widths("random-conv-only"), [4, 8, 12, 24]);
}

#[test]
fn ranks_json_has_a_mean_per_filter_of_every_conv_in_order() {
    let s = Setup::new();
    s.rank();
    let text = std::fs::read_to_string(s.path("ranks/ranks.json")).unwrap();
    // Keys in conv order (a sorted map would put conv5 after conv3 anyway; check the text).
    let at: Vec<usize> = CONVS
        .iter()
        .map(|c| text.find(&format!("\"{c}\"")).unwrap())
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{text}");
    let json: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["model"], "Small");
    assert_eq!(json["images"], 64);
    let ranks = json["ranks"].as_object().unwrap();
    assert_eq!(ranks.len(), 4);
    // conv0's map is pooled to 16×16, conv5's to 4×4: mean ranks within [0, side].
    for (conv, (width, side)) in CONVS
        .iter()
        .zip([(8, 16.0), (16, 16.0), (16, 8.0), (24, 4.0)])
    {
        let means = ranks[*conv].as_array().unwrap();
        assert_eq!(means.len(), width, "{conv}");
        assert!(
            means
                .iter()
                .all(|m| (0.0..=side).contains(&m.as_f64().unwrap())),
            "{conv}: {means:?}"
        );
    }
}

#[test]
fn rates_of_zero_give_back_the_same_model_and_weights() {
    let s = Setup::new();
    s.prune("same", &["--by", "l1", "--compress-rate", "[0] * 4"]);
    let before = tensors(s.path("w.safetensors"));
    let after = tensors(s.path("same/model.safetensors"));
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    for (key, t) in &before {
        assert!(t.equal(&after[key]), "{key}");
    }
    let xs = input();
    let mut vs = VarStore::new(Device::Cpu);
    let net = Network::from_file(&vs.root(), s.path("small.vgg"), None).unwrap();
    vggdsl_runtime::load_state_dict(&mut vs, s.path("w.safetensors")).unwrap();
    let original = tch::no_grad(|| net.forward_t(&xs, false));
    assert!(outputs(&s.path("same"), &xs).equal(&original));
}

#[test]
fn the_pruned_file_is_the_model_text_with_the_rates_and_compiles() {
    let s = Setup::new();
    s.rank();
    let out = s.prune(
        "p",
        &[
            "--ranks",
            "ranks/ranks.json",
            "--rule",
            "hrank",
            "--compress-rate",
            "[0.8, 0.3, 0.3, 0.9]",
            "--json",
        ],
    );
    let text = std::fs::read_to_string(s.path("p/model.vgg")).unwrap();
    // A comment saying where it came from, then the model's text with HRank's widths as rates:
    // 8 − int(6.4) = 2 → 0.75, 16 − int(4.8) = 12 → 0.25, 24 − int(21.6) = 3 → 0.875.
    let (comment, model) = text.split_at(text.find("\nmodel SmallPruned").unwrap() + 1);
    assert!(comment.lines().all(|l| l.starts_with("// ")), "{comment}");
    assert!(
        comment.contains("small.vgg") && comment.contains("w.safetensors"),
        "{comment}"
    );
    assert!(comment.contains("HRank's c − int(r·c)"), "{comment}");
    assert_eq!(
        model,
        "model SmallPruned {\n    cfg = [8, M, 16, 16, M, 24, M, 32]\n    compress_rate = [0.75] + [0.25] * 2 + [0.875]\n}\n"
    );
    let compiled = s.vggdsl(&["compile", "p/model.vgg"]);
    assert!(compiled.status.success(), "{}", stderr(&compiled));
    assert!(String::from_utf8_lossy(&compiled.stdout).contains("struct SmallPruned {"));

    // The figures: every conv and linear before and after, totals as `vggdsl summary` counts.
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["rule"], "hrank");
    assert_eq!(json["by"], "rank");
    let layers = json["layers"].as_array().unwrap();
    let filters: Vec<Value> = layers.iter().map(|l| l["filters"].clone()).collect();
    assert_eq!(
        filters,
        serde_json::json!([[8, 2], [16, 12], [16, 12], [24, 3], [32, 32], [10, 10]])
            .as_array()
            .unwrap()
            .clone()
    );
    let summary = |file: &str| -> Value {
        let out = s.vggdsl(&["summary", file, "--json"]);
        serde_json::from_slice::<Value>(&out.stdout).unwrap()["models"][0].clone()
    };
    let (before, after) = (summary("small.vgg"), summary("p/model.vgg"));
    assert_eq!(
        json["total"]["macs"],
        serde_json::json!([before["macs"], after["macs"]])
    );
    assert_eq!(
        json["total"]["params"],
        serde_json::json!([before["params_conv_linear"], after["params_conv_linear"]])
    );
}

#[test]
fn the_files_compress_rate_is_used_when_the_flag_is_omitted() {
    let s = Setup::new();
    std::fs::write(
        s.path("pruned.vgg"),
        "pub Small<cfg = [8, M, 16, 16, M, 24, M, 32], compress_rate = [0.5] * 3>\n",
    )
    .unwrap();
    let out = s.vggdsl(&[
        "prune",
        "pruned.vgg",
        "--weights",
        "w.safetensors",
        "--by",
        "random",
        "--out",
        "p",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(s.path("p/model.vgg")).unwrap();
    assert!(
        text.ends_with(
            "pub SmallPruned<cfg = [8, M, 16, 16, M, 24, M, 32], compress_rate = [0.5] * 3>\n"
        ),
        "{text}"
    );
    let xs = input();
    assert_eq!(outputs(&s.path("p"), &xs).size(), [6, 10]);
}

/// The command failed with `code`, said `sentence` (and, for diagnostics, their lines), and
/// wrote nothing: no `out` folder.
fn refused(s: &Setup, args: &[&str], code: i32) -> String {
    let mut all = vec![
        "prune",
        "small.vgg",
        "--weights",
        "w.safetensors",
        "--out",
        "out",
    ];
    all.extend(args);
    let out = s.vggdsl(&all);
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(code), "{all:?}: {text}");
    assert!(text.starts_with("error: "), "{text}");
    assert!(out.stdout.is_empty());
    assert!(!s.path("out").exists(), "{all:?} wrote something");
    text
}

/// The pruned model is `<Model>Pruned` unless `--name` says otherwise, so that training it gets a
/// run folder of its own; a name the file cannot take is a usage error before any work.
#[test]
fn the_pruned_model_has_a_name_of_its_own() {
    let s = Setup::new();
    let rates = ["--by", "l1", "--compress-rate", "[0.5] * 4"];
    assert!(s.prune("p", &rates).status.success());
    let text = std::fs::read_to_string(s.path("p/model.vgg")).unwrap();
    assert!(text.contains("\nmodel SmallPruned {"), "{text}");

    let named = [&rates[..], &["--name", "Half"]].concat();
    assert!(s.prune("q", &named).status.success());
    let text = std::fs::read_to_string(s.path("q/model.vgg")).unwrap();
    assert!(text.contains("\nmodel Half {"), "{text}");

    for bad in ["9lives", "has space", "a-b", ""] {
        let text = refused(&s, &[&rates[..], &["--name", bad]].concat(), 2);
        assert!(text.contains("is not a model name"), "{bad}: {text}");
    }
    // Before any work includes Taylor's training set: not even its folder is looked at.
    let taylor = [
        "--by",
        "taylor",
        "--data",
        "nodata",
        "--compress-rate",
        "[0.5] * 4",
    ];
    let text = refused(&s, &[&taylor[..], &["--name", "9lives"]].concat(), 2);
    assert!(text.contains("is not a model name"), "{text}");
}
