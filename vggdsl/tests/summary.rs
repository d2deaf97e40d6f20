//! Snapshots of the summary table (`vggdsl summary`), reviewed by hand: layer names, shapes,
//! per-layer parameters and MACs, totals, HRank's relu_cfg / conv_cfg.
//!
//! The HRank example's table, with the pruning figures, is the README recipe's snapshot,
//! `tests/architecture.rs` in the root package (`tests/snapshots/architecture__Vgg16BnHrank.snap`),
//! not taken twice.

mod common;

use common::read;
use vggdsl::analysis::summarize;

/// The tables of every model in `src`.
fn tables(src: &str) -> String {
    let nets = vggdsl::load(src, "test.vgg").unwrap_or_else(|d| panic!("{}", d.render(false)));
    nets.iter()
        .map(|n| summarize(n).table())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn seed() {
    insta::assert_snapshot!(tables(&read("examples/vgg16_bn.vgg")));
}

#[test]
fn without_bn() {
    insta::assert_snapshot!(tables("pub model Vgg16NoBn { cfg = vgg16  bn = false }"));
}

#[test]
fn vgg19() {
    insta::assert_snapshot!(tables("pub Vgg19<cfg = vgg19, bn = true>"));
}

#[test]
fn tiny() {
    insta::assert_snapshot!(tables("model Tiny { input = [3, 8, 8]  cfg = [8, M, 16] }"));
}
