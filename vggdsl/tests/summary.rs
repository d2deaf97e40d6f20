//! Snapshots of the summary table (`vggdsl summary`), reviewed by hand: layer names, shapes,
//! per-layer parameters and MACs, totals, HRank's relu_cfg / conv_cfg and the pruning figures.

use vggdsl::analysis::summarize;

fn repo(path: &str) -> String {
    let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

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
    insta::assert_snapshot!(tables(&repo("examples/vgg16_bn.vgg")));
}

#[test]
fn hrank_pruned() {
    insta::assert_snapshot!(tables(&repo("examples/hrank_vgg16_pruned.vgg")));
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
