//! Bad input to `vggdsl plot` as one sentence with exit 1, and pictures that replace only pictures.

use super::*;

#[test]
fn bad_benchmark_results_are_one_sentence() {
    let tmp = tempdir();
    let dir = tmp.path();
    let out = dir.join("b.svg");
    let file = dir.join("results.json");
    let row = |fields: &str| format!(r#"{{"model": "A", "rows": [{fields}]}}"#);
    let good = r#"{"variant": "V", "threads": 2, "batch": 4, "images_per_second": 100}"#;
    let not_results = "is not a benchmark results file (a JSON object with model and rows): ";
    let cases = [
        ("model: A".to_owned(), not_results),
        ("[1, 2]".to_owned(), not_results),
        (
            r#"{"model": "A"}"#.to_owned(),
            "is not a benchmark results file (a JSON object with model and rows): missing field \
             `rows`",
        ),
        (row(""), "holds no benchmark row"),
        (
            row(r#"{"variant": "V", "threads": 2, "batch": 4, "images_per_second": NaN}"#),
            not_results,
        ),
        (
            row(r#"{"variant": "V", "threads": 2, "batch": 4, "images_per_second": 1e999}"#),
            not_results,
        ),
        (
            row(r#"{"variant": "V", "threads": 2, "batch": 1.5, "images_per_second": 1}"#),
            not_results,
        ),
        (
            row(&format!(
                r#"{good}, {{"variant": "V", "threads": 2, "batch": 0, "images_per_second": 1}}"#
            )),
            "row 2 has batch 0; a batch size is positive",
        ),
        (
            row(r#"{"variant": "V", "threads": 2, "batch": -4, "images_per_second": 1}"#),
            "row 1 has batch -4; a batch size is positive",
        ),
        (
            row(r#"{"variant": "V", "threads": 0, "batch": 4, "images_per_second": 1}"#),
            "row 1 has threads 0; a thread count is positive",
        ),
        (
            row(r#"{"variant": "V", "threads": 2, "batch": 4, "images_per_second": 0}"#),
            "row 1 has images_per_second 0; a throughput is a positive finite number",
        ),
        (
            row(r#"{"variant": "V", "threads": 2, "batch": 4, "images_per_second": -1.5}"#),
            "row 1 has images_per_second -1.5; a throughput is a positive finite number",
        ),
        (
            // serde_json writes a NaN or an infinity as null.
            row(r#"{"variant": "V", "threads": 2, "batch": 4, "images_per_second": null}"#),
            "row 1 has images_per_second null; a throughput is a positive finite number",
        ),
        (
            row(&format!("{good}, {good}")),
            "row 2 measures V at 2 threads and batch 4 again (row 1 did)",
        ),
    ];
    for (content, why) in cases {
        std::fs::write(&file, &content).unwrap();
        let (code, err) = failure(&["bench", path(&file), "-o", path(&out)]);
        assert_eq!(code, 1, "{content}");
        let want = format!("error: {} {why}", file.display());
        if why.starts_with("is not") {
            // serde_json's own words follow.
            assert!(err.starts_with(&want), "{content}: {err}");
        } else {
            assert_eq!(err, format!("{want}\n"), "{content}");
        }
    }
    assert!(!out.exists());

    let missing = dir.join("missing.json");
    let (code, err) = failure(&["bench", path(&missing), "-o", path(&out)]);
    assert_eq!(code, 2);
    assert!(
        err.starts_with(&format!("error: cannot read {}", missing.display())),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn an_unknown_kind_is_one_sentence() {
    let (code, err) = failure(&["histogram", "x.vgg", "-o", "x.svg"]);
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "error: unknown plot kind `histogram`; the kinds are widths, ranks, training, sensitivity, bench and study\n"
    );
}

#[test]
fn a_metrics_file_that_is_not_json_lines_names_its_line() {
    let tmp = tempdir();
    let dir = tmp.path();
    let run = dir.join("broken");
    std::fs::create_dir(&run).unwrap();
    let metrics = run.join("metrics.jsonl");
    std::fs::write(
        &metrics,
        "{\"epoch\": 1, \"loss\": 2.0}\n\n{\"epoch\": 2, \"loss\": 1.5}\nepoch 3: loss 1.2\n",
    )
    .unwrap();
    let out = dir.join("t.svg");
    let (code, err) = failure(&["training", path(&run), "-o", path(&out)]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with(&format!(
            "error: {} line 4 is not a metrics line (a JSON object with epoch and loss): ",
            metrics.display()
        )),
        "{err}"
    );
    assert!(!out.exists());

    std::fs::write(&metrics, "{\"epoch\": 1}\n").unwrap();
    let (code, err) = failure(&["training", path(&run), "-o", path(&out)]);
    assert_eq!(code, 1);
    assert!(err.contains("line 1 is not a metrics line"), "{err}");
    assert!(err.contains("missing field `loss`"), "{err}");

    std::fs::write(&metrics, "\n").unwrap();
    let (code, err) = failure(&["training", path(&run), "-o", path(&out)]);
    assert_eq!(code, 1);
    assert_eq!(
        err,
        format!("error: {} holds no epoch\n", metrics.display())
    );

    let missing = dir.join("missing");
    let (code, err) = failure(&["training", path(&missing), "-o", path(&out)]);
    assert_eq!(code, 2);
    assert!(
        err.starts_with(&format!("error: cannot read {}", missing.display())),
        "{err}"
    );
}

#[test]
fn a_ranks_file_for_another_model_names_the_conv() {
    let ranks = repo("tests/data/plot/ranks_tiny.json");
    let tmp = tempdir();
    let dir = tmp.path();
    let out = dir.join("r.svg");
    let model = |source: &str| {
        let file = dir.join(format!("m{}.vgg", source.len()));
        std::fs::write(&file, source).unwrap();
        file.to_str().unwrap().to_owned()
    };
    let cases = [
        // A width differs.
        (
            "model Wide { input = [3, 16, 16] cfg = [8, M, 32, 16, 32] }",
            "it ranks model TinyDdp, whose conv2 has 16 filters, but Wide's conv2 has 32",
        ),
        // The convs sit elsewhere in the cfg, so their names differ.
        (
            "model Moved { input = [3, 16, 16] cfg = [8, 16, M, 16, 32] }",
            "it ranks model TinyDdp, whose conv number 2 is conv2, but Moved's is conv1",
        ),
        // More convs in the file than in the model.
        (
            "model Short { input = [3, 16, 16] cfg = [8, M, 16, 32] }",
            "it ranks model TinyDdp, whose conv3 model Short does not have",
        ),
        // The model has a conv the file does not rank.
        (
            "model Long { input = [3, 16, 16] cfg = [8, M, 16, 16, 16, 32] }",
            "it ranks model TinyDdp, which has no ranks for Long's conv4",
        ),
    ];
    for (source, why) in cases {
        let file = model(source);
        let (code, err) = failure(&["ranks", &ranks, "--model", &file, "-o", path(&out)]);
        assert_eq!(code, 1, "{source}");
        assert_eq!(
            err,
            format!("error: {ranks} does not fit {file}: {why}\n"),
            "{source}"
        );
    }
    assert!(!out.exists());
}

#[test]
fn bad_ranks_files_and_rates() {
    let tmp = tempdir();
    let dir = tmp.path();
    let out = dir.join("r.svg");
    let file = dir.join("ranks.json");
    let cases = [
        ("[1, 2]", "invalid type"),
        (
            r#"{"model": "A", "images": 1, "ranks": {"conv0": [1], "conv0": [2]}}"#,
            "`conv0` appears twice",
        ),
        (
            r#"{"model": "A", "images": 1, "ranks": {"conv0": []}}"#,
            "conv0 has no ranks",
        ),
        (
            r#"{"model": "A", "images": 1, "ranks": {}}"#,
            "it ranks no conv",
        ),
        (
            r#"{"model": "A", "images": 1, "ranks": {"conv0": [1]}, "extra": 1}"#,
            "unknown field `extra`",
        ),
        (
            r#"{"model": "A", "images": 0, "ranks": {"conv0": [1]}}"#,
            "images is 0, but the ranks are means over at least 1 image",
        ),
        (
            r#"{"model": "A", "images": 1, "ranks": {"conv0": [1, -0.5]}}"#,
            "filter 1 of conv0 has rank -0.5, but a mean rank is a number ≥ 0",
        ),
    ];
    for (content, why) in cases {
        std::fs::write(&file, content).unwrap();
        let (code, err) = failure(&["ranks", path(&file), "-o", path(&out)]);
        assert_eq!(code, 1, "{content}");
        let want = format!(
            "error: {} is not a ranks file of `vggdsl rank`: {why}",
            file.display()
        );
        assert!(err.starts_with(&want), "{content}: {err}");
    }
    // --compress-rate is read as the compiler reads compress_rate (a wrong one is a usage error,
    // shown under the flag's text), here against the file's three convs.
    let ranks = repo("tests/data/plot/ranks_tiny.json");
    for (rates, why) in [
        (
            "[0.5] * 5",
            "error: compress_rate has 5 rates but the model has 3 convs",
        ),
        // One diagnostic for the one list item that makes three rates.
        ("[1.5] * 3", "error: rate 1.5 is outside [0, 1)"),
        (
            "[0.5] } model B {",
            "error: --compress-rate `[0.5] } model B {` is not one list of rates",
        ),
    ] {
        let run = vggdsl(&[
            "plot",
            "ranks",
            &ranks,
            "--compress-rate",
            rates,
            "-o",
            path(&out),
        ]);
        assert_eq!(run.status.code(), Some(2), "{rates}");
        let err = text(&run.stderr);
        assert!(err.starts_with(why), "{rates}: {err}");
        assert_eq!(err.matches("error:").count(), 1, "{rates}: {err}");
    }
    assert!(!out.exists());
    // A device is refused as soon as it holds more than any ranks file may.
    let (code, err) = failure(&["ranks", "/dev/zero", "-o", path(&out)]);
    assert_eq!(code, 2);
    assert_eq!(
        err,
        "error: cannot read /dev/zero: it is larger than 256 MiB\n"
    );
}

#[test]
fn a_picture_replaces_only_a_picture_vggdsl_drew() {
    let tmp = tempdir();
    let dir = tmp.path();
    let model = repo("tests/models/tiny.vgg");
    for name in ["w.svg", "w.png"] {
        let out = dir.join(name);
        let draw = || vggdsl(&["plot", "widths", &model, "-o", path(&out)]);
        // Its own picture, drawn again: replaced.
        for _ in 0..2 {
            let run = draw();
            assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
        }
        let ours = std::fs::read(&out).unwrap();
        // Someone's picture by that name: kept.
        std::fs::write(&out, b"<svg>a drawing</svg>").unwrap();
        let (code, err) = failure(&["widths", &model, "-o", path(&out)]);
        assert_eq!(code, 1);
        assert_eq!(
            err,
            format!(
                "error: cannot write {}: it is not a picture vggdsl drew, so vggdsl will not \
                 replace it\n",
                out.display()
            )
        );
        assert_eq!(std::fs::read(&out).unwrap(), b"<svg>a drawing</svg>");
        std::fs::write(&out, &ours).unwrap();
        assert_eq!(draw().status.code(), Some(0));
    }
}

#[test]
fn metrics_with_repeated_or_unordered_epochs_are_refused() {
    let tmp = tempdir();
    let dir = tmp.path();
    let metrics = dir.join("metrics.jsonl");
    let out = dir.join("t.svg");
    for (lines, why) in [
        ("1 2 2", "line 3 has epoch 2 after epoch 2 (line 2)"),
        ("1 3 2", "line 3 has epoch 2 after epoch 3 (line 2)"),
    ] {
        let text: String = lines
            .split(' ')
            .map(|e| format!("{{\"epoch\": {e}, \"loss\": 1.0}}\n"))
            .collect();
        std::fs::write(&metrics, text).unwrap();
        let (code, err) = failure(&["training", path(&metrics), "-o", path(&out)]);
        assert_eq!(code, 1);
        assert_eq!(
            err,
            format!(
                "error: {} {why}: the epochs of a metrics file go up, each once\n",
                metrics.display()
            )
        );
    }
    assert!(!out.exists());
}

#[test]
fn a_picture_is_named_svg_or_png() {
    let tmp = tempdir();
    let dir = tmp.path();
    let model = dir.join("model.vgg");
    std::fs::write(&model, "model A { cfg = vgg11 }").unwrap();
    let (code, err) = failure(&["widths", path(&model), "-o", path(&model)]);
    assert_eq!(code, 2);
    assert_eq!(
        err,
        format!(
            "error: cannot write {}: a picture's name ends in .svg or .png\n",
            model.display()
        )
    );
    assert_eq!(
        std::fs::read_to_string(&model).unwrap(),
        "model A { cfg = vgg11 }"
    );
}
