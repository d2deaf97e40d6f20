//! The `vggdsl` command: exit codes, output on each stream, JSON structure, compile stability,
//! and what it does with hostile paths (its input as output, devices, closed pipes).

mod common;
use common::{command, finish, path, repo, text, vggdsl, vggdsl_with_stdin};
use std::path::Path;
use std::process::{Command, Output};
use vggdsl_test_support::tempdir;

/// Asserts the run failed with `code` and said so in exactly one `error: ` line on stderr, which it
/// returns, and printed nothing on stdout.
fn one_error(out: &Output, code: i32) -> String {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{err}");
    assert!(
        err.starts_with("error: ") && err.lines().count() == 1,
        "{err}"
    );
    assert!(out.stdout.is_empty(), "{err}");
    err
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
    let tmp = tempdir();
    let dir = tmp.path();
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
    let tmp = tempdir();
    let dir = tmp.path();
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
    let tmp = tempdir();
    let dir = tmp.path();
    let out_file = dir.join("vgg16_bn.rs");
    let target = path(&out_file);
    let src = repo("examples/vgg16_bn.vgg");

    let first = vggdsl(&["compile", &src, "-o", target]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    assert!(first.stdout.is_empty());
    let written = std::fs::read(&out_file).expect("-o creates the file");
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

    // A changed generated file is rewritten, and so is an empty one.
    for old in ["// @generated by an older vggdsl\n", ""] {
        std::fs::write(&out_file, old).unwrap();
        let again = vggdsl(&["compile", &src, "-o", target]);
        assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
        assert!(std::fs::read(&out_file).unwrap() == written);
    }
}

#[test]
fn compile_replaces_the_output_whole_through_a_rename() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let tmp = tempdir();
    let dir = tmp.path();
    let out_file = dir.join("net.rs");
    std::fs::write(&out_file, "// @generated by an older vggdsl\n").unwrap();
    std::fs::set_permissions(&out_file, std::fs::Permissions::from_mode(0o640)).unwrap();
    let before = std::fs::metadata(&out_file).unwrap();

    let src = repo("examples/vgg16_bn.vgg");
    let out = vggdsl(&["compile", &src, "-o", path(&out_file)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let after = std::fs::metadata(&out_file).unwrap();
    assert_ne!(
        after.ino(),
        before.ino(),
        "a new file is renamed into place"
    );
    assert_eq!(
        after.mode() & 0o777,
        0o640,
        "the old file's permissions stay"
    );
    assert!(std::fs::read(&out_file).unwrap() == vggdsl(&["compile", &src]).stdout);
    let names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["net.rs"], "no temporary file is left");
}

#[test]
fn compile_refuses_to_overwrite_its_input() {
    let tmp = tempdir();
    let dir = tmp.path();
    let input = dir.join("net.vgg");
    let source = std::fs::read(repo("examples/vgg16_bn.vgg")).unwrap();
    std::fs::write(&input, &source).unwrap();
    std::os::unix::fs::symlink(&input, dir.join("link.vgg")).unwrap();
    std::fs::hard_link(&input, dir.join("hard.vgg")).unwrap();
    std::fs::create_dir(dir.join("sub")).unwrap();

    let same = |name: &str| path(&dir.join(name)).to_owned();
    for (from, to) in [
        (same("net.vgg"), same("net.vgg")),
        (same("net.vgg"), same("sub/../net.vgg")),
        (same("net.vgg"), same("link.vgg")),
        (same("link.vgg"), same("net.vgg")),
        (same("hard.vgg"), same("net.vgg")),
    ] {
        let out = vggdsl(&["compile", &from, "-o", &to]);
        let err = one_error(&out, 1);
        assert_eq!(
            err,
            format!("error: cannot write {to}: it is the file being compiled\n")
        );
        assert!(std::fs::read(&input).unwrap() == source, "{from} -o {to}");
    }
}

#[test]
fn compile_refuses_to_overwrite_a_file_it_did_not_generate() {
    let tmp = tempdir();
    let dir = tmp.path();
    let hand = dir.join("lib.rs");
    std::fs::write(&hand, "fn main() {}\n").unwrap();
    let out = vggdsl(&["compile", &repo("examples/vgg16_bn.vgg"), "-o", path(&hand)]);
    let err = one_error(&out, 1);
    assert_eq!(
        err,
        format!(
            "error: cannot write {}: it does not start with `// @generated`, so vggdsl did not \
             write it and will not replace it\n",
            hand.display()
        )
    );
    assert_eq!(std::fs::read_to_string(&hand).unwrap(), "fn main() {}\n");
    // Generated Python is vggdsl's, but of the other language: said so, and kept.
    let module = dir.join("model.py");
    let model = repo("examples/vgg16_bn.vgg");
    let out = vggdsl(&[
        "compile",
        &model,
        "--target",
        "pytorch",
        "-o",
        path(&module),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let python = std::fs::read_to_string(&module).unwrap();
    let err = one_error(&vggdsl(&["compile", &model, "-o", path(&module)]), 1);
    assert_eq!(
        err,
        format!(
            "error: cannot write {}: it holds code vggdsl generated in Python, not Rust, so \
             vggdsl will not replace it with the other language\n",
            module.display()
        )
    );
    assert_eq!(std::fs::read_to_string(&module).unwrap(), python);
}

#[test]
fn compile_into_a_missing_folder_is_an_error() {
    let tmp = tempdir();
    let dir = tmp.path();
    let target = dir.join("no/such/net.rs");
    let out = vggdsl(&[
        "compile",
        &repo("examples/vgg16_bn.vgg"),
        "-o",
        path(&target),
    ]);
    let err = one_error(&out, 1);
    assert_eq!(
        err,
        format!(
            "error: cannot write {}: the folder {} does not exist\n",
            target.display(),
            dir.join("no/such").display()
        )
    );
    assert!(!dir.join("no").exists(), "no folder is created");
}

#[test]
fn compile_to_an_unwritable_place_exits_1() {
    let tmp = tempdir();
    let dir = tmp.path();
    let blocker = dir.join("file");
    std::fs::write(&blocker, "").unwrap();
    let src = repo("examples/vgg16_bn.vgg");
    // A path below a regular file cannot be created.
    let below = blocker.join("out.rs");
    let err = one_error(&vggdsl(&["compile", &src, "-o", path(&below)]), 1);
    assert!(
        err.starts_with(&format!("error: cannot write {}: ", below.display())),
        "{err}"
    );
    // Nor can a folder be replaced by a file.
    let err = one_error(&vggdsl(&["compile", &src, "-o", path(dir)]), 1);
    assert_eq!(
        err,
        format!("error: cannot write {}: it is a folder\n", dir.display())
    );
}

/// Devices and pipes are written directly, never read: reading them used to hang (a pipe), eat all
/// memory (`/dev/zero`) or never end (`/dev/full`).
#[test]
fn compile_writes_to_devices_and_pipes_without_reading_them() {
    let src = repo("examples/vgg16_bn.vgg");
    let expected = vggdsl(&["compile", &src]).stdout;

    // `/dev/stdout` is the pipe the test reads, and `-` is standard output.
    for target in ["/dev/stdout", "-"] {
        let out = vggdsl(&["compile", &src, "-o", target]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert!(out.stdout == expected, "{target}");
    }

    let tmp = tempdir();
    let fifo = tmp.path().join("net.rs");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(fifo).unwrap())
    };
    let out = vggdsl(&["compile", &src, "-o", path(&fifo)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        reader.join().unwrap() == expected,
        "the fifo's reader gets the code"
    );

    let err = one_error(&vggdsl(&["compile", &src, "-o", "/dev/full"]), 1);
    assert_eq!(
        err,
        "error: cannot write /dev/full: No space left on device (os error 28)\n"
    );
}

#[test]
fn dash_reads_standard_input() {
    let source = std::fs::read(repo("examples/vgg16_bn.vgg")).unwrap();
    let out = vggdsl_with_stdin(&["check", "-"], &source);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    let out = vggdsl_with_stdin(&["summary", "--json", "-"], &source);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(doc["models"][0]["params"], 14_991_946);

    let out = vggdsl_with_stdin(&["compile", "-", "-o", "-"], &source);
    let code = text(&out.stdout);
    assert!(
        code.starts_with("// @generated by vggdsl from <stdin>. Do not edit.\n"),
        "{code}"
    );
    let from_file = text(&vggdsl(&["compile", &repo("examples/vgg16_bn.vgg")]).stdout);
    assert_eq!(code.lines().count(), from_file.lines().count());

    let out = vggdsl_with_stdin(
        &["check", "-"],
        b"model A {\n    cfg = default\n    bm = true\n}\n",
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains(" --> <stdin>:3:5\n"), "{err}");
}

/// A reader that stops early (`| head -1`) ends the command quietly, as with other Unix tools.
#[test]
fn a_closed_stdout_ends_quietly() {
    let variants = repo("tests/models/variants.vgg");
    for args in [
        vec!["summary", "--json", &variants],
        vec!["summary", &variants],
        vec!["compile", &variants],
        vec!["--help"],
    ] {
        let mut child = command(&args).spawn().unwrap();
        drop(child.stdout.take()); // the reader is gone before vggdsl writes
        let out = finish(child, b"");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(out.stderr.is_empty(), "{args:?}: {}", text(&out.stderr));
    }
}

#[test]
fn a_full_stdout_is_one_error() {
    let variants = repo("tests/models/variants.vgg");
    for args in [
        vec!["summary", "--json", &variants],
        vec!["summary", &variants],
        vec!["compile", &variants],
        vec!["--help"],
    ] {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let out = finish(command(&args).stdout(full).spawn().unwrap(), b"");
        assert_eq!(
            (out.status.code(), text(&out.stderr).as_str()),
            (
                Some(1),
                "error: cannot write to standard output: No space left on device (os error 28)\n"
            ),
            "{args:?}"
        );
    }
}

#[test]
fn a_full_stderr_keeps_the_exit_code() {
    let tmp = tempdir();
    let dir = tmp.path();
    let bad = dir.join("bad.vgg");
    std::fs::write(&bad, "model A { cfg = [] }").unwrap();
    for (file, code) in [(path(&bad), 1), ("/nonexistent/model.vgg", 2)] {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let out = finish(command(&["check", file]).stderr(full).spawn().unwrap(), b"");
        assert_eq!(out.status.code(), Some(code), "{file}");
    }
}

/// `check` reads every file, and its exit code does not depend on their order.
#[test]
fn check_exit_code_is_the_worst_file() {
    let tmp = tempdir();
    let dir = tmp.path();
    let bad = dir.join("bad.vgg");
    std::fs::write(&bad, "model A { cfg = [] }").unwrap();
    let (bad, missing, good) = (
        path(&bad).to_owned(),
        "/nonexistent/model.vgg".to_owned(),
        repo("examples/vgg16_bn.vgg"),
    );
    for files in [
        [&bad, &missing, &good],
        [&missing, &bad, &good],
        [&good, &bad, &missing],
    ] {
        let mut args = vec!["check"];
        args.extend(files.iter().map(|f| f.as_str()));
        let out = vggdsl(&args);
        assert_eq!(out.status.code(), Some(2), "{files:?}");
        let err = text(&out.stderr);
        assert!(
            err.contains("error: cannot read /nonexistent/model.vgg: "),
            "{err}"
        );
        assert!(err.contains("error: cfg is empty"), "{err}");
    }
    let out = vggdsl(&["check", &bad, &good, &bad]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr).matches("error: cfg is empty").count(), 2);
}

/// Every kind of unusable FILE is one sentence naming it, with exit 2.
#[test]
fn unreadable_files_are_one_sentence() {
    let tmp = tempdir();
    let dir = tmp.path();
    let not_utf8 = dir.join("latin1.vgg");
    std::fs::write(&not_utf8, b"model A {\n  cfg = [64, M] // caf\xe9\n}\n").unwrap();
    let cases = [
        (path(dir).to_owned(), "Is a directory (os error 21)"),
        (
            path(&not_utf8).to_owned(),
            "it is not UTF-8 text (line 2, column 23)",
        ),
        ("/dev/zero".to_owned(), "it is larger than 1 MiB"),
    ];
    for cmd in ["check", "summary", "compile"] {
        for (file, why) in &cases {
            let err = one_error(&vggdsl(&[cmd, file]), 2);
            assert_eq!(err, format!("error: cannot read {file}: {why}\n"), "{cmd}");
        }
    }
}

fn mtime(path: &Path) -> std::time::SystemTime {
    std::fs::metadata(path).unwrap().modified().unwrap()
}
