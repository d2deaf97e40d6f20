//! Syntax tree to checked networks. Reports every independent error at once, each pointing at
//! the text that causes it.

use crate::ast::{self, Item, ListTerm, Number, Span, Spanned, Value};
use crate::diagnostic::Diagnostic;
use crate::init::{self, Dist, Expr, InitRule, Target};
use crate::ir::{self, CfgItem, LowerError, ModelSpec, Network};
use crate::presets;

/// The settings a model takes, in the order the reference lists them.
pub const KEYS: [&str; 6] = ["input", "cfg", "bn", "num_classes", "compress_rate", "init"];

/// Limits that keep sizes meaningful and arithmetic exact.
pub const MAX_WIDTH: i64 = 1 << 16;
pub const MAX_SPATIAL: i64 = 1 << 14;
pub const MAX_CLASSES: i64 = 1 << 20;
/// A list (after `*` and `+`) has at most this many entries, and `* n` repeats at most this often.
pub const MAX_REPEAT: i64 = 1024;
/// A cfg has at most this many entries (VGG-19 has 21; 1,024 allows 3,000-layer stress models):
/// generated code grows with the layers.
pub const MAX_CFG: usize = 1024;

// Rust's strict and reserved keywords (2015–2024 editions): the name becomes a struct.
const RESERVED: &[&str] = &[
    "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern",
    "false", "fn", "for", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub",
    "ref", "return", "self", "Self", "static", "struct", "super", "trait", "true", "type",
    "unsafe", "use", "where", "while", "abstract", "become", "box", "do", "final", "gen", "macro",
    "override", "priv", "try", "typeof", "unsized", "virtual", "yield", "_",
];

/// At most this many diagnostics are reported for one file.
pub const MAX_ERRORS: usize = 100;

