//! The run-time network on its own: its variables are PyTorch's state_dict keys with the IR's
//! shapes, `.vgg` files that give no network give errors (never panics), taps read every conv
//! block's final map, layers are found by module name, and the inference model computes the
//! eval-mode outputs. Its bit-identity with generated structs is tested in the root package
//! (`tests/network_vs_generated.rs`), where the example models are compiled.

use std::collections::BTreeMap;
use std::path::PathBuf;
use vggdsl::ir::LayerKind;
use vggdsl::PickError;
use vggdsl_runtime::tch::nn::{ModuleT, VarStore};
use vggdsl_runtime::tch::{Device, Kind, Tensor};
use vggdsl_runtime::{load_models, Layer, ModelError, Network};

fn path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// Every model of the examples and of this crate's test models.
fn models() -> Vec<vggdsl::Architecture> {
    [
        "../examples/vgg16_bn.vgg",
        "../examples/hrank_vgg16_pruned.vgg",
        "tests/models/net.vgg",
    ]
    .iter()
    .flat_map(|f| load_models(path(f)).unwrap_or_else(|e| panic!("{e}")))
    .collect()
}

fn input(net: &vggdsl::Architecture, batch: i64) -> Tensor {
    let [c, h, w] = net.spec.input;
    Tensor::randn([batch, c, h, w], (Kind::Float, Device::Cpu))
}

#[test]
fn variables_are_the_state_dict_keys_with_the_ir_shapes() {
    for ir in models() {
        let vs = VarStore::new(Device::Cpu);
        let _network = Network::new(&vs.root(), &ir);
        let got: BTreeMap<String, (Vec<i64>, Kind, bool)> = vs
            .variables()
            .into_iter()
            .map(|(k, t)| (k, (t.size(), t.kind(), t.requires_grad())))
            .collect();
        let want: BTreeMap<String, (Vec<i64>, Kind, bool)> = ir
            .layers()
            .flat_map(|(section, l)| {
                l.kind.tensors().into_iter().map(move |(tensor, shape)| {
                    let kind = match tensor {
                        "num_batches_tracked" => Kind::Int64,
                        _ => Kind::Float,
                    };
                    let trained = matches!(tensor, "weight" | "bias");
                    (
                        format!("{section}.{}.{tensor}", l.name),
                        (shape, kind, trained),
                    )
                })
            })
            .collect();
        assert_eq!(got, want, "{}", ir.spec.name);
    }
}

#[test]
fn files_that_give_no_network_are_errors() {
    let vs = VarStore::new(Device::Cpu);
    let build = |file: PathBuf, name| Network::from_file(&vs.root(), file, name).map(|_| ());

    let invalid = path("tests/models/invalid.vgg");
    let e = build(invalid.clone(), None).unwrap_err();
    assert!(matches!(e, ModelError::Invalid(_)), "{e:?}");
    let text = e.to_string();
    assert!(text.starts_with("error: unknown key `bnn`\n"), "{text}");
    assert!(
        text.contains(&format!("--> {}:4:5", invalid.display())),
        "{text}"
    );

    let e = build(path("tests/models/missing.vgg"), None).unwrap_err();
    assert!(matches!(e, ModelError::Read { .. }), "{e:?}");
    assert!(e.to_string().starts_with("cannot read "), "{e}");

    let binary = std::env::temp_dir().join(format!("vggdsl-network-{}.vgg", std::process::id()));
    std::fs::write(&binary, [0x70, 0xff, 0xfe]).unwrap();
    let e = build(binary.clone(), None).unwrap_err();
    std::fs::remove_file(&binary).unwrap();
    assert!(matches!(e, ModelError::Read { .. }), "{e:?}");

    let two = path("tests/models/net.vgg");
    let e = build(two.clone(), None).unwrap_err();
    assert!(
        matches!(
            e,
            ModelError::Pick {
                pick: PickError::Several { .. }
            }
        ),
        "{e:?}"
    );
    assert!(
        e.to_string().contains("(SmallPruned, Vgg11Cifar100)"),
        "{e}"
    );
    let e = build(two.clone(), Some("Small")).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{} has no model `Small`; it has SmallPruned, Vgg11Cifar100",
            two.display()
        )
    );

    let net = Network::from_file(&vs.root(), &two, Some("Vgg11Cifar100")).unwrap();
    assert_eq!(net.spec().name, "Vgg11Cifar100");
    let vs = VarStore::new(Device::Cpu);
    let one = Network::from_file(&vs.root(), path("../examples/vgg16_bn.vgg"), None);
    assert_eq!(one.unwrap().spec().name, "Vgg16Bn");
}

