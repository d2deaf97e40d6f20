//! `vggdsl prune` to a budget, through the binary, on a small CIFAR-shaped model: every strategy
//! meets its target within one filter per conv (one `--round-to` step when rounding), the pruned
//! file states the widths, and bad budgets are one sentence with nothing written.

mod common;

use std::path::Path;

use serde_json::Value;
use vggdsl::files::sensitivity::{
    Conv, Figures, LatencyConditions, Point, Seconds, SensitivityFile, Validation,
};
use vggdsl::Architecture;
use vggdsl_runtime::tch::nn::VarStore;
use vggdsl_runtime::tch::{self, Device};
use vggdsl_runtime::Network;
use vggdsl_test_support::{tempdir, TempDir};

use common::{path, text, vggdsl};

const SMALL: &str = "model Small {\n    cfg = [8, M, 16, 16, M, 24, M, 32]\n}\n";

fn model() -> Architecture {
    vggdsl::check_source(SMALL).unwrap().remove(0)
}

/// `small.vgg` and seeded weights `w.safetensors` in a temporary folder.
fn setup() -> TempDir {
    let dir = tempdir();
    std::fs::write(dir.path().join("small.vgg"), SMALL).unwrap();
    let _guard = vggdsl_test_support::rng();
    tch::manual_seed(5);
    let vs = VarStore::new(Device::Cpu);
    let _net = Network::new(&vs.root(), &model());
    vggdsl_runtime::save_state_dict(&vs, dir.path().join("w.safetensors")).unwrap();
    dir
}

/// `vggdsl prune small.vgg … --out OUT --json` in `dir`: the report and the pruned widths.
fn prune(dir: &Path, out: &str, args: &[&str]) -> (Value, Vec<i64>) {
    let small = dir.join("small.vgg");
    let weights = dir.join("w.safetensors");
    let out = dir.join(out);
    let mut all = vec![
        "prune",
        path(&small),
        "--weights",
        path(&weights),
        "--by",
        "l1",
        "--json",
        "--out",
        path(&out),
    ];
    all.extend(args);
    let output = vggdsl(&all);
    assert!(output.status.success(), "{all:?}: {}", text(&output.stderr));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let pruned = std::fs::read_to_string(out.join("model.vgg")).unwrap();
    let net = vggdsl::check_source(&pruned).unwrap().remove(0);
    (report, net.convs().map(|(.., c)| c).collect())
}

/// A sweep of the model with made-up accuracies: conv2 and conv5 lose nothing until 70 %.
fn sweep(dir: &Path) -> String {
    let rates = [0.1, 0.3, 0.5, 0.7, 0.9];
    let drops = |conv: &str, rate: f64| match conv {
        "conv2" | "conv5" if rate < 0.7 => 0.0,
        _ => rate / 2.0,
    };
    let file = SensitivityFile {
        model: "Small".into(),
        weights: "w.safetensors".into(),
        by: "l1".into(),
        round_to: 1,
        validation: Validation {
            dataset: "cifar10".into(),
            images: 100,
        },
        latency: LatencyConditions {
            batch: 1,
            threads: 1,
            machine: "test".into(),
        },
        unpruned: Figures {
            accuracy: 0.9,
            loss: 0.3,
            params: 0,
            macs: 0,
            latency_ms: 1.0,
        },
        convs: model()
            .convs()
            .map(|(_, name, width)| Conv {
                name: name.into(),
                width,
                points: rates
                    .iter()
                    .filter(|&&rate| vggdsl::ir::pruned_width(width, rate, 1) > 0)
                    .map(|&rate| Point {
                        rate,
                        filters: vggdsl::ir::pruned_width(width, rate, 1),
                        accuracy: 0.9 - drops(name, rate),
                        loss: 0.3,
                        params: 0,
                        macs: 0,
                        latency_ms: 1.0,
                    })
                    .collect(),
            })
            .collect(),
        seconds: Seconds::default(),
    };
    let at = dir.join("sensitivity.json");
    std::fs::write(&at, file.to_json()).unwrap();
    at.display().to_string()
}

#[test]
fn every_strategy_meets_its_target_within_one_filter_per_conv() {
    let dir = setup();
    let sensitivity = sweep(dir.path());
    let net = model();
    let full: Vec<i64> = net.convs().map(|(.., c)| c).collect();
    let figure = |w: &[i64], what: &str| {
        let (params, macs) = vggdsl::budget::figures(&net, w);
        (if what == "macs" { macs } else { params }) as f64
    };
    for (what, target, share) in [("macs", "50%", 0.5), ("params", "30%", 0.3)] {
        for round_to in ["1", "4"] {
            for strategy in ["uniform", "global", "sensitivity"] {
                let flag = format!("--target-{what}");
                let out = format!("{what}-{strategy}-{round_to}");
                let mut args = vec![&flag[..], target, "--strategy", strategy];
                args.extend(["--round-to", round_to]);
                // Only the strategy that reads it takes the sweep.
                if strategy == "sensitivity" {
                    args.extend(["--sensitivity", &sensitivity]);
                }
                let (report, widths) = prune(dir.path(), &out, &args);
                let limit = share * figure(&full, what);
                let step: i64 = round_to.parse().unwrap();
                let reached = figure(&widths, what);
                assert!(reached <= limit, "{out}: {widths:?}");
                assert_eq!(report["target"]["reached"].as_f64(), Some(reached), "{out}");
                let more: Vec<i64> = widths
                    .iter()
                    .zip(&full)
                    .map(|(&w, &c)| (w + step).min(c))
                    .collect();
                assert!(figure(&more, what) > limit, "{out}: {widths:?}");
                assert!(
                    widths
                        .iter()
                        .zip(&full)
                        .all(|(w, c)| w % step == 0 || w == c),
                    "{out}: {widths:?}"
                );
            }
        }
    }
    // The sweep's cheap convs lose the most.
    let (_, widths) = prune(
        dir.path(),
        "where",
        &[
            "--target-macs",
            "60%",
            "--strategy",
            "sensitivity",
            "--sensitivity",
            &sensitivity,
        ],
    );
    assert!(
        widths[1] < 16 && widths[3] < 24 && widths[0] == 8,
        "{widths:?}"
    );
}

