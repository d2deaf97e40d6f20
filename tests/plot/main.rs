//! `vggdsl plot`: every picture is valid SVG (parsed with roxmltree), the same on every run
//! (snapshots of the SVG text, reviewed by hand), says what it shows (title with the model, axis
//! descriptions with units, legend) and keeps the labels of a 19-layer network apart; PNG output
//! is a PNG of twice the SVG's size; bad input is one sentence and exit 1.

#[path = "../common/mod.rs"]
mod common;
use common::{path, repo, text, vggdsl};
use vggdsl_test_support::tempdir;

mod refusals;

/// `vggdsl plot ARGS -o -`: the SVG on standard output, after checking that it succeeded.
fn svg(args: &[&str]) -> String {
    let mut all = vec!["plot"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", "-"]);
    let out = vggdsl(&all);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
    text(&out.stdout)
}

/// The failure of `vggdsl plot ARGS`: its exit code and its one line on stderr.
fn failure(args: &[&str]) -> (i32, String) {
    let mut all = vec!["plot"];
    all.extend_from_slice(args);
    let out = vggdsl(&all);
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "one sentence: {err}");
    assert!(err.starts_with("error: "), "{err}");
    (out.status.code().unwrap(), err)
}

/// Every `<text>` of a figure, parsed: its content, x, y and rotation.
struct Label {
    text: String,
    x: f64,
    y: f64,
    size: f64,
    turned: bool,
}