#[test]
fn taps_read_every_conv_block_including_the_last() {
    for ir in models() {
        let vs = VarStore::new(Device::Cpu);
        let network = Network::new(&vs.root(), &ir);
        let outputs = network.block_outputs();
        let convs = ir
            .features
            .iter()
            .filter(|l| matches!(l.kind, LayerKind::Conv2d { .. }))
            .count();
        assert_eq!(outputs.len(), convs, "{}", ir.spec.name);
        assert_eq!(outputs[..convs - 1], ir.relu_cfg, "{}", ir.spec.name);

        let xs = input(&ir, 2);
        let mut maps = Vec::new();
        let ys = network.forward_tapped(&xs, false, |position, map| {
            maps.push((position, map.shallow_clone(), map.copy()));
        });
        assert!(ys.equal(&network.forward_t(&xs, false)));
        let positions: Vec<usize> = maps.iter().map(|m| m.0).collect();
        assert_eq!(positions, outputs);
        for (position, kept, copied) in maps {
            let mut shape = vec![2];
            shape.extend(&ir.features[position].out_shape);
            assert_eq!(kept.size(), shape, "{}", ir.features[position].name);
            // No in-place op (the ReLU) rewrote a tapped map after the tap.
            assert!(kept.equal(&copied), "{}", ir.features[position].name);
        }
    }
    // [64, M, 128, M, 256] without BatchNorm: conv0 relu0 pool1 conv2 relu2 pool3; each block
    // ends at the pool that follows its ReLU.
    let small = &load_models(path("tests/models/net.vgg")).unwrap()[0];
    let vs = VarStore::new(Device::Cpu);
    assert_eq!(Network::new(&vs.root(), small).block_outputs(), [2, 5]);
}

#[test]
fn activations_are_the_relu_cfg_maps_by_name() {
    let ir = &load_models(path("../examples/vgg16_bn.vgg")).unwrap()[0];
    let vs = VarStore::new(Device::Cpu);
    let network = Network::new(&vs.root(), ir);
    let xs = input(ir, 2);
    let (ys, maps) = network.forward_with_activations(&xs, false);
    assert!(ys.equal(&network.forward_t(&xs, false)));
    let names: Vec<&str> = maps.iter().map(|(name, _)| *name).collect();
    let want: Vec<&str> = ir
        .relu_cfg
        .iter()
        .map(|&i| ir.features[i].name.as_str())
        .collect();
    assert_eq!(names, want);
    assert_eq!(maps[1].1.size(), [2, 64, 16, 16], "pool2");
}

#[test]
fn layers_are_found_by_module_name() {
    let ir = &load_models(path("tests/models/net.vgg")).unwrap()[0];
    let vs = VarStore::new(Device::Cpu);
    let network = Network::new(&vs.root(), ir);
    match network.layer("features.conv2") {
        Some(Layer::Conv2d(conv)) => assert_eq!(conv.weight.size(), [64, 32, 3, 3]),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        network.layer("features.pool1"),
        Some(Layer::MaxPool2d(_))
    ));
    assert!(matches!(
        network.layer("classifier.norm1"),
        Some(Layer::BatchNorm(_))
    ));
    for missing in ["conv0", "features.conv1", "features.conv0.weight", "", "."] {
        assert!(network.layer(missing).is_none(), "{missing}");
    }
    assert_eq!(network.features().len(), ir.features.len());
    assert_eq!(network.classifier().len(), ir.classifier.len());
    assert_eq!(network.ir(), ir);
    assert_eq!(network.to_string(), vggdsl::repr::network(ir));
}

#[test]
fn inference_gives_the_eval_outputs() {
    let ir = &load_models(path("../examples/hrank_vgg16_pruned.vgg")).unwrap()[0];
    let vs = VarStore::new(Device::Cpu);
    let network = Network::new(&vs.root(), ir);
    // Train-mode passes give the BatchNorms statistics other than the identity.
    for _ in 0..3 {
        let _ = network.forward_t(&input(ir, 8), true);
    }
    let inference = network.to_inference();
    for batch in [2, 16] {
        let xs = input(ir, batch);
        let want = network.forward_t(&xs, false);
        let got = inference.forward(&xs);
        let scale = want.abs().max().double_value(&[]);
        let diff = (got - &want).abs().max().double_value(&[]);
        assert!(diff <= 1e-4 * scale, "batch {batch}: {diff} of {scale}");
    }
}
