//! What prune and rank refuse or note, in one sentence each, and what they never overwrite.

use super::*;

#[test]
fn bad_input_is_one_sentence_and_nothing_is_written() {
    let s = Setup::new();
    s.rank();
    let ranks = ["--ranks", "ranks/ranks.json"];

    // Rates of the wrong length: the compiler's diagnostic, pointing at the flag's text.
    let text = refused(
        &s,
        &[&ranks[..], &["--compress-rate", "[0.5] * 2"]].concat(),
        2,
    );
    assert!(text.contains("--compress-rate:1:1"), "{text}");
    assert!(text.contains("write 4 rates, or 3"), "{text}");
    // Rates that leave no filter, and text that is not a list.
    let text = refused(
        &s,
        &[&ranks[..], &["--compress-rate", "[0.95] * 4"]].concat(),
        2,
    );
    assert!(text.contains("--compress-rate:1:2"), "{text}");
    let text = refused(
        &s,
        &[&ranks[..], &["--compress-rate", "[0.5] } model X {"]].concat(),
        2,
    );
    assert_eq!(text.lines().count(), 1, "{text}");
    // No rates at all, no ranks with --by rank.
    let text = refused(&s, &ranks, 2);
    assert!(text.contains("has no compress_rate"), "{text}");
    assert_eq!(text.lines().count(), 1);
    let text = refused(&s, &["--compress-rate", "[0.5] * 4"], 2);
    assert!(text.contains("--by rank needs --ranks"), "{text}");

    // A ranks file of another model: which conv, which widths.
    std::fs::write(
        s.path("other.json"),
        r#"{"model": "Other", "images": 640, "ranks": {"conv0": [1, 2, 3, 4, 5, 6, 7, 8],
            "conv2": [1, 2], "conv3": [1], "conv5": [1]}}"#,
    )
    .unwrap();
    let text = refused(
        &s,
        &["--ranks", "other.json", "--compress-rate", "[0.5] * 4"],
        1,
    );
    assert_eq!(
        text,
        "error: other.json does not fit small.vgg: it ranks model Other, whose conv2 has 2 \
         filters, but Small's conv2 has 16\n"
    );
    // Ranks that no feature map has, a file larger than a ranks file of the model can be (read no
    // further), ranks given to a criterion that does not read them, and rates of one list item
    // that `*` repeats (one diagnostic for it).
    let rates = ["--compress-rate", "[0.5] * 4"];
    let bad = ["--ranks", "bad.json"];
    let no_filter = ["--compress-rate", "[1.0] * 4"];
    let l1 = ["--by", "l1"];
    // A ranks file that fits Small but for `images` and conv0's rank of filter 1.
    let fitting = |images: &str, rank: &str| {
        let ones = |n: usize| vec!["1"; n].join(", ");
        format!(
            r#"{{"model": "Small", "images": {images}, "ranks": {{"conv0": [1, {rank}, {}],
                "conv2": [{}], "conv3": [{}], "conv5": [{}]}}}}"#,
            ones(6),
            ones(16),
            ones(16),
            ones(24)
        )
    };
    for (json, args, code, why) in [
        (
            fitting("64", "-2"),
            [&bad[..], &rates].concat(),
            1,
            "filter 1 of conv0 has rank -2, but a mean rank is a number ≥ 0",
        ),
        (
            fitting("64", "1e999"),
            [&bad[..], &rates].concat(),
            1,
            "number out of range",
        ),
        (
            fitting("-3", "1"),
            [&bad[..], &rates].concat(),
            1,
            "images is -3, but the ranks are means over at least 1 image",
        ),
        (
            String::new(),
            [&["--ranks", "/dev/zero"][..], &rates].concat(),
            2,
            "error: cannot read /dev/zero: it is larger than 1,088 KiB, more than a ranks file \
             of `vggdsl rank` holds\n",
        ),
        (
            String::new(),
            [&ranks[..], &l1, &rates].concat(),
            2,
            "--ranks is read only by --by rank, so --by l1 would ignore it",
        ),
        (
            String::new(),
            [&ranks[..], &no_filter].concat(),
            2,
            "rate 1 is outside [0, 1)",
        ),
    ] {
        std::fs::write(s.path("bad.json"), json).unwrap();
        let text = refused(&s, &args, code);
        assert!(text.contains(why), "{args:?}: {text}");
        assert_eq!(text.matches("error:").count(), 1, "{args:?}: {text}");
    }
    std::fs::write(s.path("bad.json"), "[1, 2]").unwrap();
    let text = refused(
        &s,
        &["--ranks", "bad.json", "--compress-rate", "[0.5] * 4"],
        1,
    );
    assert!(
        text.starts_with("error: bad.json is not a ranks file of `vggdsl rank`"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 1);

    // Weights of another model.
    std::fs::write(
        s.path("wide.vgg"),
        "model Wide { cfg = [9, M, 16, 16, M, 24, M, 32] }",
    )
    .unwrap();
    let out = s.vggdsl(&[
        "prune",
        "wide.vgg",
        "--weights",
        "w.safetensors",
        "--by",
        "l1",
        "--compress-rate",
        "[0.5] * 4",
        "--out",
        "out",
    ]);
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.starts_with("error: w.safetensors holds weights of another model than Wide"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 1);
    assert!(!s.path("out").exists());

    // Never over its own inputs.
    std::fs::create_dir(s.path("in")).unwrap();
    std::fs::copy(s.path("small.vgg"), s.path("in/model.vgg")).unwrap();
    let out = s.vggdsl(&[
        "prune",
        "in/model.vgg",
        "--weights",
        "w.safetensors",
        "--by",
        "l1",
        "--compress-rate",
        "[0.5] * 4",
        "--out",
        "in",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("it is the model being pruned"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read_to_string(s.path("in/model.vgg")).unwrap(),
        SMALL
    );
    assert_eq!(std::fs::read_dir(s.path("in")).unwrap().count(), 1);
}

#[test]
fn prune_replaces_only_what_it_wrote() {
    let s = Setup::new();
    let args = ["--by", "l1", "--compress-rate", "[0.5] * 4"];
    s.prune("out", &args);
    let first = std::fs::read_to_string(s.path("out/model.vgg")).unwrap();
    assert!(
        first.starts_with("// Pruned by `vggdsl prune` from model Small"),
        "{first}"
    );
    // Its own files, again: replaced.
    s.prune("out", &["--by", "l1", "--compress-rate", "[0.25] * 4"]);
    assert_ne!(
        std::fs::read_to_string(s.path("out/model.vgg")).unwrap(),
        first
    );
    let prune = |out: &str| {
        s.vggdsl(
            &[
                &[
                    "prune",
                    "small.vgg",
                    "--weights",
                    "w.safetensors",
                    "--out",
                    out,
                ][..],
                &args,
            ]
            .concat(),
        )
    };
    // A model.vgg someone wrote, and a folder of other files: refused, untouched.
    std::fs::create_dir(s.path("mine")).unwrap();
    std::fs::write(s.path("mine/model.vgg"), "model Mine { cfg = vgg11 }\n").unwrap();
    let out = prune("mine");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "error: cannot write mine/model.vgg: it does not begin with prune's comment, so vggdsl \
         prune did not write it and will not replace it; choose another --out\n"
    );
    assert_eq!(
        std::fs::read_to_string(s.path("mine/model.vgg")).unwrap(),
        "model Mine { cfg = vgg11 }\n"
    );
    std::fs::create_dir(s.path("notes")).unwrap();
    std::fs::write(s.path("notes/notes.txt"), "mine").unwrap();
    std::fs::write(s.path("notes/model.safetensors"), "mine").unwrap();
    let out = prune("notes");
    assert_eq!(
        stderr(&out),
        "error: notes holds files vggdsl prune did not write (model.safetensors, notes.txt); \
         choose an empty or new --out\n"
    );
    assert_eq!(std::fs::read_dir(s.path("notes")).unwrap().count(), 2);
}

#[test]
fn pruning_a_pruned_model_with_its_own_weights_says_how_to_go_on() {
    let s = Setup::new();
    s.prune("p", &["--by", "l1", "--compress-rate", "[0.5] * 4"]);
    let out = s.vggdsl(&[
        "prune",
        "p/model.vgg",
        "--weights",
        "p/model.safetensors",
        "--by",
        "l1",
        "--out",
        "q",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        "error: p/model.safetensors holds the weights of SmallPruned as its compress_rate prunes it, \
         but prune reads the weights of the model without its compress_rate; to prune it \
         further, declare it with its widths as its cfg, cfg = [4, M, 8, 8, M, 12, M, 32], and \
         no compress_rate, or give the unpruned model's weights\n"
    );
    assert!(!s.path("q").exists());
    // Done so, it prunes.
    std::fs::write(
        s.path("again.vgg"),
        "model Small { cfg = [4, M, 8, 8, M, 12, M, 32] }\n",
    )
    .unwrap();
    let args = ["--by", "l1", "--compress-rate", "[0.5] * 4"];
    s.prune_with("again.vgg", "p/model.safetensors", "q", &args);
}

#[test]
fn ranks_of_a_model_named_otherwise_are_used_with_a_note() {
    let s = Setup::new();
    s.rank();
    let text = std::fs::read_to_string(s.path("ranks/ranks.json")).unwrap();
    std::fs::write(
        s.path("renamed.json"),
        text.replace("\"Small\"", "\"Ranked\""),
    )
    .unwrap();
    let out = s.prune(
        "out",
        &["--ranks", "renamed.json", "--compress-rate", "[0.5] * 4"],
    );
    assert_eq!(
        stderr(&out),
        "note: renamed.json ranks model Ranked, not Small; its convs and widths are those of \
         Small without compress_rate, so its ranks are used\n"
    );
    // Its own ranks: nothing to note.
    let out = s.prune(
        "own",
        &[
            "--ranks",
            "ranks/ranks.json",
            "--compress-rate",
            "[0.5] * 4",
        ],
    );
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
}

/// `vggdsl rank small.vgg` with `weights` into `out`.
fn rank_with(s: &Setup, weights: &str, out: &str) -> Output {
    s.vggdsl(&[
        "rank",
        "small.vgg",
        "--weights",
        weights,
        "--data",
        "data",
        "--limit",
        "1",
        "--batch-size",
        "8",
        "--out",
        out,
    ])
}

#[test]
fn rank_never_panics_on_weights_or_maps_without_a_rank() {
    let s = Setup::new();
    let rewritten = |name: &str, edit: &dyn Fn(&str, &mut Tensor)| {
        let tensors: Vec<(String, Tensor)> = read_state_dict(s.path("w.safetensors"))
            .unwrap()
            .into_iter()
            .map(|(key, mut t)| {
                tch::no_grad(|| edit(&key, &mut t));
                (key, t)
            })
            .collect();
        let bytes = vggdsl_runtime::state_dict::safetensors_bytes(tensors).unwrap();
        std::fs::write(s.path(name), bytes).unwrap();
    };
    // A NaN running variance: refused up front, naming the tensor.
    rewritten("nan.safetensors", &|key, t| {
        if key == "features.norm2.running_var" {
            let _ = t.get(3).fill_(f64::NAN);
        }
    });
    let out = rank_with(&s, "nan.safetensors", "r");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "error: nan.safetensors holds NaN in features.norm2.running_var: such weights give NaN \
         outputs, so vggdsl does not use them\n"
    );
    // Finite weights so large that the activations overflow: the maps have no rank.
    rewritten("huge.safetensors", &|key, t| {
        if key.ends_with("conv0.weight") || key.ends_with("conv2.weight") {
            let _ = t.fill_(1e30);
        }
    });
    let out = rank_with(&s, "huge.safetensors", "r");
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    assert!(
        text.starts_with("error: cannot rank: the feature maps of conv")
            && text.ends_with(
                "hold infinite or NaN values (the weights make the activations \
                               overflow float32), and such maps have no rank\n"
            ),
        "{text}"
    );
    assert!(!s.path("r").exists());
    // Whatever libtorch call fails, the command says one sentence (a failing call is forced).
    let out = Command::new(VGGDSL)
        .args([
            "rank",
            "small.vgg",
            "--weights",
            "w.safetensors",
            "--out",
            "r",
        ])
        .env("VGGDSL_TEST_FAIL", "torch")
        .current_dir(s.dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "error: libtorch failed: shape '[3]' is invalid for input of size 2\n"
    );
    // A ranks.json that is not one is not replaced.
    std::fs::create_dir(s.path("mine")).unwrap();
    std::fs::write(s.path("mine/ranks.json"), "my notes").unwrap();
    let out = rank_with(&s, "w.safetensors", "mine");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("it is not a ranks file, so vggdsl did not write it"));
    assert_eq!(
        std::fs::read_to_string(s.path("mine/ranks.json")).unwrap(),
        "my notes"
    );
}
