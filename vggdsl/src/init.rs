//! Weight initialisation: the rules a model states and the order PyTorch applies them in.
//!
//! PyTorch first resets every layer to its framework default while the model is built (in
//! construction order), then the seed's `_initialize_weights` walks `modules()` and rewrites
//! weight, then bias, of each matching layer. tch draws the same random numbers as PyTorch for
//! the same ops in the same order, so `plan` reproduces that order exactly.

use crate::ir::{LayerKind, Network};

/// The layer kinds a rule can name, as written in the language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Conv,
    Norm2d,
    Norm1d,
    Linear,
}

impl Target {
    pub const ALL: [(&'static str, Target); 4] = [
        ("conv", Target::Conv),
        ("norm2d", Target::Norm2d),
        ("norm1d", Target::Norm1d),
        ("linear", Target::Linear),
    ];

    fn matches(self, kind: &LayerKind) -> bool {
        matches!(
            (self, kind),
            (Target::Conv, LayerKind::Conv2d { .. })
                | (Target::Norm2d, LayerKind::BatchNorm2d { .. })
                | (Target::Norm1d, LayerKind::BatchNorm1d { .. })
                | (Target::Linear, LayerKind::Linear { .. })
        )
    }
}

/// The tensors a rule can set: the learnable ones (running stats are not initialised).
pub const TENSORS: [&str; 2] = ["weight", "bias"];

/// Variables a rule's expressions may use, bound per layer.
pub const VARIABLES: [(&str, &str); 5] = [
    ("k", "kernel size (1 for Linear and BatchNorm)"),
    ("in", "input channels or features"),
    ("out", "output channels or features"),
    ("fan_in", "in * k * k"),
    ("fan_out", "out * k * k"),
];

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Num(f64),
    Var(&'static str),
    Neg(Box<Expr>),
    Add(Box<Expr>, Box<Expr>),
    Sub(Box<Expr>, Box<Expr>),
    Mul(Box<Expr>, Box<Expr>),
    Div(Box<Expr>, Box<Expr>),
    Sqrt(Box<Expr>),
}

impl Expr {
    /// Evaluates in f64 in the order written, as Python does for `math.sqrt(2. / n)`.
    pub fn eval(&self, vars: &dyn Fn(&str) -> f64) -> f64 {
        match self {
            Expr::Num(x) => *x,
            Expr::Var(v) => vars(v),
            Expr::Neg(a) => -a.eval(vars),
            Expr::Add(a, b) => a.eval(vars) + b.eval(vars),
            Expr::Sub(a, b) => a.eval(vars) - b.eval(vars),
            Expr::Mul(a, b) => a.eval(vars) * b.eval(vars),
            Expr::Div(a, b) => a.eval(vars) / b.eval(vars),
            Expr::Sqrt(a) => a.eval(vars).sqrt(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Dist {
    /// `tensor.normal_(mean, std)`
    Normal { mean: Expr, std: Expr },
    /// `tensor.uniform_(low, high)`
    Uniform { low: Expr, high: Expr },
    /// `tensor.fill_(value)`
    Constant(Expr),
}

/// The distributions a rule can call, with their parameter names.
pub const DISTRIBUTIONS: [(&str, &[&str]); 3] = [
    ("normal", &["mean", "std"]),
    ("uniform", &["low", "high"]),
    ("constant", &["value"]),
];

#[derive(Debug, Clone, PartialEq)]
pub struct InitRule {
    pub target: Target,
    /// `"weight"` or `"bias"`.
    pub tensor: &'static str,
    pub dist: Dist,
}

/// The seed's `_initialize_weights`, rule for rule. BatchNorm1d is not matched by the seed's
/// `isinstance(m, nn.BatchNorm2d)`, so it keeps PyTorch's default.
pub fn seed_rules() -> Vec<InitRule> {
    use Expr::*;
    let b = Box::new;
    let zero = || Dist::Constant(Num(0.0));
    let kkout = Mul(b(Mul(b(Var("k")), b(Var("k")))), b(Var("out")));
    vec![
        InitRule {
            target: Target::Conv,
            tensor: "weight",
            dist: Dist::Normal {
                mean: Num(0.0),
                std: Sqrt(b(Div(b(Num(2.0)), b(kkout)))),
            },
        },
        InitRule {
            target: Target::Conv,
            tensor: "bias",
            dist: zero(),
        },
        InitRule {
            target: Target::Norm2d,
            tensor: "weight",
            dist: Dist::Constant(Num(0.5)),
        },
        InitRule {
            target: Target::Norm2d,
            tensor: "bias",
            dist: zero(),
        },
        InitRule {
            target: Target::Linear,
            tensor: "weight",
            dist: Dist::Normal {
                mean: Num(0.0),
                std: Num(0.01),
            },
        },
        InitRule {
            target: Target::Linear,
            tensor: "bias",
            dist: zero(),
        },
    ]
}

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
pub fn plan(net: &Network) -> Vec<Step> {
    let mut steps = Vec::new();
    for (section, layer) in net.layers() {
        let vars = variables(&layer.kind);
        for tensor in TENSORS {
            let rule = net
                .spec
                .init
                .iter()
                .find(|r| r.tensor == tensor && r.target.matches(&layer.kind));
            if let Some(rule) = rule {
                let op = match &rule.dist {
                    Dist::Normal { mean, std } => Op::Normal {
                        mean: mean.eval(&vars),
                        std: std.eval(&vars),
                    },
                    Dist::Uniform { low, high } => Op::Uniform {
                        low: low.eval(&vars),
                        high: high.eval(&vars),
                    },
                    Dist::Constant(v) => Op::Constant(v.eval(&vars)),
                };
                steps.push(Step {
                    section,
                    layer: layer.name.clone(),
                    tensor,
                    op,
                });
            }
        }
    }
    steps
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
