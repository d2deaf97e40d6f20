//! vggdsl's figures against PyTorch's own: every layer's output shape, the parameter counts and
//! the MACs that `vggdsl summary` reports, for networks that PyTorch builds from the seed's code
//! (`reference.py params` of `vggdsl-test-support`, forward hooks on a real forward pass). The figures computed
//! by hand are the compiler's tests (`vggdsl/tests/figures.rs`).
mod common;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use common::read;
use serde_json::Value;
use vggdsl::analysis::{summarize, Summary};
use vggdsl::Architecture;
use vggdsl_test_support::pytorch::{cmd, reference};

/// `(source, reference.py config)`: the same model said in both.
const CASES: &[(&str, &str)] = &[
    // The seed.
    ("examples/vgg16_bn.vgg", r#"{}"#),
    // HRank's 13 rates.
    (
        "examples/hrank_vgg16_pruned.vgg",
        r#"{"compress_rate": [0.95, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.9, 0.9, 0.9, 0.9, 0.8, 0.8]}"#,
    ),
    // HRankPlus's 12 (reference.py appends the 0.0 itself).
    (
        "model A { compress_rate = [0.95] + [0.5] * 6 + [0.9] * 4 + [0.8] }",
        r#"{"compress_rate": [0.95, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.9, 0.9, 0.9, 0.9, 0.8]}"#,
    ),
    ("model A { bn = false }", r#"{"bn": false}"#),
    ("A<cfg = vgg11>", r#"{"cfg": "vgg11"}"#),
    ("A<cfg = vgg13>", r#"{"cfg": "vgg13"}"#),
    ("A<cfg = vgg19>", r#"{"cfg": "vgg19"}"#),
    ("A<num_classes = 100>", r#"{"num_classes": 100}"#),
    ("A<input = [3, 64, 64]>", r#"{"input": [3, 64, 64]}"#),
    // Non-square: 48 → 3 and 80 → 5 after four pools, 1×2 after the head.
    ("A<input = [3, 48, 80]>", r#"{"input": [3, 48, 80]}"#),
    // Odd sizes floor at every pool and at the head; one input channel; the HRankPlus form on a
    // custom cfg; pruned widths feed the next layers; no bn.
    (
        "model A {
            input = [1, 37, 45]
            cfg = [16, M, 24, 24, M, 40, 100]
            bn = false
            num_classes = 7
            compress_rate = [0.3, 0.55, 0.1]
        }",
        r#"{"input": [1, 37, 45], "cfg": [16, "M", 24, 24, "M", 40, 100], "bn": false,
            "num_classes": 7, "compress_rate": [0.3, 0.55, 0.1]}"#,
    ),
    (
        "model A { cfg = vgg19  num_classes = 100  compress_rate = [0.5] * 15 }",
        r#"{"cfg": "vgg19", "num_classes": 100, "compress_rate": [0.5, 0.5, 0.5, 0.5, 0.5,
            0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]}"#,
    ),
];

/// The one network of case `i`'s source (a `.vgg` file of the repository, or the text itself).
fn net(i: usize) -> Architecture {
    let src = CASES[i].0;
    let src = if src.ends_with(".vgg") {
        read(src)
    } else {
        src.to_owned()
    };
    let mut nets = vggdsl::load(&src, "test.vgg").unwrap_or_else(|d| panic!("{}", d.render(false)));
    assert_eq!(nets.len(), 1, "{src}");
    nets.remove(0)
}

/// The figures PyTorch gives for a `reference.py` config.
#[derive(Debug, serde::Deserialize)]
struct Reference {
    params: u64,
    params_conv_linear: u64,
    macs: u64,
    out_shapes: BTreeMap<String, Vec<i64>>,
}

/// `reference.py params --config C` for every case, in one request; `None` without PyTorch.
fn references() -> Option<&'static [Reference]> {
    static ALL: OnceLock<Option<Vec<Reference>>> = OnceLock::new();
    let all = ALL.get_or_init(|| {
        let commands: Vec<_> = CASES
            .iter()
            .map(|(_, config)| cmd(&["params", "--config", config]))
            .collect();
        let answers = reference(&commands)?;
        let figures = answers
            .into_iter()
            .map(|json: Value| serde_json::from_value(json).expect("params' figures"));
        Some(figures.collect())
    });
    all.as_deref()
}

/// Checks vggdsl's figures for case `i` against PyTorch's: every layer's output shape, the
/// parameter counts and the MACs. `None` without PyTorch.
fn cross_check(i: usize) -> Option<Summary> {
    let ours = summarize(&net(i));
    let theirs = &references()?[i];
    let what = CASES[i].0;
    let shapes: BTreeMap<String, Vec<i64>> = ours
        .layers
        .iter()
        .map(|l| (l.name.clone(), l.out_shape.clone()))
        .collect();
    assert_eq!(shapes, theirs.out_shapes, "layer output shapes for {what}");
    assert_eq!(ours.params, theirs.params, "params for {what}");
    assert_eq!(
        ours.params_conv_linear, theirs.params_conv_linear,
        "Conv2d+Linear params for {what}"
    );
    assert_eq!(ours.macs, theirs.macs, "MACs for {what}");
    Some(ours)
}

#[test]
fn pytorch_seed() {
    let Some(s) = cross_check(0) else {
        return;
    };
    // The published figures, so that agreeing on a wrong number cannot pass.
    assert_eq!(
        (s.params, s.params_conv_linear, s.macs),
        (14_991_946, 14_982_474, 313_463_808)
    );
}

#[test]
fn pytorch_hrank_pruned() {
    cross_check(1);
}

#[test]
fn pytorch_hrankplus_twelve_rates() {
    cross_check(2);
}

#[test]
fn pytorch_without_bn() {
    cross_check(3);
}

#[test]
fn pytorch_vgg11() {
    cross_check(4);
}

#[test]
fn pytorch_vgg13() {
    cross_check(5);
}

#[test]
fn pytorch_vgg19() {
    cross_check(6);
}

#[test]
fn pytorch_hundred_classes() {
    cross_check(7);
}

#[test]
fn pytorch_input_64() {
    cross_check(8);
}

#[test]
fn pytorch_non_square_input() {
    cross_check(9);
    assert_eq!(net(9).head.flat, 512 * 2);
}

#[test]
fn pytorch_odd_sizes_custom_cfg_pruned_without_bn() {
    cross_check(10);
}

#[test]
fn pytorch_vgg19_hrankplus_on_cifar100() {
    cross_check(11);
}

#[test]
fn every_case_is_checked() {
    // One test per case above; keep them in step.
    assert_eq!(CASES.len(), 12);
}