#[test]
fn the_pruned_file_states_the_widths_and_a_latency_target_is_timed() {
    let dir = setup();
    let (report, widths) = prune(
        dir.path(),
        "uniform",
        &["--target-macs", "50%", "--round-to", "4"],
    );
    let pruned = std::fs::read_to_string(dir.path().join("uniform/model.vgg")).unwrap();
    let rate = report["compress_rate"].as_str().unwrap();
    assert!(
        pruned.contains(&format!("compress_rate = {rate}")),
        "{pruned}"
    );
    assert!(pruned.contains("round_to = 4"), "{pruned}");
    // One rate for every conv, rounded widths and all.
    assert!(rate.starts_with('[') && rate.ends_with("] * 4"), "{rate}");
    assert_eq!(widths.len(), 4);
    // 100% of the unpruned latency keeps every filter, timed once.
    let cache = tempdir();
    let small = dir.path().join("small.vgg");
    let weights = dir.path().join("w.safetensors");
    let out = dir.path().join("latency");
    let output = common::command(&[
        "prune",
        path(&small),
        "--weights",
        path(&weights),
        "--by",
        "l1",
        "--target-latency",
        "100%",
        "--latency-batch",
        "2",
        "--out",
        path(&out),
    ])
    .env("XDG_CACHE_HOME", cache.path())
    .output()
    .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    let report = text(&output.stdout);
    assert!(
        report.contains("Target: 100% of the latency: at most"),
        "{report}"
    );
    assert!(report.contains("(batch 2, 1 thread)"), "{report}");
    let table = std::fs::read_dir(cache.path().join("vggdsl/latency"))
        .unwrap()
        .count();
    assert_eq!(table, 1);
}

#[test]
fn bad_budgets_are_one_sentence_and_write_nothing() {
    let dir = setup();
    let sensitivity = sweep(dir.path());
    let small = dir.path().join("small.vgg");
    let weights = dir.path().join("w.safetensors");
    let cases: [(&[&str], i32, &str); 11] = [
        (
            &["--target-macs", "0.5"],
            2,
            "`0.5` is not a count of macs: write a whole number such as 150000000 or 150M",
        ),
        (
            &["--target-macs", "50%", "--compress-rate", "[0.5] * 4"],
            2,
            "cannot be used with",
        ),
        (
            &["--target-macs", "50%", "--strategy", "sensitivity"],
            2,
            "--strategy sensitivity needs --sensitivity FILE",
        ),
        (&["--strategy", "global"], 2, "required arguments were not provided"),
        // Flags the strategy or the target would ignore, even when they say the default.
        (
            &["--target-macs", "50%", "--sensitivity", &sensitivity],
            2,
            "--sensitivity is read only by --strategy sensitivity, so --strategy uniform would \
             ignore it; leave it out, or --strategy sensitivity",
        ),
        (
            &["--target-macs", "50%", "--strategy", "sensitivity", "--normalise", "mean", "--sensitivity", &sensitivity],
            2,
            "--normalise is read only by --strategy global, so --strategy sensitivity would ignore it",
        ),
        (
            &["--target-macs", "50%", "--latency-batch", "1"],
            2,
            "--latency-batch is read only by --target-latency, so --target-macs would ignore it",
        ),
        (
            &["--target-params", "50%", "--strategy", "global", "--latency-threads", "2"],
            2,
            "--latency-threads is read only by --target-latency, so --target-params would ignore it",
        ),
        (
            &["--target-macs", "1K"],
            1,
            "the target 1,000 MACs cannot be met: the least the uniform strategy reaches is",
        ),
        (
            &["--target-macs", "50%", "--strategy", "global", "--by", "random"],
            1,
            "the global strategy ranks scores, and a random choice (seed 0) gives none",
        ),
        (
            &["--target-macs", "50%", "--strategy", "sensitivity", "--by", "random", "--sensitivity", &sensitivity],
            1,
            "the sensitivity file does not fit: it measured filters chosen by l1, and this pruning chooses them by random",
        ),
    ];
    for (args, code, sentence) in cases {
        let out = dir.path().join("out");
        let mut all = vec![
            "prune",
            path(&small),
            "--weights",
            path(&weights),
            "--out",
            path(&out),
        ];
        if !args.contains(&"--by") {
            all.extend(["--by", "l1"]);
        }
        all.extend(args);
        let output = vggdsl(&all);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(stderr.contains(sentence), "{args:?}: {stderr}");
        assert!(!out.exists(), "{args:?}");
    }
}
