//! Figures of networks: the seed's published ones and small models computed by hand. (The
//! cross-check of every figure and every layer's output shape against PyTorch itself is
//! `tests/figures.rs` in the root package, which has libtorch and Python at hand.)

mod common;

use common::read;
use vggdsl::analysis::{summarize, Summary};
use vggdsl::Architecture;

/// The networks of a source text that must check.
fn nets(src: &str) -> Vec<Architecture> {
    vggdsl::load(src, "test.vgg").unwrap_or_else(|d| panic!("{}", d.render(false)))
}

/// The one network of a source text.
fn net(src: &str) -> Architecture {
    let mut all = nets(src);
    assert_eq!(all.len(), 1, "{src}");
    all.remove(0)
}

fn summary(src: &str) -> Summary {
    summarize(&net(src))
}

// --- the seed ----------------------------------------------------------------------------------

#[test]
fn seed_figures() {
    let s = summary(&read("examples/vgg16_bn.vgg"));
    assert_eq!(s.name, "Vgg16Bn");
    assert_eq!(s.params, 14_991_946);
    assert_eq!(s.params_conv_linear, 14_982_474);
    assert_eq!(s.macs, 313_463_808);
    assert_eq!(s.relu_cfg, [2, 6, 9, 13, 16, 19, 23, 26, 29, 33, 36, 39]);
    assert_eq!(s.conv_cfg, [0, 3, 7, 10, 14, 17, 20, 24, 27, 30, 34, 37]);
    assert_eq!(s.unpruned, None);
    // 13 convs with their norms and relus, 4 pools, 4 classifier layers.
    assert_eq!(s.layers.len(), 13 * 3 + 4 + 4);
    let first = &s.layers[0];
    assert_eq!(
        (first.name.as_str(), first.kind, first.out_shape.as_slice()),
        ("features.conv0", "Conv2d", &[64, 32, 32][..])
    );
    assert_eq!((first.params, first.macs), (1_792, 1_769_472));
}

#[test]
fn seed_defaults_are_the_seed() {
    // Every default spelled out, `init = default`, the compact form and the literal rule block
    // of the example give the same network.
    let literal = nets(&read("examples/vgg16_bn.vgg"));
    for src in [
        "pub model Vgg16Bn { init = default }",
        "pub model Vgg16Bn { cfg = default }",
        "pub model Vgg16Bn { cfg = vgg16 }",
        "pub model Vgg16Bn {}",
        "pub Vgg16Bn<>",
        "pub Vgg16Bn<input = [3, 32, 32], cfg = default, bn = true, num_classes = 10, init = default>",
    ] {
        assert_eq!(nets(src), literal, "{src}");
    }
}

#[test]
fn literal_init_block_gives_the_same_ir_and_code_as_default() {
    let literal = read("examples/vgg16_bn.vgg");
    let a = nets(&literal);
    let b = nets(&literal.replace(
        &literal[literal.find("init = {").unwrap()..literal.rfind('}').unwrap()],
        "init = default\n",
    ));
    assert!(matches!(b[0].spec.init.len(), 6));
    assert_eq!(a, b);
    let origin = vggdsl::codegen::Origin { file: None };
    assert_eq!(
        vggdsl::codegen::file(&a, &origin),
        vggdsl::codegen::file(&b, &origin)
    );
}

#[test]
fn hrank_pruned_example_is_smaller() {
    let s = summary(&read("examples/hrank_vgg16_pruned.vgg"));
    let base = s
        .unpruned
        .clone()
        .expect("a pruned model has baseline figures");
    assert_eq!(base.params, 14_991_946);
    assert_eq!(base.params_conv_linear, 14_982_474);
    assert_eq!(base.macs, 313_463_808);
    assert!(s.params < base.params && s.macs < base.macs);
    // int(64 * (1 - 0.95)) = 3 filters survive in conv0; conv1 reads those 3 channels.
    assert_eq!(s.layers[0].out_shape, [3, 32, 32]);
    assert_eq!(s.layers[3].params, (64 / 2) * 3 * 9 + 32);
    // relu_cfg / conv_cfg are positions, which pruning does not move.
    assert_eq!(s.relu_cfg, [2, 6, 9, 13, 16, 19, 23, 26, 29, 33, 36, 39]);
    assert_eq!(s.conv_cfg, [0, 3, 7, 10, 14, 17, 20, 24, 27, 30, 34, 37]);
}