/// Checks every model of a file.
pub fn check(file: &ast::File) -> Result<Vec<Network>, Vec<Diagnostic>> {
    let mut errors = Vec::new();
    let mut nets = Vec::new();
    let mut seen = std::collections::HashSet::new();
    // Every struct name the generated code defines, with the model that defines it.
    let mut structs: std::collections::HashMap<String, &str> = std::collections::HashMap::new();
    for model in &file.models {
        let name = model.name.node.as_str();
        if !seen.insert(name) {
            errors.push(Diagnostic::new(
                model.name.span.clone(),
                format!("model `{name}` is defined twice in this file"),
            ));
        } else {
            for s in generated_structs(name) {
                match structs.get(&s) {
                    Some(other) => {
                        errors.push(Diagnostic::new(
                            model.name.span.clone(),
                            format!(
                                "models `{other}` and `{name}` both generate a struct named `{s}`"
                            ),
                        ));
                        break;
                    }
                    None => {
                        structs.insert(s, name);
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

    fn model(&mut self, model: &ast::Model) -> Option<Network> {
        self.model_name(&model.name);
        if let Some(v) = &model.visibility {
            self.visibility(v);
        }
        let mut settings: Vec<&ast::Setting> = Vec::new();
        for s in &model.settings {
            let key = &s.key;
            if !KEYS.contains(&key.node.as_str()) {
                let d = Diagnostic::new(key.span.clone(), format!("unknown key `{}`", key.node));
                self.errors
                    .push(with_suggestion(d, &key.node, &KEYS, "keys are"));
            } else if settings.iter().any(|p| p.key.node == key.node) {
                self.error(
                    key.span.clone(),
                    format!("`{}` is set twice in model `{}`", key.node, model.name.node),
                );
            } else {
                settings.push(s);
            }
        }
        let get = |k: &str| settings.iter().find(|s| s.key.node == k).map(|s| &s.value);
        let before = self.errors.len();
        let input = get("input").map_or(Some([3, 32, 32]), |v| self.input(v));
        let cfg = match get("cfg") {
            Some(v) => self.cfg(v),
            None => Some(preset_cfg(
                presets::preset("default")?,
                model.name.span.clone(),
            )),
        };
        let bn = get("bn").map_or(Some(true), |v| self.boolean("bn", v));
        let num_classes = get("num_classes").map_or(Some(10), |v| self.num_classes(v));
        let convs = cfg.as_ref().map(feature_convs);
        let rates = match (get("compress_rate"), convs) {
            (None, _) => Some(None),
            (Some(v), Some(convs)) => self.rates(v, convs).map(Some),
            (Some(v), None) => self.rates(v, usize::MAX).map(|_| None),
        };
        let init = match get("init") {
            None => Some((init::seed_rules(), Vec::new())),
            Some(v) => self.init(v),
        };
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
            init,
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

    /// `pub(in path)` takes a path Rust accepts there: it starts with `crate`, `self` or
    /// `super`, `super` may only follow `self` or `super`, and no segment is a keyword.
    fn visibility(&mut self, v: &Spanned<String>) {
        let Some(path) = v
            .node
            .strip_prefix("pub(in ")
            .and_then(|p| p.strip_suffix(')'))
        else {
            return;
        };
        let segments: Vec<&str> = path.split("::").collect();
        let start_words = ["crate", "self", "super", "Self"];
        if let Some(k) = segments
            .iter()
            .find(|s| RESERVED.contains(s) && !start_words.contains(s))
        {
            self.error(
                v.span.clone(),
                format!("`{k}` is a Rust keyword and cannot name a module in `pub(in {path})`"),
            );
            return;
        }
        if !matches!(segments[0], "crate" | "self" | "super") {
            self.errors.push(
                Diagnostic::new(
                    v.span.clone(),
                    format!(
                        "the path in `pub(in {path})` must start with `crate`, `self` or `super`"
                    ),
                )
                .with_help(format!("write `pub(in crate::{path})`")),
            );
            return;
        }
        for (i, seg) in segments.iter().enumerate().skip(1) {
            let after_start = segments[..i].iter().all(|s| matches!(*s, "self" | "super"));
            let problem = match *seg {
                "super" if !after_start => "`super` can only follow `self` or `super`",
                "crate" | "self" | "Self" => "it can only start the path",
                _ => continue,
            };
            self.error(
                v.span.clone(),
                format!("`{seg}` is misplaced in `pub(in {path})`: {problem}"),
            );
            return;
        }
    }

    fn model_name(&mut self, name: &Spanned<String>) {
        if RESERVED.contains(&name.node.as_str()) {
            self.error(
                name.span.clone(),
                format!("`{}` is a Rust keyword and cannot name a model", name.node),
            );
        }
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
            LowerError::TooLarge { index } => {
                let span = index.map_or_else(|| cfg.span.clone(), at);
                self.errors.push(
                    Diagnostic::new(span, "the network's sizes overflow 64-bit arithmetic")
                        .with_help("use narrower convs or a smaller input"),
                );
            }
        }
    }

    fn integer(&mut self, text: &str, span: &Span, what: &str) -> Option<i64> {
        match text.parse::<i64>() {
            Ok(v) => Some(v),
            Err(_) => {
                self.error(span.clone(), format!("{what} {text} is too large"));
                None
            }
        }
    }

    /// An integer in `min..=max`.
    fn bounded(&mut self, n: &Number, span: &Span, what: &str, min: i64, max: i64) -> Option<i64> {
        let v = match n {
            Number::Int(text) => self.integer(text, span, what)?,
            Number::Float(_) => {
                self.error(
                    span.clone(),
                    format!("{what} must be an integer, not a decimal number"),
                );
                return None;
            }
        };
        if v < min {
            self.error(
                span.clone(),
                format!("{what} must be at least {min}, found {v}"),
            );
            None
        } else if v > max {
            self.error(
                span.clone(),
                format!("{what} {v} is larger than the limit {max}"),
            );
            None
        } else {
            Some(v)
        }
    }

    fn input(&mut self, v: &Spanned<Value>) -> Option<[i64; 3]> {
        let items = self.list(v, "input")?;
        if items.len() != 3 {
            self.error(
                v.span.clone(),
                format!(
                    "input must be [channels, height, width], found {} entries",
                    items.len()
                ),
            );
            return None;
        }
        let names = ["input channels", "input height", "input width"];
        let limits = [MAX_WIDTH, MAX_SPATIAL, MAX_SPATIAL];
        let mut out = [0; 3];
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match &item.node {
                Item::Number(n) => match self.bounded(n, &item.span, names[i], 1, limits[i]) {
                    Some(x) => out[i] = x,
                    None => ok = false,
                },
                Item::Word(w) => {
                    self.error(
                        item.span.clone(),
                        format!("{} must be a number, found `{w}`", names[i]),
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    /// Expands a list sum (`[a] * 2 + [b]`) to its items.
    fn list(&mut self, v: &Spanned<Value>, key: &str) -> Option<Vec<Spanned<Item>>> {
        let Value::List(terms) = &v.node else {
            self.error(
                v.span.clone(),
                format!("`{key}` takes a list, found {}", found(&v.node)),
            );
            return None;
        };
        let mut items = Vec::new();
        for ListTerm {
            items: term,
            repeat,
        } in terms
        {
            let n = match repeat {
                None => 1,
                Some(r) => self.bounded(
                    &Number::Int(r.node.clone()),
                    &r.span,
                    "repeat count",
                    0,
                    MAX_REPEAT,
                )?,
            };
            // Checked before expanding, so `[…] * 10000` never builds a huge list.
            if items.len() + term.len().saturating_mul(n as usize) > MAX_REPEAT as usize {
                self.error(
                    v.span.clone(),
                    format!("`{key}` has more than {MAX_REPEAT} entries"),
                );
                return None;
            }
            for _ in 0..n {
                items.extend(term.iter().cloned());
            }
        }
        Some(items)
    }

    fn cfg(&mut self, v: &Spanned<Value>) -> Option<Cfg> {
        let items = match &v.node {
            Value::Word(w) => {
                return match presets::preset(w) {
                    Some(p) => Some(preset_cfg(p, v.span.clone())),
                    None => {
                        let names: Vec<&str> = presets::PRESETS.iter().map(|(n, _)| *n).collect();
                        let d =
                            Diagnostic::new(v.span.clone(), format!("unknown cfg preset `{w}`"));
                        self.errors
                            .push(with_suggestion(d, w, &names, "presets are"));
                        None
                    }
                };
            }
            _ => self.list(v, "cfg")?,
        };
        if items.is_empty() {
            self.error(v.span.clone(), "cfg is empty");
            return None;
        }
        if items.len() > MAX_CFG {
            self.error(
                v.span.clone(),
                format!(
                    "cfg has {} entries, more than the limit {MAX_CFG}",
                    items.len()
                ),
            );
            return None;
        }
        let mut out = Vec::new();
        let mut ok = true;
        for item in &items {
            let entry = match &item.node {
                Item::Word(w) if w == "M" => Some(CfgItem::Pool),
                Item::Word(w) => {
                    let d = Diagnostic::new(
                        item.span.clone(),
                        format!("cfg entries are widths or `M`, found `{w}`"),
                    );
                    self.errors.push(if w.eq_ignore_ascii_case("m") {
                        d.with_help("write `M`")
                    } else {
                        d
                    });
                    None
                }
                Item::Number(n) => self
                    .bounded(n, &item.span, "width", 1, MAX_WIDTH)
                    .map(CfgItem::Conv),
            };
            match entry {
                Some(e) => out.push((e, item.span.clone())),
                None => ok = false,
            }
        }
        if !ok {
            return None;
        }
        let cfg = Cfg {
            items: out,
            span: v.span.clone(),
        };
        if let Some((CfgItem::Pool, span)) = cfg.items.last() {
            self.errors.push(
                Diagnostic::new(
                    span.clone(),
                    "the last cfg entry is the classifier's hidden width, found `M`",
                )
                .with_help("end the cfg with a width such as 512"),
            );
            return None;
        }
        if feature_convs(&cfg) == 0 {
            self.errors.push(
                Diagnostic::new(v.span.clone(), "cfg has no conv layer before the classifier width")
                    .with_help("the last entry is the classifier's hidden width; put at least one width before it"),
            );
            return None;
        }
        Some(cfg)
    }

    fn boolean(&mut self, key: &str, v: &Spanned<Value>) -> Option<bool> {
        match &v.node {
            Value::Word(w) if w == "true" => Some(true),
            Value::Word(w) if w == "false" => Some(false),
            other => {
                self.error(
                    v.span.clone(),
                    format!("`{key}` takes `true` or `false`, found {}", found(other)),
                );
                None
            }
        }
    }

    fn num_classes(&mut self, v: &Spanned<Value>) -> Option<i64> {
        match &v.node {
            Value::Number(n) => self.bounded(n, &v.span, "num_classes", 1, MAX_CLASSES),
            other => {
                self.error(
                    v.span.clone(),
                    format!("`num_classes` takes a number, found {}", found(other)),
                );
                None
            }
        }
    }

    /// One rate per conv; the HRankPlus form (one fewer) gets 0.0 for the last conv.
    fn rates(&mut self, v: &Spanned<Value>, convs: usize) -> Option<Vec<f64>> {
        let items = self.list(v, "compress_rate")?;
        let mut rates = Vec::new();
        let mut ok = true;
        for item in &items {
            let rate = match &item.node {
                Item::Number(Number::Float(x)) if !x.is_finite() => {
                    self.error(item.span.clone(), "this number is too large");
                    // Keep the count right so no second error claims a wrong number of rates.
                    rates.push(0.0);
                    ok = false;
                    continue;
                }
                Item::Number(Number::Float(x)) => *x,
                Item::Number(Number::Int(t)) => t.parse::<f64>().unwrap_or(f64::INFINITY),
                Item::Word(w) => {
                    self.error(item.span.clone(), format!("rates are numbers, found `{w}`"));
                    rates.push(0.0);
                    ok = false;
                    continue;
                }
            };
            if !(0.0..1.0).contains(&rate) {
                let text = match &item.node {
                    Item::Number(Number::Int(t)) => t.clone(),
                    _ => rate.to_string(),
                };
                self.errors.push(
                    Diagnostic::new(item.span.clone(), format!("rate {text} is outside [0, 1)"))
                        .with_help("a rate is the fraction of filters pruned; 0 keeps them all"),
                );
                ok = false;
            }
            rates.push(rate);
        }
        if convs != usize::MAX && rates.len() != convs && rates.len() + 1 != convs {
            self.errors.push(
                Diagnostic::new(
                    v.span.clone(),
                    format!(
                        "compress_rate has {} but the model has {convs} {}",
                        count(rates.len(), "rate"),
                        plural(convs, "conv")
                    ),
                )
                .with_help(if convs > 1 {
                    format!(
                        "write {}, or {} (HRankPlus form: the last conv keeps its width)",
                        count(convs, "rate"),
                        convs - 1
                    )
                } else {
                    "write 1 rate".to_owned()
                }),
            );
            ok = false;
        }
        if rates.len() + 1 == convs {
            rates.push(0.0);
        }
        ok.then_some(rates)
    }

    fn init(&mut self, v: &Spanned<Value>) -> Option<(Vec<InitRule>, Vec<Span>)> {
        let rules = match &v.node {
            Value::Word(w) if w == "default" => return Some((init::seed_rules(), Vec::new())),
            Value::Word(w) if w == "pytorch" => return Some((Vec::new(), Vec::new())),
            Value::Block(rules) => rules,
            other => {
                let found = found(other);
                let d = Diagnostic::new(
                    v.span.clone(),
                    format!("`init` takes `default`, `pytorch` or a block of rules, found {found}"),
                );
                self.errors.push(match other {
                    Value::Word(w) => with_suggestion(d, w, &["default", "pytorch"], "choices are"),
                    _ => d,
                });
                return None;
            }
        };
        let mut out: Vec<InitRule> = Vec::new();
        let mut spans = Vec::new();
        let mut ok = true;
        for rule in rules {
            match self.rule(rule) {
                Some(r) => {
                    if out
                        .iter()
                        .any(|o| o.target == r.target && o.tensor == r.tensor)
                    {
                        let what = format!("{}.{}", rule.layer.node, rule.tensor.node);
                        self.error(
                            rule.layer.span.start..rule.tensor.span.end,
                            format!("`{what}` has two rules"),
                        );
                        ok = false;
                    } else {
                        out.push(r);
                        spans.push(rule.layer.span.start..rule.call.span.end);
                    }
                }
                None => ok = false,
            }
        }
        ok.then_some((out, spans))
    }

    fn rule(&mut self, rule: &ast::Rule) -> Option<InitRule> {
        let kinds: Vec<&str> = Target::ALL.iter().map(|(n, _)| *n).collect();
        let target = Target::ALL
            .iter()
            .find(|(n, _)| *n == rule.layer.node)
            .map(|(_, t)| *t);
        let tensor = init::TENSORS
            .iter()
            .find(|t| **t == rule.tensor.node)
            .copied();
        if target.is_none() {
            let d = Diagnostic::new(
                rule.layer.span.clone(),
                format!("unknown layer kind `{}` in an init rule", rule.layer.node),
            );
            self.errors
                .push(with_suggestion(d, &rule.layer.node, &kinds, "kinds are"));
        }
        if tensor.is_none() {
            let d = Diagnostic::new(
                rule.tensor.span.clone(),
                format!(
                    "`{}` has no tensor `{}` that init can set",
                    rule.layer.node, rule.tensor.node
                ),
            );
            self.errors.push(with_suggestion(
                d,
                &rule.tensor.node,
                &init::TENSORS,
                "tensors are",
            ));
        }
        let dist = self.dist(&rule.call);
        Some(InitRule {
            target: target?,
            tensor: tensor?,
            dist: dist?,
        })
    }

    fn dist(&mut self, call: &Spanned<ast::Call>) -> Option<Dist> {
        let name = &call.node.name;
        let Some((_, params)) = init::DISTRIBUTIONS.iter().find(|(n, _)| *n == name.node) else {
            let names: Vec<&str> = init::DISTRIBUTIONS.iter().map(|(n, _)| *n).collect();
            let d = Diagnostic::new(
                name.span.clone(),
                format!("unknown distribution `{}`", name.node),
            );
            self.errors
                .push(with_suggestion(d, &name.node, &names, "distributions are"));
            return None;
        };
        if call.node.args.len() != params.len() {
            self.error(
                call.span.clone(),
                format!(
                    "`{}` takes {} ({}), found {}",
                    name.node,
                    count(params.len(), "argument"),
                    params.join(", "),
                    call.node.args.len()
                ),
            );
            return None;
        }
        let args: Vec<Option<Expr>> = call.node.args.iter().map(|a| self.expr(a)).collect();
        let mut args = args.into_iter().collect::<Option<Vec<Expr>>>()?.into_iter();
        let mut next = || args.next().expect("arity checked above");
        Some(match name.node.as_str() {
            "normal" => Dist::Normal {
                mean: next(),
                std: next(),
            },
            "uniform" => Dist::Uniform {
                low: next(),
                high: next(),
            },
            _ => Dist::Constant(next()),
        })
    }

    fn expr(&mut self, e: &Spanned<ast::Expr>) -> Option<Expr> {
        let b = Box::new;
        Some(match &e.node {
            ast::Expr::Number(Number::Float(x)) if x.is_finite() => Expr::Num(*x),
            ast::Expr::Number(Number::Int(t)) => {
                Expr::Num(self.integer(t, &e.span, "number")? as f64)
            }
            ast::Expr::Number(_) => {
                self.error(e.span.clone(), "this number is too large");
                return None;
            }
            ast::Expr::Var(v) => match init::VARIABLES.iter().find(|(n, _)| n == v) {
                Some((n, _)) => Expr::Var(n),
                None => {
                    let names: Vec<&str> = init::VARIABLES.iter().map(|(n, _)| *n).collect();
                    let d = Diagnostic::new(e.span.clone(), format!("unknown variable `{v}`"));
                    self.errors
                        .push(with_suggestion(d, v, &names, "variables are"));
                    return None;
                }
            },
            ast::Expr::Neg(a) => Expr::Neg(b(self.expr(a)?)),
            ast::Expr::Binary(l, op, r) => {
                let (l, r) = (self.expr(l), self.expr(r));
                let (l, r) = (b(l?), b(r?));
                match op {
                    ast::BinOp::Add => Expr::Add(l, r),
                    ast::BinOp::Sub => Expr::Sub(l, r),
                    ast::BinOp::Mul => Expr::Mul(l, r),
                    ast::BinOp::Div => Expr::Div(l, r),
                }
            }
            ast::Expr::Call(c) if c.name.node == "sqrt" && c.args.len() == 1 => {
                Expr::Sqrt(b(self.expr(&c.args[0])?))
            }
            ast::Expr::Call(c) if c.name.node == "sqrt" => {
                self.error(
                    e.span.clone(),
                    format!("`sqrt` takes 1 argument, found {}", c.args.len()),
                );
                return None;
            }
            ast::Expr::Call(c) => {
                let d = Diagnostic::new(
                    c.name.span.clone(),
                    format!("unknown function `{}`", c.name.node),
                );
                self.errors
                    .push(with_suggestion(d, &c.name.node, &["sqrt"], "functions are"));
                return None;
            }
        })
    }

    /// Rules must match a layer and give finite parameters for every layer they touch.
    fn init_values(&mut self, net: &Network, spans: &[Span], bn: Option<&Spanned<Value>>) {
        for (rule, span) in net.spec.init.iter().zip(spans) {
            if rule.target == Target::Norm2d && !net.spec.bn {
                let d = Diagnostic::new(
                    span.clone(),
                    "this rule matches no layer: the model has no BatchNorm2d",
                );
                self.errors.push(if bn.is_some() {
                    d.with_help("it sets `bn = false`")
                } else {
                    d
                });
                continue;
            }
            let one = ModelSpec {
                init: vec![rule.clone()],
                ..net.spec.clone()
            };
            let probe = Network {
                spec: one,
                ..net.clone()
            };
            for step in init::plan(&probe) {
                let problem = match step.op {
                    init::Op::Normal { mean, std } => {
                        param_problem(&[("mean", mean), ("std", std)]).or_else(|| {
                            (std < 0.0).then(|| format!("a negative std ({})", short(std)))
                        })
                    }
                    init::Op::Uniform { low, high } => {
                        param_problem(&[("low", low), ("high", high)]).or_else(|| {
                            (low > high).then(|| {
                                format!(
                                    "a low bound ({}) above its high bound ({})",
                                    short(low),
                                    short(high)
                                )
                            })
                        })
                    }
                    init::Op::Constant(v) => param_problem(&[("value", v)]),
                };
                if let Some(problem) = problem {
                    self.error(
                        span.clone(),
                        format!(
                            "this rule gives {}.{}.{} {problem}",
                            step.section, step.layer, step.tensor
                        ),
                    );
                    break;
                }
            }
        }
    }
}

/// "an infinite std" / "a NaN mean" (from a division by zero or `sqrt` of a negative number).
fn param_problem(params: &[(&str, f64)]) -> Option<String> {
    params
        .iter()
        .find(|(_, v)| !v.is_finite())
        .map(|(name, v)| {
            if v.is_nan() {
                format!("a {name} that is not a number (NaN)")
            } else {
                format!("an infinite {name}")
            }
        })
}

/// The structs the generated code defines for a model.
fn generated_structs(model: &str) -> [String; 5] {
    use crate::names;
    [
        model.to_owned(),
        names::features_type(model),
        names::classifier_type(model),
        names::activations_type(model),
        names::inference_type(model),
    ]
}

/// What a value is, naming words: "`yes`", "an integer".
fn found(v: &Value) -> String {
    match v {
        Value::Word(w) => format!("`{w}`"),
        other => other.describe().to_owned(),
    }
}

/// A parameter value in a message, to 4 significant digits.
fn short(x: f64) -> String {
    let a = x.abs();
    if a == 0.0 {
        "0".to_owned()
    } else if (1e-3..1e6).contains(&a) {
        let digits = (3 - a.log10().floor() as i32).clamp(0, 6) as usize;
        let t = format!("{x:.digits$}");
        if t.contains('.') {
            t.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            t
        }
    } else {
        format!("{x:.3e}")
    }
}

fn preset_cfg(cfg: &[CfgItem], span: Span) -> Cfg {
    Cfg {
        items: cfg.iter().map(|i| (*i, span.clone())).collect(),
        span,
    }
}

fn feature_convs(cfg: &Cfg) -> usize {
    cfg.items[..cfg.items.len().saturating_sub(1)]
        .iter()
        .filter(|(i, _)| matches!(i, CfgItem::Conv(_)))
        .count()
}

/// `1 rate`, `13 rates`.
fn count(n: usize, noun: &str) -> String {
    format!("{n} {}", plural(n, noun))
}

fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        noun.to_owned()
    } else {
        format!("{noun}s")
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

/// Adds "did you mean `x`?" when a known word is close, else lists the choices.
fn with_suggestion(d: Diagnostic, word: &str, choices: &[&str], plural: &str) -> Diagnostic {
    let sorted = |w: &str| {
        let mut v: Vec<char> = w.chars().collect();
        v.sort_unstable();
        v
    };
    // Closest first; on a tie, a choice with the same letters (`vgg61` → `vgg16`), then the
    // choices' own order.
    let close_enough =
        |dist: usize, c: &str| dist <= (c.len() / 3).max(1) && dist < word.len().max(2);
    let best = choices
        .iter()
        .enumerate()
        // The distance is at least the difference in length: skip hopeless (and long) words.
        .filter(|(_, c)| close_enough(word.chars().count().abs_diff(c.chars().count()), c))
        .map(|(i, c)| {
            let dist = strsim::damerau_levenshtein(word, c);
            (dist, sorted(word) != sorted(c), i, *c)
        })
        .min()
        .filter(|(dist, _, _, c)| close_enough(*dist, c));
    match best {
        Some((_, _, _, c)) => d.with_help(format!("did you mean `{c}`?")),
        None => d.with_help(format!(
            "{plural} {}",
            choices
                .iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}
