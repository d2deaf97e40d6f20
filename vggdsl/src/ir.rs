//! The checked network: ordered layers with PyTorch names, kinds and shapes.
//!
//! `lower` is the one place that turns a model description into layers (the seed's `make_layers`
//! and classifier) and infers shapes; analysis, repr, init and codegen all read its output.

use crate::names;
use crate::spec::{CfgItem, ModelSpec, Target};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LayerKind {
    Conv2d {
        in_channels: i64,
        out_channels: i64,
        kernel: i64,
        stride: i64,
        padding: i64,
    },
    BatchNorm2d {
        features: i64,
    },
    BatchNorm1d {
        features: i64,
    },
    ReLU,
    MaxPool2d {
        kernel: i64,
        stride: i64,
    },
    Linear {
        in_features: i64,
        out_features: i64,
    },
}

impl LayerKind {
    /// PyTorch's class name.
    pub fn class_name(&self) -> &'static str {
        match self {
            LayerKind::Conv2d { .. } => "Conv2d",
            LayerKind::BatchNorm2d { .. } => "BatchNorm2d",
            LayerKind::BatchNorm1d { .. } => "BatchNorm1d",
            LayerKind::ReLU => "ReLU",
            LayerKind::MaxPool2d { .. } => "MaxPool2d",
            LayerKind::Linear { .. } => "Linear",
        }
    }

    /// The name init rules use for this kind of layer, if they can set it.
    pub fn init_target(&self) -> Option<Target> {
        match self {
            LayerKind::Conv2d { .. } => Some(Target::Conv),
            LayerKind::BatchNorm2d { .. } => Some(Target::Norm2d),
            LayerKind::BatchNorm1d { .. } => Some(Target::Norm1d),
            LayerKind::Linear { .. } => Some(Target::Linear),
            LayerKind::ReLU | LayerKind::MaxPool2d { .. } => None,
        }
    }

    /// The tensors a layer owns, in PyTorch's `state_dict` order, with their shapes.
    pub fn tensors(&self) -> Vec<(&'static str, Vec<i64>)> {
        match *self {
            LayerKind::Conv2d {
                in_channels,
                out_channels,
                kernel,
                ..
            } => vec![
                ("weight", vec![out_channels, in_channels, kernel, kernel]),
                ("bias", vec![out_channels]),
            ],
            LayerKind::BatchNorm2d { features } | LayerKind::BatchNorm1d { features } => vec![
                ("weight", vec![features]),
                ("bias", vec![features]),
                ("running_mean", vec![features]),
                ("running_var", vec![features]),
                ("num_batches_tracked", vec![]),
            ],
            LayerKind::Linear {
                in_features,
                out_features,
            } => {
                vec![
                    ("weight", vec![out_features, in_features]),
                    ("bias", vec![out_features]),
                ]
            }
            LayerKind::ReLU | LayerKind::MaxPool2d { .. } => vec![],
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    /// The name inside its Sequential: `conv0`, `pool2`, `linear1`, …
    pub name: String,
    pub kind: LayerKind,
    /// Shapes of one sample (no batch dimension).
    pub in_shape: Vec<i64>,
    pub out_shape: Vec<i64>,
    /// Index of the cfg entry the layer comes from (features only).
    pub cfg_index: Option<usize>,
}

impl Layer {
    /// Learnable parameters (running statistics are buffers, not counted).
    pub fn params(&self) -> u64 {
        fits(self.exact_params())
    }

    /// Multiply-accumulates for one sample (Conv2d and Linear; bias excluded).
    pub fn macs(&self) -> u64 {
        fits(self.exact_macs())
    }

    fn exact_params(&self) -> u128 {
        let weights: u128 = match self.kind {
            LayerKind::BatchNorm2d { .. } | LayerKind::BatchNorm1d { .. } => 0,
            _ => self.kind.tensors().first().map_or(0, |(_, s)| product(s)),
        };
        let vectors = match self.kind {
            LayerKind::BatchNorm2d { features } | LayerKind::BatchNorm1d { features } => {
                2 * features
            }
            LayerKind::Conv2d { out_channels, .. } => out_channels,
            LayerKind::Linear { out_features, .. } => out_features,
            LayerKind::ReLU | LayerKind::MaxPool2d { .. } => 0,
        };
        weights + vectors as u128
    }

    fn exact_macs(&self) -> u128 {
        match self.kind {
            LayerKind::Conv2d {
                in_channels,
                kernel,
                ..
            } => product(&self.out_shape) * product(&[in_channels, kernel, kernel]),
            LayerKind::Linear {
                in_features,
                out_features,
            } => product(&[in_features, out_features]),
            _ => 0,
        }
    }
}

fn product(dims: &[i64]) -> u128 {
    dims.iter().map(|&d| d as u128).product()
}

/// Every count fits: `lower` refuses networks whose totals do not.
fn fits(n: u128) -> u64 {
    u64::try_from(n).expect("lower checks that counts fit in 64 bits")
}

/// Every BatchNorm's epsilon: PyTorch's default, which the seed keeps.
pub const BATCH_NORM_EPS: f64 = 1e-5;

/// The forward-only step between the Sequentials: the seed's `nn.AvgPool2d(2)`, then flatten.
#[derive(Debug, Clone, PartialEq)]
pub struct Head {
    pub kernel: i64,
    pub stride: i64,
    /// C×H×W after pooling: linear1's in-features.
    pub flat: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Network {
    pub spec: ModelSpec,
    pub features: Vec<Layer>,
    pub head: Head,
    pub classifier: Vec<Layer>,
    /// Positions in the flattened features of each conv block's output, for every conv: its
    /// ReLU, or the pool that directly follows it. Where filters are ranked.
    pub block_outputs: Vec<usize>,
    /// HRank's `relucfg`: `block_outputs` without the last conv's, which HRank never ranks.
    pub relu_cfg: Vec<usize>,
    /// Positions of every conv but the last in the flattened features.
    pub conv_cfg: Vec<usize>,
}

impl Network {
    /// Every layer with its Sequential's name, in module order.
    pub fn layers(&self) -> impl Iterator<Item = (&'static str, &Layer)> {
        let f = self.features.iter().map(|l| (names::FEATURES, l));
        f.chain(self.classifier.iter().map(|l| (names::CLASSIFIER, l)))
    }
}

/// One layer of the inference model: a Conv2d or Linear at `layer` with the BatchNorm (`norm`)
/// and ReLU right after it folded in, or any other layer as it is. Positions index the
/// Sequential that [`fusions`] was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fusion {
    pub layer: usize,
    pub norm: Option<usize>,
    pub relu: bool,
}

/// How the inference model groups a Sequential's layers (BatchNorm folded, ReLU fused).
pub fn fusions(layers: &[Layer]) -> Vec<Fusion> {
    let mut out = Vec::new();
    let mut rest = layers.iter().enumerate().peekable();
    while let Some((layer, l)) = rest.next() {
        let weighted = matches!(l.kind, LayerKind::Conv2d { .. } | LayerKind::Linear { .. });
        let is_norm = |k: &LayerKind| {
            matches!(
                k,
                LayerKind::BatchNorm2d { .. } | LayerKind::BatchNorm1d { .. }
            )
        };
        let norm = weighted
            .then(|| rest.next_if(|(_, n)| is_norm(&n.kind)).map(|(i, _)| i))
            .flatten();
        let relu = weighted && rest.next_if(|(_, n)| n.kind == LayerKind::ReLU).is_some();
        out.push(Fusion { layer, norm, relu });
    }
    out
}

/// Why a spec has no valid network; the checker points these at the text.
#[derive(Debug, Clone, PartialEq)]
pub enum LowerError {
    /// The pool at cfg entry `index` would take H or W below 1.
    PoolTooSmall { index: usize, shape: Vec<i64> },
    /// The AvgPool2d(2) head would take H or W below 1.
    HeadTooSmall { shape: Vec<i64> },
    /// The rate of the conv at cfg entry `index` leaves no channel.
    NoChannelsLeft { index: usize, width: i64, rate: f64 },
    /// The network (or, for a pruned one, its unpruned form) has more parameters or MACs
    /// (`what`) than 64 bits count.
    TooLarge { what: &'static str, unpruned: bool },
}

/// HRankPlus: `int(v * (1 - rate))`.
pub fn pruned_width(width: i64, rate: f64) -> i64 {
    (width as f64 * (1.0 - rate)) as i64
}

/// Output size of a 2×2/2 pool (floor mode), or of any `k`/`s` pool without padding.
fn pooled(size: i64, kernel: i64, stride: i64) -> i64 {
    if size < kernel {
        0
    } else {
        (size - kernel) / stride + 1
    }
}

pub fn lower(spec: &ModelSpec) -> Result<Network, LowerError> {
    let mut features = Vec::new();
    let mut block_outputs = Vec::new();
    let mut conv_cfg = Vec::new();
    let [mut c, mut h, mut w] = spec.input;
    let mut conv_count = 0;
    let conv_total = spec
        .features()
        .iter()
        .filter(|i| matches!(i, CfgItem::Conv(_)))
        .count();
    // Where the latest conv block's output sits, until we know whether a pool follows it.
    let mut pending_block_end: Option<usize> = None;
    for (i, item) in spec.features().iter().enumerate() {
        let in_shape = vec![c, h, w];
        match *item {
            CfgItem::Pool => {
                let (oh, ow) = (pooled(h, 2, 2), pooled(w, 2, 2));
                if oh < 1 || ow < 1 {
                    return Err(LowerError::PoolTooSmall {
                        index: i,
                        shape: in_shape,
                    });
                }
                if pending_block_end.take().is_some() {
                    block_outputs.push(features.len());
                }
                h = oh;
                w = ow;
                let kind = LayerKind::MaxPool2d {
                    kernel: 2,
                    stride: 2,
                };
                features.push(layer(names::pool(i), kind, in_shape, vec![c, h, w], i));
            }
            CfgItem::Conv(v) => {
                if let Some(relu) = pending_block_end.take() {
                    block_outputs.push(relu);
                }
                let rate = spec.compress_rate.as_ref().map_or(0.0, |r| r[conv_count]);
                let out = pruned_width(v, rate);
                if out < 1 {
                    return Err(LowerError::NoChannelsLeft {
                        index: i,
                        width: v,
                        rate,
                    });
                }
                conv_count += 1;
                let is_last = conv_count == conv_total;
                if !is_last {
                    conv_cfg.push(features.len());
                }
                let conv = LayerKind::Conv2d {
                    in_channels: c,
                    out_channels: out,
                    kernel: 3,
                    stride: 1,
                    padding: 1,
                };
                features.push(layer(names::conv(i), conv, in_shape, vec![out, h, w], i));
                c = out;
                let shape = vec![c, h, w];
                if spec.bn {
                    let norm = LayerKind::BatchNorm2d { features: c };
                    features.push(layer(names::norm(i), norm, shape.clone(), shape.clone(), i));
                }
                pending_block_end = Some(features.len());
                features.push(layer(
                    names::relu(i),
                    LayerKind::ReLU,
                    shape.clone(),
                    shape,
                    i,
                ));
            }
        }
    }
    if let Some(relu) = pending_block_end {
        block_outputs.push(relu);
    }
    // HRank ranks every conv but the last.
    let relu_cfg = block_outputs[..block_outputs.len() - 1].to_vec();
    // The seed's forward: AvgPool2d(2), then flatten.
    let (kernel, stride) = (2, 2);
    let (ph, pw) = (pooled(h, kernel, stride), pooled(w, kernel, stride));
    if ph < 1 || pw < 1 {
        return Err(LowerError::HeadTooSmall {
            shape: vec![c, h, w],
        });
    }
    // Within the checker's limits (widths ≤ 2^16, sides ≤ 2^14) every single size fits in i64.
    let flat = c * ph * pw;
    let head = Head {
        kernel,
        stride,
        flat,
    };

    let hidden = spec.hidden();
    let classes = spec.num_classes;
    let classifier = vec![
        dense(
            names::LINEAR1,
            LayerKind::Linear {
                in_features: flat,
                out_features: hidden,
            },
            flat,
        ),
        dense(
            names::CLASSIFIER_NORM,
            LayerKind::BatchNorm1d { features: hidden },
            hidden,
        ),
        dense(names::CLASSIFIER_RELU, LayerKind::ReLU, hidden),
        dense(
            names::LINEAR2,
            LayerKind::Linear {
                in_features: hidden,
                out_features: classes,
            },
            hidden,
        ),
    ];
    let net = Network {
        spec: spec.clone(),
        features,
        head,
        classifier,
        block_outputs,
        relu_cfg,
        conv_cfg,
    };
    for (what, count) in [
        ("parameters", Layer::exact_params as fn(&Layer) -> u128),
        ("multiply-accumulates", Layer::exact_macs),
    ] {
        let total: u128 = net.layers().map(|(_, l)| count(l)).sum();
        if total > u64::MAX as u128 {
            return Err(LowerError::TooLarge {
                what,
                unpruned: false,
            });
        }
    }
    // Summaries compare a pruned network with its unpruned form, which must count too.
    if spec.compress_rate.is_some() {
        lower(&spec.unpruned()).map_err(|e| match e {
            LowerError::TooLarge { what, .. } => LowerError::TooLarge {
                what,
                unpruned: true,
            },
            other => other,
        })?;
    }
    Ok(net)
}

fn layer(
    name: String,
    kind: LayerKind,
    in_shape: Vec<i64>,
    out_shape: Vec<i64>,
    index: usize,
) -> Layer {
    Layer {
        name,
        kind,
        in_shape,
        out_shape,
        cfg_index: Some(index),
    }
}

/// A classifier layer: flat features in, flat features out.
fn dense(name: &str, kind: LayerKind, in_features: i64) -> Layer {
    let out = match kind {
        LayerKind::Linear { out_features, .. } => out_features,
        _ => in_features,
    };
    Layer {
        name: name.to_owned(),
        kind,
        in_shape: vec![in_features],
        out_shape: vec![out],
        cfg_index: None,
    }
}
