//! The `vggdsl` command: exit codes, output on each stream, JSON structure, compile stability.

mod common;
use common::repo;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn vggdsl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vggdsl"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("the vggdsl binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("UTF-8 output")
}

/// A fresh scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const EXAMPLES: [&str; 3] = [
    "examples/vgg16_bn.vgg",
    "examples/hrank_vgg16_pruned.vgg",
    "tests/models/variants.vgg",
];

#[test]
fn check_is_silent_on_valid_files() {
    for file in EXAMPLES {
        let out = vggdsl(&["check", &repo(file)]);
        assert_eq!(out.status.code(), Some(0), "{file}: {}", text(&out.stderr));
        assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{file}");
    }
    let all: Vec<String> = EXAMPLES.iter().map(|f| repo(f)).collect();
    let mut args = vec!["check"];
    args.extend(all.iter().map(String::as_str));
    let out = vggdsl(&args);
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
}

#[test]
fn check_reports_diagnostics_and_exits_1() {
    let dir = scratch("bad");
    let bad = dir.join("bad.vgg");
    std::fs::write(&bad, "model A {\n    cfg = default\n    bm = true\n}\n").unwrap();
    let out = vggdsl(&["check", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = text(&out.stderr);
    assert!(err.starts_with("error: unknown key `bm`\n"), "{err}");
    assert!(err.contains(&format!("{}:3:5", bad.display())), "{err}");
    assert!(err.contains("    bm = true\n"), "{err}");
    assert!(err.contains("^^ did you mean `bn`?"), "{err}");
    assert!(
        !err.contains('\x1b'),
        "no colour when stderr is not a terminal"
    );

    // A valid file next to a bad one: still 1, and only the bad one is reported.
    let out = vggdsl(&[
        "check",
        &repo("examples/vgg16_bn.vgg"),
        bad.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr).matches("error:").count(), 1);
}

#[test]
fn missing_file_exits_2() {
    for cmd in ["check", "summary", "compile"] {
        let out = vggdsl(&[cmd, "/nonexistent/model.vgg"]);
        assert_eq!(out.status.code(), Some(2), "{cmd}");
        let err = text(&out.stderr);
        assert!(
            err.starts_with("error: cannot read /nonexistent/model.vgg"),
            "{cmd}: {err}"
        );
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn summary_and_compile_exit_1_on_bad_files() {
    let dir = scratch("bad-summary");
    let bad = dir.join("bad.vgg");
    std::fs::write(&bad, "model A { cfg = [] }").unwrap();
    for cmd in ["summary", "compile"] {
        let out = vggdsl(&[cmd, bad.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{cmd}");
        assert!(out.stdout.is_empty(), "{cmd}");
        assert!(
            text(&out.stderr).starts_with("error: cfg is empty"),
            "{cmd}"
        );
    }
}

#[test]
fn summary_json_structure() {
    let out = vggdsl(&["summary", "--json", &repo("examples/vgg16_bn.vgg")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let models = doc["models"].as_array().expect("models: [...]");
    assert_eq!(models.len(), 1);
    let m = &models[0];
    assert_eq!(m["name"], "Vgg16Bn");
    assert_eq!(m["params"], 14_991_946);
    assert_eq!(m["params_conv_linear"], 14_982_474);
    assert_eq!(m["macs"], 313_463_808);
    assert_eq!(
        m["relu_cfg"],
        serde_json::json!([2, 6, 9, 13, 16, 19, 23, 26, 29, 33, 36, 39])
    );
    assert_eq!(
        m["conv_cfg"],
        serde_json::json!([0, 3, 7, 10, 14, 17, 20, 24, 27, 30, 34, 37])
    );
    let layers = m["layers"].as_array().expect("layers: [...]");
    assert_eq!(layers.len(), 47);
    assert_eq!(
        layers[0],
        serde_json::json!({
            "name": "features.conv0",
            "kind": "Conv2d",
            "out_shape": [64, 32, 32],
            "params": 1792,
            "macs": 1769472,
        })
    );
    for l in layers {
        let keys: Vec<&String> = l.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 5, "{l}");
        for k in ["name", "kind", "out_shape", "params", "macs"] {
            assert!(l.get(k).is_some(), "{k} in {l}");
        }
    }
    assert_eq!(layers[46]["name"], "classifier.linear2");
    assert_eq!(layers[46]["out_shape"], serde_json::json!([10]));
    let sum: u64 = layers.iter().map(|l| l["params"].as_u64().unwrap()).sum();
    assert_eq!(sum, 14_991_946);
}

#[test]
fn summary_json_lists_every_model() {
    let out = vggdsl(&["summary", "--json", &repo("tests/models/variants.vgg")]);
    assert_eq!(out.status.code(), Some(0));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = doc["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "Vgg16NoBn",
            "Vgg19",
            "Vgg11Cifar100",
            "Vgg13",
            "Vgg16HrankPlus",
            "Vgg16Input64",
            "Vgg16TorchInit"
        ]
    );
}

#[test]
fn summary_table() {
    let out = vggdsl(&["summary", &repo("examples/vgg16_bn.vgg")]);
    assert_eq!(out.status.code(), Some(0));
    let table = text(&out.stdout);
    assert!(table.starts_with("Vgg16Bn\n"), "{table}");
    assert!(table.contains("14,991,946"));
    assert!(table.contains("313,463,808"));
}

#[test]
fn compile_is_deterministic() {
    for file in EXAMPLES {
        let a = vggdsl(&["compile", &repo(file)]);
        let b = vggdsl(&["compile", &repo(file)]);
        assert_eq!(a.status.code(), Some(0), "{file}: {}", text(&a.stderr));
        assert!(!a.stdout.is_empty());
        assert!(a.stderr.is_empty());
        assert!(a.stdout == b.stdout, "{file}: two compiles differ");
    }
}

#[test]
fn compile_output_writes_only_when_changed() {
    let dir = scratch("compile-out");
    let out_file = dir.join("nested/vgg16_bn.rs");
    let target = out_file.to_str().unwrap();
    let src = repo("examples/vgg16_bn.vgg");

    let first = vggdsl(&["compile", &src, "-o", target]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    assert!(first.stdout.is_empty());
    let written = std::fs::read(&out_file).expect("-o creates the file and its folder");
    let stdout = vggdsl(&["compile", &src]).stdout;
    assert!(written == stdout, "-o writes what stdout shows");

    let before = mtime(&out_file);
    // Coarse file-system clocks would hide a rewrite within the same tick.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let second = vggdsl(&["compile", &src, "--output", target]);
    assert_eq!(second.status.code(), Some(0));
    assert_eq!(
        mtime(&out_file),
        before,
        "an unchanged output is not rewritten"
    );

    // A changed file is rewritten.
    std::fs::write(&out_file, "stale").unwrap();
    let third = vggdsl(&["compile", &src, "-o", target]);
    assert_eq!(third.status.code(), Some(0));
    assert!(std::fs::read(&out_file).unwrap() == written);
}

#[test]
fn compile_to_an_unwritable_place_exits_2() {
    let dir = scratch("unwritable");
    let blocker = dir.join("file");
    std::fs::write(&blocker, "").unwrap();
    // A path below a regular file cannot be created.
    let target = blocker.join("out.rs");
    let out = vggdsl(&[
        "compile",
        &repo("examples/vgg16_bn.vgg"),
        "-o",
        target.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).starts_with("error: cannot write"));
}

fn mtime(path: &Path) -> std::time::SystemTime {
    std::fs::metadata(path).unwrap().modified().unwrap()
}
