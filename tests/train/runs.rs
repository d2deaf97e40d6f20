//! Training runs: what a run folder holds, PyTorch loading it, exact resumes, Ctrl-C, real data.

use super::*;

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
fn the_printed_resume_command_keeps_the_slices_of_the_data() {
    let s = Setup::new();
    let slices = ["--limit-train", "40", "--limit-test", "10"];
    let mut first = vec!["--epochs", "1"];
    first.extend(slices);
    s.train("sliced", &first);
    let mut again = vec!["train", "tiny.vgg", "--out", "sliced"];
    again.extend(slices);
    let text = assert_one_sentence(&s.vggdsl(&again), 2);
    assert!(
        text.contains(" --limit-train 40 --limit-test 10 --out sliced --resume`"),
        "{text}"
    );
    // The command it prints continues the run: the same training set, so no refusal.
    let command = text.split('`').nth(1).unwrap();
    let mut words: Vec<&str> = command.split_whitespace().skip(1).collect();
    words.extend(["--epochs", "2"]);
    let out = s.bare(&words);
    assert!(out.status.success(), "{command}: {}", stderr(&out));
    assert!(
        stderr(&out).starts_with("resuming Tiny"),
        "{}",
        stderr(&out)
    );
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
