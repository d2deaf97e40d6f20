//! Bad input as one sentence: data, weights, the command line, a batch of one image.

use super::*;

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