/// Parses the SVG (panicking if it is not well-formed XML with an `<svg>` root of the size
/// asked) and returns its text elements.
fn parse(svg: &str, size: (u32, u32)) -> Vec<Label> {
    let doc = roxmltree::Document::parse(svg).expect("the figure is well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert_eq!(root.attribute("width"), Some(size.0.to_string().as_str()));
    assert_eq!(root.attribute("height"), Some(size.1.to_string().as_str()));
    let number = |n: roxmltree::Node, a: &str| n.attribute(a).unwrap().parse::<f64>().unwrap();
    doc.descendants()
        .filter(|n| n.has_tag_name("text"))
        .map(|n| Label {
            text: n.text().unwrap_or("").trim().to_owned(),
            x: number(n, "x"),
            y: number(n, "y"),
            size: number(n, "font-size"),
            turned: n
                .attribute("transform")
                .is_some_and(|t| t.starts_with("rotate(270")),
        })
        .collect()
}

fn has(labels: &[Label], text: &str) -> bool {
    labels.iter().any(|l| l.text == text)
}

/// The labels turned to read upwards (the x-axis labels): those of one axis (one y) left to
/// right, never closer than their height.
fn turned_labels_apart(labels: &[Label]) -> Vec<String> {
    let mut turned: Vec<&Label> = labels.iter().filter(|l| l.turned).collect();
    turned.sort_by(|a, b| a.y.total_cmp(&b.y).then(a.x.total_cmp(&b.x)));
    for pair in turned.windows(2).filter(|p| p[0].y == p[1].y) {
        let gap = pair[1].x - pair[0].x;
        assert!(
            gap >= pair[0].size,
            "`{}` and `{}` overlap: {gap} px apart at font size {}",
            pair[0].text,
            pair[1].text,
            pair[0].size
        );
    }
    // The y-axis descriptions read upwards too.
    let layer = |t: &str| t.starts_with("conv") || t.starts_with("linear");
    turned
        .iter()
        .filter(|l| layer(&l.text))
        .map(|l| l.text.clone())
        .collect()
}

#[test]
fn widths_of_the_seed_and_its_hrank_pruning() {
    let figure = svg(&[
        "widths",
        &repo("examples/vgg16_bn.vgg"),
        &repo("examples/hrank_vgg16_pruned.vgg"),
    ]);
    let labels = parse(&figure, (1320, 960));
    for want in [
        "Widths, params and MACs per layer: Vgg16Bn, Vgg16BnHrank",
        "Vgg16Bn: channel widths",
        "Vgg16BnHrank: channel widths, cfg vs compress_rate",
        "Vgg16BnHrank: params 753.1K (95.0% pruned), MACs 41.1M (86.9% pruned)",
        "output channels",
        "per image (log scale)",
        "conv layer",
        "cfg width (unpruned)",
        "width after compress_rate",
        "parameters",
        "MACs",
        "unpruned (outline)",
    ] {
        assert!(has(&labels, want), "no label `{want}`");
    }
    let turned = turned_labels_apart(&labels);
    // conv0 … conv16 in both panels of both models, linear1 and linear2 in the lower ones.
    assert_eq!(turned.iter().filter(|t| *t == "conv16").count(), 4);
    assert_eq!(turned.iter().filter(|t| *t == "linear2").count(), 2);
    assert_eq!(turned.len(), 2 * (13 + 15));
    insta::assert_snapshot!(figure);
}

#[test]
fn widths_of_vgg19_keep_their_labels_apart() {
    let tmp = tempdir();
    let dir = tmp.path();
    let file = dir.join("vgg19.vgg");
    std::fs::write(
        &file,
        "model Vgg19Pruned { cfg = vgg19  compress_rate = [0.5] * 15 }",
    )
    .unwrap();
    let figure = svg(&["widths", file.to_str().unwrap()]);
    let labels = parse(&figure, (700, 960));
    let turned = turned_labels_apart(&labels);
    assert_eq!(turned.len(), 16 + 18);
    assert!(has(
        &labels,
        "Vgg19Pruned: channel widths, cfg vs compress_rate"
    ));
}

#[test]
fn ranks_with_the_cut_of_the_models_compress_rate() {
    let ranks = repo("tests/data/plot/ranks_tiny.json");
    let model = repo("tests/models/tiny.vgg");
    let figure = svg(&["ranks", &ranks, "--model", &model]);
    let labels = parse(&figure, (960, 720));
    // compress_rate = [0.5, 0.25] (HRankPlus's form: conv3 keeps all): int(8 × 0.5) = 4,
    // int(16 × 0.75) = 12, 16.
    for want in [
        "Filter ranks of TinyDdp (64 images)",
        "cut by compress_rate [0.5, 0.25, 0]: each conv keeps its int(c·(1 − r)) \
         highest-ranked filters",
        "conv0: 4 of 8",
        "conv2: 12 of 16",
        "conv3: 16 of 16",
        "kept filter (32)",
        "pruned filter (8)",
        "cut: the lowest rank kept",
        "average rank of the filter's feature map",
    ] {
        assert!(has(&labels, want), "no label `{want}`");
    }
    insta::assert_snapshot!(figure);

    // --compress-rate overrides the model's; without a model the file's convs set the count.
    let other = parse(
        &svg(&["ranks", &ranks, "--compress-rate", "[0.75] * 2 + [0.5]"]),
        (960, 720),
    );
    for want in ["conv0: 2 of 8", "conv2: 4 of 16", "conv3: 8 of 16"] {
        assert!(has(&other, want), "no label `{want}`");
    }
    // No cut at all: the distributions alone.
    let plain = parse(&svg(&["ranks", &ranks]), (960, 720));
    assert!(has(&plain, "filter (40)"));
    assert!(has(&plain, "conv2"));
}

#[test]
fn training_of_a_baseline_and_its_pruned_fine_tuning() {
    let figure = svg(&[
        "training",
        &repo("tests/data/plot/runs/baseline"),
        &repo("tests/data/plot/runs/pruned/metrics.jsonl"),
    ]);
    let labels = parse(&figure, (1400, 640));
    for want in [
        "Training: baseline vs pruned",
        "Loss",
        "Accuracy",
        "epoch",
        "cross-entropy loss",
        "accuracy (%)",
        "baseline: train",
        "baseline: test",
        "pruned: train",
        "pruned: test",
        "pruned: validation",
    ] {
        assert!(has(&labels, want), "no label `{want}`");
    }
    // The pruned run's metrics have validation figures (one curve in each panel's legend), the
    // baseline's none.
    let count = |label: &str| labels.iter().filter(|l| l.text == label).count();
    assert_eq!(count("pruned: validation"), 2);
    assert_eq!(count("baseline: validation"), 0);
    insta::assert_snapshot!(figure);
}

#[test]
fn bench_throughput_per_thread_count() {
    let results = repo("tests/data/plot/bench.json");
    let figure = svg(&["bench", &results]);
    let labels = parse(&figure, (1220, 680));
    for want in [
        "Inference throughput of Vgg16Bn",
        "made-up figures for tests/plot.rs, not a measurement",
        "1 thread",
        "2 threads",
        "batch size (images, log2 scale)",
        "throughput (images/s, log scale)",
    ] {
        assert!(has(&labels, want), "no label `{want}`");
    }
    // The x axes are ticked at the measured batch sizes, in both panels.
    for batch in ["1", "4", "16", "64", "256"] {
        let ticks = labels.iter().filter(|l| l.text == batch).count();
        assert_eq!(ticks, 2, "batch {batch}");
    }
    // One legend, naming every variant once, in the order of their first row.
    let variants = [
        "PyTorch eager",
        "TorchScript frozen",
        "vggdsl to_inference()",
    ];
    let legend: Vec<&Label> = variants
        .iter()
        .map(|v| {
            let named: Vec<&Label> = labels.iter().filter(|l| l.text == *v).collect();
            assert_eq!(named.len(), 1, "{v} in the legend");
            named[0]
        })
        .collect();
    assert!(legend.windows(2).all(|p| p[0].y < p[1].y));
    // A marker per measurement (3 variants × 2 thread counts × 5 batch sizes), and one per
    // legend entry.
    assert_eq!(figure.matches("<circle").count(), 30 + 3);
    insta::assert_snapshot!(figure);

    let tmp = tempdir();
    let dir = tmp.path();
    let out = dir.join("bench.png");
    let run = vggdsl(&["plot", "bench", &results, "-o", path(&out)]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    let png = std::fs::read(&out).unwrap();
    let dim = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    assert_eq!((dim(16), dim(20)), (2440, 1360));
}

#[test]
fn bench_with_a_missing_measurement_and_one_thread_count() {
    let tmp = tempdir();
    let dir = tmp.path();
    let file = dir.join("results.json");
    // No `machine`, no `ratio`; B was not measured at batch 4.
    std::fs::write(
        &file,
        r#"{"model": "Tiny", "rows": [
            {"variant": "B", "threads": 4, "batch": 1, "images_per_second": 10},
            {"variant": "A", "threads": 4, "batch": 1, "images_per_second": 12.5},
            {"variant": "A", "threads": 4, "batch": 4, "images_per_second": 30},
            {"variant": "B", "threads": 4, "batch": 16, "images_per_second": 41},
            {"variant": "A", "threads": 4, "batch": 16, "images_per_second": 40}
        ]}"#,
    )
    .unwrap();
    let figure = svg(&["bench", path(&file)]);
    let labels = parse(&figure, (660, 680));
    assert!(has(&labels, "Inference throughput of Tiny"));
    assert!(has(&labels, "4 threads"));
    assert_eq!(figure.matches("<circle").count(), 5 + 2);
    // B came first, so it has the first colour.
    let b = labels.iter().find(|l| l.text == "B").unwrap();
    let a = labels.iter().find(|l| l.text == "A").unwrap();
    assert!(b.y < a.y);
    assert_eq!(svg(&["bench", path(&file)]), figure);
}

