//! The run folder: saves that survive a full disk or a kill, files never replaced, a folder in use, outputs checked before any work.

use super::*;

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
