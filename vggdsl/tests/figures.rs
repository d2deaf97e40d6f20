//! Figures of networks: the seed's published ones, small models computed by hand, and a
//! cross-check of every figure and every layer's output shape against PyTorch itself
//! (`tests/python/reference.py`, run with `$VGGDSL_PYTHON`, else `python3`; it needs torch, see
//! `scripts/setup-libtorch.sh`).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use vggdsl::analysis::{summarize, Summary};
use vggdsl::Network;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The networks of a source text that must check.
fn nets(src: &str) -> Vec<Network> {
    vggdsl::load(src, "test.vgg").unwrap_or_else(|d| panic!("{}", d.render(false)))
}

/// The one network of a source text.
fn net(src: &str) -> Network {
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

// --- PyTorch ------------------------------------------------------------------------------------

/// The figures PyTorch gives for a `reference.py` config.
#[derive(Debug, serde::Deserialize)]
struct Reference {
    params: u64,
    params_conv_linear: u64,
    macs: u64,
    out_shapes: BTreeMap<String, Vec<i64>>,
}

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

fn python() -> String {
    std::env::var("VGGDSL_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// Runs `reference.py params --config C` for every case in one Python process (importing torch
/// takes seconds): the driver calls the script's `main` with exactly that argv and collects
/// what it prints. `-B` keeps tests/python free of `__pycache__`.
fn references() -> &'static Vec<Result<Reference, String>> {
    static ALL: OnceLock<Vec<Result<Reference, String>>> = OnceLock::new();
    ALL.get_or_init(|| {
        const DRIVER: &str = r#"
import contextlib, io, json, sys
sys.path.insert(0, sys.argv[1])
import reference
for config in json.load(sys.stdin):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = reference.main(['params', '--config', config])
    print(json.dumps({'code': code, 'out': out.getvalue()}), flush=True)
"#;
        let py = python();
        let configs: Vec<&str> = CASES.iter().map(|(_, c)| *c).collect();
        let mut child = Command::new(&py)
            .arg("-B")
            .arg("-c")
            .arg(DRIVER)
            .arg(repo().join("tests/python"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {py}: {e}; {SETUP}"));
        let input = serde_json::to_vec(&configs).unwrap();
        child.stdin.take().unwrap().write_all(&input).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{py} failed running reference.py (is torch installed? {SETUP}):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<serde_json::Value> = out
            .stdout
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).expect("one JSON line per config"))
            .collect();
        assert_eq!(lines.len(), CASES.len());
        lines
            .into_iter()
            .map(|l| {
                let printed = l["out"].as_str().unwrap_or_default();
                match l["code"].as_i64() {
                    Some(0) => serde_json::from_str(printed).map_err(|e| e.to_string()),
                    _ => Err(printed.to_owned()),
                }
            })
            .collect()
    })
}

const SETUP: &str = "run `eval \"$(bash scripts/setup-libtorch.sh)\"` first";

/// Checks vggdsl's figures for case `i` against PyTorch's: every layer's output shape, the
/// parameter counts and the MACs.
fn cross_check(i: usize) {
    let (src, config) = CASES[i];
    let src = if src.ends_with(".vgg") {
        read(src)
    } else {
        src.to_owned()
    };
    let ours = summary(&src);
    let theirs = match &references()[i] {
        Ok(r) => r,
        Err(e) => panic!("reference.py params --config '{config}': {e}"),
    };
    let shapes: BTreeMap<String, Vec<i64>> = ours
        .layers
        .iter()
        .map(|l| (l.name.clone(), l.out_shape.clone()))
        .collect();
    assert_eq!(shapes, theirs.out_shapes, "layer output shapes for {src}");
    assert_eq!(ours.params, theirs.params, "params for {src}");
    assert_eq!(
        ours.params_conv_linear, theirs.params_conv_linear,
        "Conv2d+Linear params for {src}"
    );
    assert_eq!(ours.macs, theirs.macs, "MACs for {src}");
}

#[test]
fn pytorch_seed() {
    cross_check(0);
    let r = references()[0].as_ref().unwrap();
    assert_eq!(
        (r.params, r.params_conv_linear, r.macs),
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
    assert_eq!(net(CASES[9].0).head.flat, 512 * 2);
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
