//! The checked network: ordered layers with PyTorch names, kinds and shapes.
//!
//! `lower` is the one place that turns a model description into layers (the seed's `make_layers`
//! and classifier) and infers shapes; analysis, repr, init and codegen all read its output.

use crate::init::InitRule;
use crate::names;

/// One entry of a cfg list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CfgItem {
    /// A 3×3 conv (padding 1) to this many channels, with BatchNorm2d and ReLU.
    Conv(i64),
    /// `M`: MaxPool2d(kernel_size=2, stride=2).
    Pool,
}

/// A model as the checker resolved it: presets expanded, rates one per conv, init rules typed.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    pub name: String,
    pub visibility: Option<String>,
    /// C, H, W of one input image.
    pub input: [i64; 3],
    /// The whole cfg list: `cfg[..len - 1]` are the features, the last entry is the classifier width.
    pub cfg: Vec<CfgItem>,
    pub bn: bool,
    pub num_classes: i64,
    /// One rate per conv (the HRankPlus form already extended with 0.0); `None` when not pruned.
    pub compress_rate: Option<Vec<f64>>,
    pub init: Vec<InitRule>,
}

impl ModelSpec {
    /// The same model without pruning, for "reduction against the unpruned model" figures.
    pub fn unpruned(&self) -> ModelSpec {
        ModelSpec {
            compress_rate: None,
            ..self.clone()
        }
    }

    pub fn features(&self) -> &[CfgItem] {
        &self.cfg[..self.cfg.len() - 1]
    }

    /// The classifier's hidden width (the cfg's last entry).
    pub fn hidden(&self) -> i64 {
        match self.cfg.last() {
            Some(CfgItem::Conv(w)) => *w,
            _ => 0,
        }
    }
}

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

/// The forward-only head between the Sequentials: `AvgPool2d(2)` then flatten.
#[derive(Debug, Clone, PartialEq)]
pub struct Head {
    pub in_shape: Vec<i64>,
    pub pooled: Vec<i64>,
    /// C×H×W after pooling: linear1's in-features.
    pub flat: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Network {
    pub spec: ModelSpec,
    pub features: Vec<Layer>,
    pub head: Head,
    pub classifier: Vec<Layer>,
    /// Positions in the flattened features where HRank reads each conv block's output (all but
    /// the last conv): the ReLU, or the pool that directly follows it.
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

    pub fn output_shape(&self) -> Vec<i64> {
        vec![self.spec.num_classes]
    }
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
    /// A size does not fit in 64 bits.
    TooLarge { index: Option<usize> },
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
    let mut relu_cfg = Vec::new();
    let mut conv_cfg = Vec::new();
    let [mut c, mut h, mut w] = spec.input;
    let mut conv_count = 0;
    let conv_total = spec
        .features()
        .iter()
        .filter(|i| matches!(i, CfgItem::Conv(_)))
        .count();
    // Where the last conv block's output sits, until we know whether a pool follows it.
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
                if let Some(_relu) = pending_block_end.take() {
                    relu_cfg.push(features.len());
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
                    relu_cfg.push(relu);
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
                if !is_last {
                    pending_block_end = Some(features.len());
                }
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
        relu_cfg.push(relu);
    }
    let head_in = vec![c, h, w];
    let (ph, pw) = (pooled(h, 2, 2), pooled(w, 2, 2));
    if ph < 1 || pw < 1 {
        return Err(LowerError::HeadTooSmall { shape: head_in });
    }
    let flat = c
        .checked_mul(ph)
        .and_then(|x| x.checked_mul(pw))
        .ok_or(LowerError::TooLarge { index: None })?;
    let head = Head {
        in_shape: head_in,
        pooled: vec![c, ph, pw],
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
        relu_cfg,
        conv_cfg,
    };
    crate::analysis::check_sizes(&net)?;
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
