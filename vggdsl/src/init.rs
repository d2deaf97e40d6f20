//! Weight initialisation: the order PyTorch applies a model's init rules in (the rules themselves
//! are in [`crate::spec`]).
//!
//! PyTorch first resets every layer to its framework default while the model is built (in
//! construction order), then the seed's `_initialize_weights` walks `modules()` and rewrites
//! weight, then bias, of each matching layer. tch draws the same random numbers as PyTorch for
//! the same ops in the same order, so `plan` reproduces that order exactly.

use crate::ir::{Architecture, LayerKind};
use crate::spec::{Dist, InitRule, TENSORS};

/// One in-place initialisation, with its parameters evaluated for its layer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    Normal { mean: f64, std: f64 },
    Uniform { low: f64, high: f64 },
    Constant(f64),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// `features` or `classifier`.
    pub section: &'static str,
    pub layer: String,
    pub tensor: &'static str,
    pub op: Op,
}

/// The rule pass in PyTorch's `modules()` order: per layer, weight then bias.
pub fn plan(net: &Architecture) -> Vec<Step> {
    let mut steps = Vec::new();
    for (section, layer) in net.layers() {
        for tensor in TENSORS {
            let rule = net
                .spec
                .init
                .iter()
                .find(|r| r.tensor == tensor && applies(r, &layer.kind));
            if let Some(rule) = rule {
                steps.push(Step {
                    section,
                    layer: layer.name.clone(),
                    tensor,
                    op: evaluate(rule, &layer.kind),
                });
            }
        }
    }
    steps
}

/// Whether `rule` names this kind of layer.
pub fn applies(rule: &InitRule, kind: &LayerKind) -> bool {
    kind.init_target() == Some(rule.target)
}

/// The op `rule` performs on one layer, its parameters evaluated with the layer's sizes.
pub fn evaluate(rule: &InitRule, kind: &LayerKind) -> Op {
    let vars = variables(kind);
    match &rule.dist {
        Dist::Normal { mean, std } => Op::Normal {
            mean: mean.eval(&vars),
            std: std.eval(&vars),
        },
        Dist::Uniform { low, high } => Op::Uniform {
            low: low.eval(&vars),
            high: high.eval(&vars),
        },
        Dist::Constant(v) => Op::Constant(v.eval(&vars)),
    }
}

fn variables(kind: &LayerKind) -> impl Fn(&str) -> f64 {
    let (k, i, o) = match *kind {
        LayerKind::Conv2d {
            in_channels,
            out_channels,
            kernel,
            ..
        } => (kernel, in_channels, out_channels),
        LayerKind::Linear {
            in_features,
            out_features,
        } => (1, in_features, out_features),
        LayerKind::BatchNorm2d { features } | LayerKind::BatchNorm1d { features } => {
            (1, features, features)
        }
        LayerKind::ReLU | LayerKind::MaxPool2d { .. } => (1, 0, 0),
    };
    let (k, i, o) = (k as f64, i as f64, o as f64);
    move |name: &str| match name {
        "k" => k,
        "in" => i,
        "out" => o,
        "fan_in" => i * k * k,
        "fan_out" => o * k * k,
        _ => f64::NAN,
    }
}
