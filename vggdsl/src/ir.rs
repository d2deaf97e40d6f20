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

/// A checked model's architecture: its layers, shapes and the positions HRank reads, without any
/// weights (the run-time `vggdsl_runtime::Network` holds those, built from this).
#[derive(Debug, Clone, PartialEq)]
pub struct Architecture {
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

impl Architecture {
    /// Every layer with its Sequential's name, in module order.
    pub fn layers(&self) -> impl Iterator<Item = (&'static str, &Layer)> {
        let f = self.features.iter().map(|l| (names::FEATURES, l));
        f.chain(self.classifier.iter().map(|l| (names::CLASSIFIER, l)))
    }

    /// The convs in order: each one's position in `features`, name and output channels.
    pub fn convs(&self) -> impl Iterator<Item = (usize, &str, i64)> {
        self.features
            .iter()
            .enumerate()
            .filter_map(|(p, l)| match l.kind {
                LayerKind::Conv2d { out_channels, .. } => Some((p, l.name.as_str(), out_channels)),
                _ => None,
            })
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

/// The filters a conv of `width` keeps at `rate`: HRankPlus's `int(width · (1 − rate))` (the
/// product in f64, truncated), then [`rounded_width`] to a multiple of `round_to`.
pub fn pruned_width(width: i64, rate: f64, round_to: i64) -> i64 {
    rounded_width(width, (width as f64 * (1.0 - rate)) as i64, round_to)
}

/// `kept` of a conv's `width` filters rounded up to a multiple of `round_to`, but never past
/// `width`: up, so that rounding never removes a filter a rate keeps (nor leaves a conv with
/// none), and at most `width`, so that a conv whose width is no multiple keeps its own width
/// rather than growing. 0 stays 0 (a rate that leaves no filter is an error either way), and a
/// `round_to` of 1 changes nothing.
pub fn rounded_width(width: i64, kept: i64, round_to: i64) -> i64 {
    let step = round_to.max(1);
    ((kept + step - 1) / step * step).min(width)
}

/// Output size of a 2×2/2 pool (floor mode), or of any `k`/`s` pool without padding.
fn pooled(size: i64, kernel: i64, stride: i64) -> i64 {
    if size < kernel {
        0
    } else {
        (size - kernel) / stride + 1
    }
}

/// A model's architecture: its layers with their shapes, where its conv blocks end, the head and
/// the classifier; an error when a size drops below one or a count outgrows 64 bits.
pub fn lower(spec: &ModelSpec) -> Result<Architecture, LowerError> {
    let features = features(spec)?;
    let [c, h, w] = features.shape;
    // HRank ranks every conv but the last.
    let relu_cfg = features.block_outputs[..features.block_outputs.len() - 1].to_vec();
    let head = head(c, h, w)?;
    let net = Architecture {
        spec: spec.clone(),
        classifier: classifier(head.flat, spec.hidden(), spec.num_classes),
        features: features.layers,
        head,
        block_outputs: features.block_outputs,
        relu_cfg,
        conv_cfg: features.conv_cfg,
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

/// The `features` Sequential of a cfg, with where its blocks end.
struct Features {
    layers: Vec<Layer>,
    block_outputs: Vec<usize>,
    conv_cfg: Vec<usize>,
    /// C, H, W after the last layer.
    shape: [i64; 3],
}

/// The seed's `make_layers`: each conv (pruned to its rate) with its BatchNorm2d and ReLU, each
/// `M` a 2×2 max-pool, shapes inferred as they go.
fn features(spec: &ModelSpec) -> Result<Features, LowerError> {
    let mut out = Features {
        layers: Vec::new(),
        block_outputs: Vec::new(),
        conv_cfg: Vec::new(),
        shape: spec.input,
    };
    let conv_total = spec
        .features()
        .iter()
        .filter(|i| matches!(i, CfgItem::Conv(_)))
        .count();
    let mut conv_count = 0;
    // Where the latest conv block's output sits, until we know whether a pool follows it.
    let mut pending_block_end: Option<usize> = None;
    for (i, item) in spec.features().iter().enumerate() {
        let [c, h, w] = out.shape;
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
                    out.block_outputs.push(out.layers.len());
                }
                out.shape = [c, oh, ow];
                let kind = LayerKind::MaxPool2d {
                    kernel: 2,
                    stride: 2,
                };
                out.layers
                    .push(layer(names::pool(i), kind, in_shape, vec![c, oh, ow], i));
            }
            CfgItem::Conv(v) => {
                if let Some(relu) = pending_block_end.take() {
                    out.block_outputs.push(relu);
                }
                let rate = spec.compress_rate.as_ref().map_or(0.0, |r| r[conv_count]);
                conv_count += 1;
                if conv_count < conv_total {
                    out.conv_cfg.push(out.layers.len());
                }
                let channels = pruned_width(v, rate, spec.round_to());
                pending_block_end = Some(conv_block(&mut out, spec.bn, i, v, rate, channels)?);
            }
        }
    }
    if let Some(relu) = pending_block_end {
        out.block_outputs.push(relu);
    }
    Ok(out)
}

/// Conv `i` (`width` channels before pruning by `rate` to `channels`), its BatchNorm2d when `bn`,
/// its ReLU; returns where the ReLU is.
fn conv_block(
    out: &mut Features,
    bn: bool,
    i: usize,
    width: i64,
    rate: f64,
    channels: i64,
) -> Result<usize, LowerError> {
    let [c, h, w] = out.shape;
    if channels < 1 {
        return Err(LowerError::NoChannelsLeft {
            index: i,
            width,
            rate,
        });
    }
    let conv = LayerKind::Conv2d {
        in_channels: c,
        out_channels: channels,
        kernel: 3,
        stride: 1,
        padding: 1,
    };
    let shape = vec![channels, h, w];
    out.layers
        .push(layer(names::conv(i), conv, vec![c, h, w], shape.clone(), i));
    out.shape = [channels, h, w];
    if bn {
        let norm = LayerKind::BatchNorm2d { features: channels };
        out.layers
            .push(layer(names::norm(i), norm, shape.clone(), shape.clone(), i));
    }
    let relu = out.layers.len();
    out.layers.push(layer(
        names::relu(i),
        LayerKind::ReLU,
        shape.clone(),
        shape,
        i,
    ));
    Ok(relu)
}

/// The seed's forward between the Sequentials: AvgPool2d(2), then flatten.
fn head(c: i64, h: i64, w: i64) -> Result<Head, LowerError> {
    let (kernel, stride) = (2, 2);
    let (ph, pw) = (pooled(h, kernel, stride), pooled(w, kernel, stride));
    if ph < 1 || pw < 1 {
        return Err(LowerError::HeadTooSmall {
            shape: vec![c, h, w],
        });
    }
    // Within the checker's limits (widths ≤ 2^16, sides ≤ 2^14) every single size fits in i64.
    Ok(Head {
        kernel,
        stride,
        flat: c * ph * pw,
    })
}

/// The seed's classifier: linear1, its BatchNorm1d and ReLU, linear2.
fn classifier(flat: i64, hidden: i64, classes: i64) -> Vec<Layer> {
    vec![
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
    ]
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
