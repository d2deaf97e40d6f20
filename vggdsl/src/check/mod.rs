//! Syntax tree to checked networks. Reports every independent error at once, each pointing at
//! the text that causes it.
//!
//! One file per concern: [`settings`] (the settings and their lists), [`init_rules`], [`recipe`]
//! (the train block, and the ranges [`check_recipe`] holds a recipe to), [`batch_of_one`] (the
//! batch sizes a training set takes), [`idents`] (names and
//! visibility), [`suggest`] (wording); this file checks a file's models
//! and turns lowering errors into diagnostics.

mod batch_of_one;
mod idents;
mod init_rules;
mod recipe;
mod settings;
mod suggest;

use crate::ast::{self, Span, Spanned, Value};
use crate::diagnostic::Diagnostic;
use crate::ir::{self, Architecture, LowerError};
use crate::presets;
use crate::spec::{defaults, CfgItem, ModelSpec, Recipe, KEYS};
pub use batch_of_one::{check_batches, BatchOfOne};
pub use recipe::{check_recipe, Milestones, RecipeError, MAX_BATCH, MAX_EPOCHS};

use idents::generated_structs;
use settings::{feature_convs, preset_cfg};
use std::collections::HashMap;
use suggest::{plural, with_suggestion};

/// Limits that keep sizes meaningful and arithmetic exact.
pub const MAX_WIDTH: i64 = 1 << 16;
pub const MAX_SPATIAL: i64 = 1 << 14;
pub const MAX_CLASSES: i64 = 1 << 20;
/// A list (after `*` and `+`) has at most this many entries, and `* n` repeats at most this often.
pub const MAX_REPEAT: i64 = 1024;
/// A cfg has at most this many entries (VGG-19 has 21; 1,024 allows 3,000-layer stress models):
/// generated code grows with the layers.
pub const MAX_CFG: usize = 1024;

/// At most this many diagnostics are reported for one file.
pub const MAX_ERRORS: usize = 100;

/// Checks every model of a file.
pub fn check(file: &ast::File) -> Result<Vec<Architecture>, Vec<Diagnostic>> {
    let mut errors = Vec::new();
    let mut nets = Vec::new();
    // Every model name, and every struct name the generated code defines, with the model (and
    // its name's span) that defines it first.
    let mut seen: HashMap<&str, &Span> = HashMap::new();
    let mut structs: HashMap<String, (&str, &Span)> = HashMap::new();
    for model in &file.models {
        let (name, span) = (model.name.node.as_str(), &model.name.span);
        if let Some(first) = seen.insert(name, span) {
            seen.insert(name, first);
            errors.push(
                Diagnostic::new(
                    span.clone(),
                    format!("model `{name}` is defined twice in this file"),
                )
                .with_label(first.clone(), "first defined here"),
            );
        } else {
            for s in generated_structs(name) {
                match structs.get(&s) {
                    Some((other, at)) => {
                        errors.push(
                            Diagnostic::new(
                                span.clone(),
                                format!(
                                    "models `{other}` and `{name}` both generate a struct named `{s}`"
                                ),
                            )
                            .with_label((*at).clone(), format!("`{other}` defines `{s}`")),
                        );
                        break;
                    }
                    None => {
                        structs.insert(s, (name, span));
                    }
                }
            }
        }
        let mut cx = Checker { errors: Vec::new() };
        if let Some(net) = cx.model(model) {
            nets.push(net);
        }
        errors.extend(cx.errors);
    }
    if file.models.is_empty() {
        errors.push(
            Diagnostic::new(0..0, "no model is defined")
                .with_help("write `model Name { cfg = default }`"),
        );
    }
    // In the order of the text, as a reader meets them; a flood is cut short.
    errors.sort_by_key(|d| d.span.start);
    if errors.len() > MAX_ERRORS {
        let rest = errors.len() - MAX_ERRORS;
        let at = errors[MAX_ERRORS].span.clone();
        errors.truncate(MAX_ERRORS);
        errors.push(Diagnostic::new(
            at,
            format!("{rest} more errors from here on are not shown"),
        ));
    }
    if errors.is_empty() {
        Ok(nets)
    } else {
        Err(errors)
    }
}

struct Checker {
    errors: Vec<Diagnostic>,
}

/// The cfg with the span each entry came from.
struct Cfg {
    items: Vec<(CfgItem, Span)>,
    span: Span,
}

impl Checker {
    fn error(&mut self, span: Span, message: impl Into<String>) {
        self.errors.push(Diagnostic::new(span, message));
    }