// --- small models by hand ------------------------------------------------------------------------

#[test]
fn tiny_model_by_hand() {
    // cfg [8, M, 16] on a 3×8×8 input, bn on:
    //   conv0   3→8, 3×3:  params 8·3·9 + 8 = 224;  out 8×8×8 = 512 elements,
    //                      MACs 512 · 3 · 9 = 13,824
    //   norm0   BatchNorm2d(8): 2·8 = 16 params
    //   relu0, pool1 → 8×4×4; the AvgPool2d(2) head → 8×2×2, flat = 32
    //   linear1 32→16:     params 32·16 + 16 = 528;  MACs 32·16 = 512
    //   norm1   BatchNorm1d(16): 32 params;  relu1
    //   linear2 16→10:     params 16·10 + 10 = 170;  MACs 160
    // params 224 + 16 + 528 + 32 + 170 = 970; Conv2d+Linear 224 + 528 + 170 = 922;
    // MACs 13,824 + 512 + 160 = 14,496. The only feature conv is the last one, so HRank's
    // relu_cfg and conv_cfg are empty.
    let s = summary("model Tiny { input = [3, 8, 8]  cfg = [8, M, 16] }");
    assert_eq!(s.params, 970);
    assert_eq!(s.params_conv_linear, 922);
    assert_eq!(s.macs, 14_496);
    assert!(s.relu_cfg.is_empty() && s.conv_cfg.is_empty());
    let layers: Vec<(&str, &str, &[i64], u64, u64)> = s
        .layers
        .iter()
        .map(|l| {
            (
                l.name.as_str(),
                l.kind,
                l.out_shape.as_slice(),
                l.params,
                l.macs,
            )
        })
        .collect();
    assert_eq!(
        layers,
        [
            ("features.conv0", "Conv2d", &[8, 8, 8][..], 224, 13_824),
            ("features.norm0", "BatchNorm2d", &[8, 8, 8][..], 16, 0),
            ("features.relu0", "ReLU", &[8, 8, 8][..], 0, 0),
            ("features.pool1", "MaxPool2d", &[8, 4, 4][..], 0, 0),
            ("classifier.linear1", "Linear", &[16][..], 528, 512),
            ("classifier.norm1", "BatchNorm1d", &[16][..], 32, 0),
            ("classifier.relu1", "ReLU", &[16][..], 0, 0),
            ("classifier.linear2", "Linear", &[10][..], 170, 160),
        ]
    );
}

#[test]
fn tiny_model_without_bn_on_a_non_square_input() {
    // cfg [4, 4, M, 8] on 1×4×6, bn off, 5 classes:
    //   conv0 1→4:  params 4·1·9 + 4 = 40;   out 4×4×6 = 96 elements, MACs 96·1·9 = 864
    //   conv1 4→4:  params 4·4·9 + 4 = 148;  MACs 96·4·9 = 3,456
    //   pool2 → 4×2×3; the head → 4×1×1 (floor), flat = 4
    //   linear1 4→8: 4·8 + 8 = 40, MACs 32;  norm1: 16;  linear2 8→5: 8·5 + 5 = 45, MACs 40
    // params 40 + 148 + 40 + 16 + 45 = 289; Conv2d+Linear 273; MACs 864 + 3,456 + 32 + 40 = 4,392.
    // Positions: conv0 0, relu0 1, conv1 2, relu1 3, pool2 4: conv0's block ends at relu0.
    let s =
        summary("model T { input = [1, 4, 6]  cfg = [4, 4, M, 8]  bn = false  num_classes = 5 }");
    assert_eq!(s.params, 289);
    assert_eq!(s.params_conv_linear, 273);
    assert_eq!(s.macs, 4_392);
    assert_eq!(s.relu_cfg, [1]);
    assert_eq!(s.conv_cfg, [0]);
    let names: Vec<&str> = s.layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "features.conv0",
            "features.relu0",
            "features.conv1",
            "features.relu1",
            "features.pool2",
            "classifier.linear1",
            "classifier.norm1",
            "classifier.relu1",
            "classifier.linear2",
        ]
    );
    assert_eq!(s.layers[4].out_shape, [4, 2, 3]);
}

