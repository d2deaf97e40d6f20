//! `vgg!` models are the models the compiler describes for the same source: the same constants,
//! repr and VarStore variables (names and shapes) as `vggdsl::load` computes, which is what the
//! build.rs helper and `vggdsl compile` generate code from. (The token-level comparison with
//! `vggdsl::compile` is a unit test in vggdsl-macros, where the expansion function is visible.)

use std::collections::BTreeMap;
use vggdsl::ir::Architecture;
use vggdsl::spec::CfgItem;
use vggdsl_runtime::tch::nn::{ModuleT, VarStore};
use vggdsl_runtime::tch::{Device, Kind, Tensor};
use vggdsl_runtime::Cfg;

/// Declares models with `vgg!` and keeps the very same tokens as text, `SOURCE`, for vggdsl.
macro_rules! vgg_with_source {
    ($($source:tt)*) => {
        vggdsl_runtime::vgg!($($source)*);
        pub const SOURCE: &str = stringify!($($source)*);
    };
}

/// The seed that the workspace's build.rs compiles, through the file form.
mod seed {
    vggdsl_runtime::vgg!("../examples/vgg16_bn.vgg");
    pub const SOURCE: &str = include_str!("../../examples/vgg16_bn.vgg");
}

mod inline {
    vgg_with_source! {
        pub model Vgg16BnHrank {
            cfg = default
            compress_rate = [0.95] + [0.5] * 6 + [0.9] * 4 + [0.8] * 2
        }
        pub(crate) Small<input = [3, 16, 16], cfg = [32, M, 64, M, 128], bn = false, num_classes = 7,
            init = { conv.weight = normal(0, sqrt(2 / (in * k * k))) linear.bias = constant(-0.5) }>
    }
}

/// What a model states about itself, in comparable form.
#[derive(Debug, PartialEq)]
struct Facts {
    input: [i64; 3],
    num_classes: i64,
    cfg: Vec<Option<i64>>,
    relu_cfg: Vec<usize>,
    conv_cfg: Vec<usize>,
    params: u64,
    params_conv_linear: u64,
    macs: u64,
    repr: String,
    variables: BTreeMap<String, Vec<i64>>,
}

/// The facts of a `vgg!` model type: its constants, and the variables `new` creates.
macro_rules! facts {
    ($model:ty) => {{
        let vs = VarStore::new(Device::Cpu);
        let net = <$model>::new(&vs.root());
        let [c, h, w] = <$model>::INPUT_SHAPE;
        let xs = Tensor::zeros([2, c, h, w], (Kind::Float, Device::Cpu));
        let out = net.forward_t(&xs, false);
        assert_eq!(out.size(), [2, <$model>::NUM_CLASSES]);
        Facts {
            input: <$model>::INPUT_SHAPE,
            num_classes: <$model>::NUM_CLASSES,
            cfg: <$model>::CFG
                .iter()
                .map(|c| match c {
                    Cfg::Conv(w) => Some(*w),
                    Cfg::M => None,
                })
                .collect(),
            relu_cfg: <$model>::RELU_CFG.to_vec(),
            conv_cfg: <$model>::CONV_CFG.to_vec(),
            params: <$model>::PARAMS,
            params_conv_linear: <$model>::PARAMS_CONV_LINEAR,
            macs: <$model>::MACS,
            repr: <$model>::REPR.to_owned(),
            variables: vs
                .variables()
                .into_iter()
                .map(|(name, t)| (name, t.size()))
                .collect(),
        }
    }};
}

/// The facts vggdsl computes for model `name` of `source`.
fn expected(source: &str, name: &str) -> Facts {
    let nets = vggdsl::load(source, "test").unwrap_or_else(|d| panic!("{d}"));
    let net: &Architecture = nets.iter().find(|n| n.spec.name == name).expect("model");
    let summary = vggdsl::analysis::summarize(net);
    Facts {
        input: net.spec.input,
        num_classes: net.spec.num_classes,
        cfg: net
            .spec
            .cfg
            .iter()
            .map(|c| match c {
                CfgItem::Conv(w) => Some(*w),
                CfgItem::Pool => None,
            })
            .collect(),
        relu_cfg: net.relu_cfg.clone(),
        conv_cfg: net.conv_cfg.clone(),
        params: summary.params,
        params_conv_linear: summary.params_conv_linear,
        macs: summary.macs,
        repr: vggdsl::repr::network(net),
        variables: net
            .layers()
            .flat_map(|(section, layer)| {
                layer
                    .kind
                    .tensors()
                    .into_iter()
                    .map(move |(tensor, shape)| {
                        (format!("{section}.{}.{tensor}", layer.name), shape)
                    })
            })
            .collect(),
    }
}

#[test]
fn seed_from_the_file_form_matches_the_compiler() {
    assert_eq!(facts!(seed::Vgg16Bn), expected(seed::SOURCE, "Vgg16Bn"));
    // The published figures, so that agreeing on a wrong number cannot pass.
    assert_eq!(seed::Vgg16Bn::PARAMS, 14_991_946);
    assert_eq!(seed::Vgg16Bn::MACS, 313_463_808);
}

#[test]
fn inline_models_match_the_compiler() {
    assert_eq!(
        facts!(inline::Vgg16BnHrank),
        expected(inline::SOURCE, "Vgg16BnHrank")
    );
    assert_eq!(facts!(inline::Small), expected(inline::SOURCE, "Small"));
}
