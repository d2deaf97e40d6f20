//! Networks at the documented limits (widths ≤ 65,536, input sides ≤ 16,384): every one that
//! `check` accepts lowers, summarizes and compiles, with exact figures computed here by hand.

use vggdsl::analysis::summarize;

fn net(src: &str) -> vggdsl::Architecture {
    let mut nets = vggdsl::load(src, "limits.vgg").unwrap_or_else(|d| panic!("{d}"));
    nets.remove(0)
}

/// `check` accepts it, so `summary` and `compile` must work too.
fn compiles(src: &str) {
    vggdsl::compile(src, "limits.vgg").unwrap_or_else(|d| panic!("{d}"));
}

#[test]
fn vgg16_at_512_by_512_is_accepted_with_exact_macs() {
    // Was refused with "sizes overflow 64-bit arithmetic": the old check squared activation sizes.
    let src = "model A { input = [3, 512, 512] }";
    let s = summarize(&net(src));
    // Conv MACs scale with H×W: (512/32)² = 256 times the seed's conv MACs. The seed's 313,463,808
    // MACs are 313,196,544 in convs and 262,144 + 5,120 in the classifier, whose linear1 here sees
    // 512 × 16 × 16 flattened features (4 pools, then AvgPool2d(2): 512 → 16).
    let convs = 313_196_544u64 * 256;
    let linear1 = 512 * 16 * 16 * 512;
    assert_eq!(s.macs, convs + linear1 + 512 * 10);
    compiles(src);
}

#[test]
fn one_huge_layer_within_the_limits_is_accepted() {
    // conv1 alone: 65,536 × 9 × 65,536 multiply-accumulates at each of 16,384² positions,
    // 9 · 2^60, which overflows i64 but not u64.
    let src = "model A { input = [3, 16384, 16384] cfg = [65536, 65536, 65536] }";
    let n = net(src);
    let conv1 = n.features.iter().find(|l| l.name == "conv1").unwrap();
    assert_eq!(conv1.macs(), 9 << 60);
    let s = summarize(&n);
    let conv0 = (3 * 9 * 65536u64) << 28;
    let linear1 = (65536u64 << 26) * 65536;
    assert_eq!(s.macs, conv0 + (9 << 60) + linear1 + 65536 * 10);
    compiles(src);
}

#[test]
fn totals_past_64_bits_are_refused() {
    let src = "model A { input = [3, 16384, 16384] cfg = [65536, 65536, 65536, 8] }";
    let d = vggdsl::load(src, "limits.vgg").unwrap_err();
    assert_eq!(d.items.len(), 1);
    assert_eq!(
        d.items[0].message,
        "the network has more multiply-accumulates than vggdsl counts (2^64 - 1)"
    );
}

#[test]
fn a_pruned_network_that_checks_also_summarizes_and_compiles() {
    // Panicked in `summary` and `compile` ("pruning only shrinks a valid network").
    let src = "model A { input = [1, 2, 2] cfg = [16384, 16384, 8] compress_rate = [0.5, 0.5] }";
    let s = summarize(&net(src));
    let unpruned = s.unpruned.expect("a pruned model has a baseline");
    // Pruned: conv0 1→8192 (2×2), conv1 8192→8192, no pool, head 2×2 → 1×1: flat 8192.
    let conv0 = 8192 * 9 * 4;
    let conv1 = 8192 * 8192 * 9 * 4;
    assert_eq!(s.macs, conv0 + conv1 + 8192 * 8 + 8 * 10);
    let conv0 = 16384 * 9 * 4;
    let conv1 = 16384 * 16384 * 9 * 4;
    assert_eq!(unpruned.macs, conv0 + conv1 + 16384 * 8 + 8 * 10);
    compiles(src);
}

#[test]
fn the_unpruned_form_past_64_bits_is_named() {
    // Pruned, conv1 counts 9 · 2^58 MACs; unpruned, the two big convs pass 2^64.
    let src = "model A {
        input = [3, 16384, 16384]
        cfg = [65536, 65536, 65536, 8]
        compress_rate = [0.5, 0.5, 0.5]
    }";
    let d = vggdsl::load(src, "limits.vgg").unwrap_err();
    assert_eq!(
        d.items[0].message,
        "the unpruned network has more multiply-accumulates than vggdsl counts (2^64 - 1)"
    );
}
