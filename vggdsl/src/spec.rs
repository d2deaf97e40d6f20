//! What a model says, resolved by the checker: the cfg, the settings with their defaults, and the
//! init rules. Everything downstream (the IR, analysis, codegen, the run-time network) starts here.

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
    /// Pruned widths are rounded up to a multiple of this ([`crate::ir::pruned_width`]); `None`
    /// when the model does not say (no rounding).
    pub round_to: Option<i64>,
    pub init: Vec<InitRule>,
    /// The training recipe the file writes in its `train { … }` block (`None`: none written;
    /// `vggdsl train` then uses [`Recipe::default`]).
    pub train: Option<Recipe>,
}

/// How to train a model: SGD with momentum and weight decay under a learning-rate schedule. The
/// default is the seed's recipe; flags of `vggdsl train` override any field.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Recipe {
    pub epochs: u32,
    pub batch_size: u32,
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    pub nesterov: bool,
    pub schedule: Schedule,
    /// Seeds the model's init draws, the shuffling and the augmentation.
    pub seed: u64,
}

/// The learning rate over the epochs.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(tag = "kind", rename_all = "lowercase")
)]
pub enum Schedule {
    /// Multiplied by `gamma` at each milestone epoch (PyTorch's `MultiStepLR`).
    MultiStep { milestones: Vec<u32>, gamma: f64 },
    /// Annealed to 0 over all epochs along a half cosine (`CosineAnnealingLR`, `T_max = epochs`).
    Cosine,
}

impl Default for Recipe {
    /// The seed's recipe (SGD lr 0.01, momentum 0.9, weight decay 5e-4, batch 128) over
    /// HRankPlus's 150 epochs with ×0.1 at epochs 50 and 100.
    fn default() -> Self {
        Recipe {
            epochs: 150,
            batch_size: 128,
            lr: 0.01,
            momentum: 0.9,
            weight_decay: 5e-4,
            nesterov: false,
            schedule: Schedule::MultiStep {
                milestones: vec![50, 100],
                gamma: 0.1,
            },
            seed: 0,
        }
    }
}

/// `SGD lr 0.01 (×0.1 at epochs 50, 100), momentum 0.9, weight decay 0.0005, batch 128,
/// 150 epochs, seed 0`: how summaries show a recipe.
impl std::fmt::Display for Recipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SGD lr {}", self.lr)?;
        match &self.schedule {
            Schedule::MultiStep { milestones, .. } if milestones.is_empty() => {}
            Schedule::MultiStep { milestones, gamma } => {
                let at: Vec<String> = milestones.iter().map(u32::to_string).collect();
                write!(f, " (×{gamma} at epochs {})", at.join(", "))?;
            }
            Schedule::Cosine => f.write_str(" (cosine)")?,
        }
        let nesterov = if self.nesterov { " (Nesterov)" } else { "" };
        write!(
            f,
            ", momentum {}{nesterov}, weight decay {}, batch {}, {} epochs, seed {}",
            self.momentum, self.weight_decay, self.batch_size, self.epochs, self.seed
        )
    }
}

impl Recipe {
    /// HRankPlus's fine-tuning after pruning: the same, end to end, with batch 256.
    pub fn hrankplus() -> Recipe {
        Recipe {
            batch_size: 256,
            ..Recipe::default()
        }
    }

    /// The names of the recipes a `train` block or `vggdsl train --recipe` starts from.
    pub const NAMES: [&'static str; 2] = ["seed", "hrankplus"];

    /// The recipe called `name` (one of [`Recipe::NAMES`]).
    pub fn named(name: &str) -> Option<Recipe> {
        match name {
            "seed" => Some(Recipe::default()),
            "hrankplus" => Some(Recipe::hrankplus()),
            _ => None,
        }
    }

    /// The learning rate during `epoch` (counted from 0), as PyTorch's scheduler sets it.
    pub fn lr_at(&self, epoch: u32) -> f64 {
        match &self.schedule {
            Schedule::MultiStep { milestones, gamma } => {
                let drops = milestones.iter().filter(|&&m| m <= epoch).count();
                self.lr * gamma.powi(drops as i32)
            }
            Schedule::Cosine => {
                let t = f64::from(epoch) / f64::from(self.epochs.max(1));
                self.lr * (1.0 + (std::f64::consts::PI * t).cos()) / 2.0
            }
        }
    }
}

/// The settings a model takes, in the order the reference lists them.
pub const KEYS: [&str; 7] = [
    "input",
    "cfg",
    "bn",
    "num_classes",
    "compress_rate",
    "round_to",
    "init",
];

/// The settings a `train { … }` block takes.
pub const TRAIN_KEYS: [&str; 11] = [
    "recipe",
    "epochs",
    "batch_size",
    "lr",
    "momentum",
    "weight_decay",
    "nesterov",
    "schedule",
    "milestones",
    "gamma",
    "seed",
];

/// What an unset setting means, the one table of defaults: a CIFAR-sized input, the seed's cfg
/// (a preset name) and init (an `init` word), BatchNorm on, 10 classes; no `compress_rate` is
/// no pruning.
pub mod defaults {
    pub const INPUT: [i64; 3] = [3, 32, 32];
    pub const CFG: &str = "default";
    pub const BN: bool = true;
    pub const NUM_CLASSES: i64 = 10;
    pub const INIT: &str = "default";
}

impl ModelSpec {
    /// The same model without pruning, for "reduction against the unpruned model" figures.
    pub fn unpruned(&self) -> ModelSpec {
        ModelSpec {
            compress_rate: None,
            ..self.clone()
        }
    }

    /// The multiple pruned widths are rounded up to: `round_to`, or 1 (no rounding).
    pub fn round_to(&self) -> i64 {
        self.round_to.unwrap_or(1)
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