#[test]
fn the_same_figure_every_run() {
    let args = ["widths", &repo("tests/models/variants.vgg")];
    assert_eq!(svg(&args), svg(&args));
}

#[test]
fn png_when_the_name_ends_in_png() {
    let tmp = tempdir();
    let dir = tmp.path();
    let out = dir.join("widths.PNG");
    let run = vggdsl(&[
        "plot",
        "widths",
        &repo("examples/vgg16_bn.vgg"),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    let png = std::fs::read(&out).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    // IHDR: width and height, big-endian, at twice the SVG's 700 × 960.
    let dim = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    assert_eq!((dim(16), dim(20)), (1400, 1920));
}

#[test]
fn ranks_from_standard_input() {
    let ranks = std::fs::read(repo("tests/data/plot/ranks_tiny.json")).unwrap();
    let from_file = svg(&["ranks", &repo("tests/data/plot/ranks_tiny.json")]);
    let out = common::vggdsl_with_stdin(&["plot", "ranks", "-", "-o", "-"], &ranks);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), from_file);
}

#[test]
fn a_panel_without_curves_has_no_legend() {
    let tmp = tempdir();
    let metrics = tmp.path().join("metrics.jsonl");
    // Losses only, as some tools write: the accuracy panel stays empty, without a legend box.
    std::fs::write(
        &metrics,
        "{\"epoch\": 1, \"loss\": 2.0}\n{\"epoch\": 2, \"loss\": 1.5}\n",
    )
    .unwrap();
    let figure = svg(&["training", path(&metrics)]);
    // A legend is drawn on a white box at opacity 0.85.
    let boxes = |figure: &str| figure.matches(r##"opacity="0.85" fill="#FFFFFF""##).count();
    assert_eq!(boxes(&figure), 1, "{figure}");
    let both = svg(&["training", &repo("tests/data/plot/runs/baseline")]);
    assert_eq!(boxes(&both), 2);
}

#[test]
fn study_accuracy_against_macs_per_method() {
    let tmp = tempdir();
    let file = tmp.path().join("results.json");
    let row = |budget: &str, method: &str, seed: u64, macs: u64, accuracy: f64| {
        format!(
            r#"{{"budget": "{budget}", "compress_rate": "[0.3] * 4", "method": "{method}",
                "seed": {seed}, "params": 100, "macs": {macs}, "latency_ms": 0.2, "epochs": 3,
                "accuracy": {accuracy}}}"#
        )
    };
    let rows = [
        row("macs-50%", "l1", 0, 500, 0.90),
        row("macs-50%", "l1", 1, 500, 0.92),
        row("macs-50%", "scratch-e", 0, 500, 0.88),
        row("macs-50%", "scratch-e", 1, 500, 0.86),
        row("macs-75%", "l1", 0, 250, 0.84),
        row("macs-75%", "l1", 1, 250, 0.85),
    ];
    std::fs::write(
        &file,
        format!(
            r#"{{"study": "tiny", "model": "Tiny", "convention": "MACs",
                "latency": {{"batch": 1, "threads": 1}},
                "base": {{"params": 200, "macs": 1000, "accuracy": 0.93, "latency_ms": 0.3}},
                "rows": [{}]}}"#,
            rows.join(", ")
        ),
    )
    .unwrap();
    let figure = svg(&["study", path(&file)]);
    let labels = parse(&figure, (1000, 640));
    for want in [
        "tiny: test accuracy against MACs (Tiny)",
        "MACs per image",
        "test accuracy (%)",
        "unpruned base",
        "l1",
        "scratch-e",
    ] {
        assert!(has(&labels, want), "no label `{want}`");
    }
    // A marker per method and budget (3), one per method in the legend (2).
    assert_eq!(figure.matches("<circle").count(), 3 + 2);

    std::fs::write(&file, r#"{"study": "tiny"}"#).unwrap();
    let out = vggdsl(&["plot", "study", path(&file), "-o", "-"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.starts_with(&format!(
            "error: {} is not a study's results.json: missing field",
            file.display()
        )),
        "{err}"
    );
}