#[test]
fn tiny_pruned_model_by_hand() {
    // cfg [10, M, 10, 6] with rates [0.25, 0.5]: int(10 · 0.75) = 7 and int(10 · 0.5) = 5 filters.
    //   conv0 3→7 on 3×4×4:  params 7·3·9 + 7 = 196;  MACs 7·4·4 · 3·9 = 3,024
    //   norm0: 14;  pool1 → 7×2×2
    //   conv2 7→5:           params 5·7·9 + 5 = 320;  MACs 5·2·2 · 7·9 = 1,260;  norm2: 10
    //   head → 5×1×1, flat 5;  linear1 5→6: 36, MACs 30;  norm1: 12;  linear2 6→10: 70, MACs 60
    // params 196 + 14 + 320 + 10 + 36 + 12 + 70 = 658; Conv2d+Linear 622; MACs 4,374.
    // relu_cfg: conv0's block ends at the pool (position 3); conv_cfg [0].
    let s =
        summary("model P { input = [3, 4, 4]  cfg = [10, M, 10, 6]  compress_rate = [0.25, 0.5] }");
    assert_eq!(s.params, 658);
    assert_eq!(s.params_conv_linear, 622);
    assert_eq!(s.macs, 4_374);
    assert_eq!(s.relu_cfg, [3]);
    assert_eq!(s.conv_cfg, [0]);
    let base = s.unpruned.expect("pruned");
    // Unpruned: conv0 3→10: 280; norm0 20; conv2 10→10: 910; norm2 20; linear1 10→6: 66;
    // norm1 12; linear2: 70 → 1,378 params, 1,326 in Conv2d+Linear.
    assert_eq!(base.params, 1_378);
    assert_eq!(base.params_conv_linear, 1_326);
    // MACs: 10·16·27 = 4,320; 10·4·90 = 3,600; 60; 60 → 8,040.
    assert_eq!(base.macs, 8_040);
}

#[test]
fn round_to_rounds_pruned_widths_up_to_its_multiple_and_never_past_the_cfg_width() {
    let widths = |src: &str| -> Vec<i64> { net(src).convs().map(|(.., c)| c).collect() };
    // int(64 · 0.7) = 44 → 48; int(100 · 0.7) = 70 → 80; int(20 · 0.7) = 14 → 16;
    // int(10 · 0.7) = 7 → 16, but 10 is the most conv2 has; rate 0 keeps 24, no multiple of 16.
    let src = "model R { cfg = [64, 100, M, 20, 10, 24, 8] compress_rate = [0.3] * 4 + [0] \
               round_to = 16 }";
    assert_eq!(widths(src), [48, 80, 16, 10, 24]);
    // Without round_to (or with 1) the widths are HRankPlus's int(c · (1 − r)).
    let plain = "model R { cfg = [64, 100, M, 20, 10, 24, 8] compress_rate = [0.3] * 4 + [0] }";
    assert_eq!(widths(plain), [44, 70, 14, 7, 24]);
    assert_eq!(
        widths(&plain.replace(" }", " round_to = 1 }")),
        widths(plain)
    );
    // A width already a multiple stays; rounding up never lowers a width a rate keeps.
    let exact = "model E { cfg = [64, 64, 8] compress_rate = [0.5, 0.75] round_to = 16 }";
    assert_eq!(widths(exact), [32, 16]);
    // Without compress_rate, round_to changes nothing, and the summary says it is set.
    let unpruned = "model U { cfg = [64, 100, 8] round_to = 16 }";
    assert_eq!(widths(unpruned), [64, 100]);
    assert_eq!(summary(unpruned).round_to, Some(16));
    assert_eq!(summary("model U { cfg = [64, 100, 8] }").round_to, None);
    // The rest of the network follows the rounded width: conv1 reads 48 channels.
    let n = net(src);
    let conv1 = n.features.iter().find(|l| l.name == "conv1").unwrap();
    assert_eq!(conv1.in_shape, [48, 32, 32]);
}

#[test]
fn hrankplus_form_keeps_the_last_conv() {
    // 12 rates for 13 convs: the last conv (conv16) keeps its 512 filters; 13 rates with a final
    // 0.0 say the same.
    let twelve = net("model A { compress_rate = [0.95] + [0.5] * 6 + [0.9] * 4 + [0.8] }");
    let thirteen =
        net("model A { compress_rate = [0.95] + [0.5] * 6 + [0.9] * 4 + [0.8] + [0.0] }");
    assert_eq!(twelve, thirteen);
    let conv16 = twelve.features.iter().find(|l| l.name == "conv16").unwrap();
    assert_eq!(conv16.out_shape, [512, 2, 2]);
}