    fn model(&mut self, model: &ast::Model) -> Option<Architecture> {
        self.model_name(&model.name);
        if let Some(v) = &model.visibility {
            self.visibility(v);
        }
        let settings = self.model_settings(model);
        let get = |k: &str| settings.iter().find(|s| s.key.node == k).map(|s| &s.value);
        let before = self.errors.len();
        let input = get("input").map_or(Some(defaults::INPUT), |v| self.input(v));
        let cfg = match get("cfg") {
            Some(v) => self.cfg(v),
            None => Some(preset_cfg(
                presets::preset(defaults::CFG)?,
                model.name.span.clone(),
            )),
        };
        let bn = get("bn").map_or(Some(defaults::BN), |v| self.boolean("bn", v));
        let num_classes =
            get("num_classes").map_or(Some(defaults::NUM_CLASSES), |v| self.num_classes(v));
        let convs = cfg.as_ref().map(feature_convs);
        let rates = match (get("compress_rate"), convs) {
            (None, _) => Some(None),
            (Some(v), Some(convs)) => self.rates(v, convs).map(Some),
            (Some(v), None) => self.rates(v, usize::MAX).map(|_| None),
        };
        let round_to = get("round_to").map_or(Some(None), |v| self.round_to(v).map(Some));
        let init = match get("init") {
            None => init_rules::named(defaults::INIT).map(|rules| (rules, Vec::new())),
            Some(v) => self.init(v),
        };
        let train = self.train(model);
        if self.errors.len() > before {
            return None;
        }
        let (cfg, rates, (init, rule_spans)) = (cfg?, rates?, init?);
        let spec = ModelSpec {
            name: model.name.node.clone(),
            visibility: model.visibility.as_ref().map(|v| v.node.clone()),
            input: input?,
            cfg: cfg.items.iter().map(|(i, _)| *i).collect(),
            bn: bn?,
            num_classes: num_classes?,
            compress_rate: rates,
            round_to: round_to?,
            init,
            train: train.flatten(),
        };
        let net = match ir::lower(&spec) {
            Ok(net) => net,
            Err(e) => {
                self.lower_error(
                    e,
                    &cfg,
                    get("input").map(|v| v.span.clone()),
                    get("compress_rate"),
                );
                return None;
            }
        };
        self.init_values(&net, &rule_spans, get("bn"));
        (self.errors.len() == before).then_some(net)
    }

    /// The model's settings with known keys, each once; the others are errors.
    fn model_settings<'m>(&mut self, model: &'m ast::Model) -> Vec<&'m ast::Setting> {
        let mut settings: Vec<&ast::Setting> = Vec::new();
        for s in &model.settings {
            let key = &s.key;
            if key.node == "train" {
                self.errors.push(
                    Diagnostic::new(key.span.clone(), "`train` is a block, not a setting")
                        .with_help("write `train { epochs = 30 }` without `=`"),
                );
            } else if !KEYS.contains(&key.node.as_str()) {
                let d = Diagnostic::new(key.span.clone(), format!("unknown key `{}`", key.node));
                self.errors
                    .push(with_suggestion(d, &key.node, &KEYS, "keys are"));
            } else if let Some(first) = settings.iter().find(|p| p.key.node == key.node) {
                self.errors.push(
                    Diagnostic::new(
                        key.span.clone(),
                        format!("`{}` is set twice in model `{}`", key.node, model.name.node),
                    )
                    .with_label(first.key.span.clone(), "first set here"),
                );
            } else {
                settings.push(s);
            }
        }
        settings
    }

    /// The recipe of the model's one `train` block (`None`: none; `Some(None)`: an invalid one).
    fn train(&mut self, model: &ast::Model) -> Option<Option<Recipe>> {
        if let [first, rest @ ..] = model.train.as_slice() {
            for block in rest {
                self.errors.push(
                    Diagnostic::new(block.keyword.clone(), "a model has one train block")
                        .with_label(first.keyword.clone(), "the first one"),
                );
            }
        }
        model.train.first().map(|block| self.recipe(block))
    }

    fn lower_error(
        &mut self,
        e: LowerError,
        cfg: &Cfg,
        input: Option<Span>,
        rates: Option<&Spanned<Value>>,
    ) {
        let at = |i: usize| cfg.items[i].1.clone();
        match e {
            LowerError::PoolTooSmall { index, shape } => self.errors.push(
                Diagnostic::new(
                    at(index),
                    format!("pool{index} would shrink a {} input below 1×1", hw(&shape)),
                )
                .with_help(input_help(&input)),
            ),
            LowerError::HeadTooSmall { shape } => self.errors.push(
                Diagnostic::new(
                    cfg.span.clone(),
                    format!(
                        "the AvgPool2d(2) head would shrink the last {} feature map below 1×1",
                        hw(&shape)
                    ),
                )
                .with_help("remove a pool (`M`) or use a larger input"),
            ),
            LowerError::NoChannelsLeft { index, width, rate } => {
                // Point at the rate itself: the conv's position among the convs is its rate's
                // position in the expanded list (the list expanded without errors before).
                let ordinal = cfg.items[..index]
                    .iter()
                    .filter(|(i, _)| matches!(i, CfgItem::Conv(_)))
                    .count();
                let span = rates
                    .and_then(|r| self.list(r, "compress_rate"))
                    .and_then(|items| items.get(ordinal).map(|i| i.span.clone()))
                    .or_else(|| rates.map(|r| r.span.clone()))
                    .unwrap_or_else(|| at(index));
                self.errors.push(
                    Diagnostic::new(
                        span,
                        format!(
                            "rate {rate} leaves conv{index} with 0 of its {width} {}",
                            plural(width as usize, "channel")
                        ),
                    )
                    .with_help(format!(
                        "int({width} * (1 - {rate})) = 0; use a smaller rate or a wider conv"
                    )),
                );
            }
            LowerError::TooLarge { what, unpruned } => {
                let network = if unpruned {
                    "the unpruned network"
                } else {
                    "the network"
                };
                self.errors.push(
                    Diagnostic::new(
                        cfg.span.clone(),
                        format!("{network} has more {what} than vggdsl counts (2^64 - 1)"),
                    )
                    .with_help("use narrower convs or a smaller input"),
                );
            }
        }
    }
}

fn hw(shape: &[i64]) -> String {
    format!("{}×{}", shape[1], shape[2])
}

fn input_help(input: &Option<Span>) -> String {
    match input {
        Some(_) => "remove a pool (`M`) or use a larger input".to_owned(),
        None => "remove a pool (`M`) or declare a larger `input`".to_owned(),
    }
}
