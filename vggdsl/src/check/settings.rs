//! The settings of a model and the lists they take: `input`, `cfg`, `bn`, `num_classes`,
//! `compress_rate`, `round_to`, with their limits.

use super::suggest::{count, found, plural, with_suggestion};
use super::{Cfg, Checker, MAX_CFG, MAX_CLASSES, MAX_REPEAT, MAX_SPATIAL, MAX_WIDTH};
use crate::ast::{Item, ListTerm, Number, Span, Spanned, Value};
use crate::diagnostic::Diagnostic;
use crate::presets;
use crate::spec::CfgItem;

impl Checker {
    pub(super) fn integer(&mut self, text: &str, span: &Span, what: &str) -> Option<i64> {
        match text.parse::<i64>() {
            Ok(v) => Some(v),
            Err(_) => {
                self.error(span.clone(), format!("{what} {text} is too large"));
                None
            }
        }
    }

    /// An integer in `min..=max`.
    pub(super) fn bounded(
        &mut self,
        n: &Number,
        span: &Span,
        what: &str,
        min: i64,
        max: i64,
    ) -> Option<i64> {
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

    pub(super) fn input(&mut self, v: &Spanned<Value>) -> Option<[i64; 3]> {
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
    pub(super) fn list(&mut self, v: &Spanned<Value>, key: &str) -> Option<Vec<Spanned<Item>>> {
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

    pub(super) fn cfg(&mut self, v: &Spanned<Value>) -> Option<Cfg> {
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
            match self.cfg_entry(item) {
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

    /// One entry of a cfg list: a width or `M`.
    fn cfg_entry(&mut self, item: &Spanned<Item>) -> Option<CfgItem> {
        match &item.node {
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
        }
    }

    pub(super) fn boolean(&mut self, key: &str, v: &Spanned<Value>) -> Option<bool> {
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

    pub(super) fn num_classes(&mut self, v: &Spanned<Value>) -> Option<i64> {
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

    /// The multiple pruned widths are rounded up to: an integer from 1 (no rounding) to the
    /// widest conv a cfg may have.
    pub(super) fn round_to(&mut self, v: &Spanned<Value>) -> Option<i64> {
        match &v.node {
            Value::Number(n) => self.bounded(n, &v.span, "round_to", 1, MAX_WIDTH),
            other => {
                self.error(
                    v.span.clone(),
                    format!("`round_to` takes a number, found {}", found(other)),
                );
                None
            }
        }
    }

    /// One rate per conv; the HRankPlus form (one fewer) gets 0.0 for the last conv. A list
    /// item repeated by `*` is reported once, however many rates it makes.
    pub(super) fn rates(&mut self, v: &Spanned<Value>, convs: usize) -> Option<Vec<f64>> {
        let items = self.list(v, "compress_rate")?;
        let mut rates = Vec::new();
        let mut reported: Vec<&Span> = Vec::new();
        for item in &items {
            let (rate, problem) = match &item.node {
                // Keep the count right so no second error claims a wrong number of rates.
                Item::Number(Number::Float(x)) if !x.is_finite() => (
                    0.0,
                    Some(Diagnostic::new(
                        item.span.clone(),
                        "this number is too large",
                    )),
                ),
                Item::Word(w) => (
                    0.0,
                    Some(Diagnostic::new(
                        item.span.clone(),
                        format!("rates are numbers, found `{w}`"),
                    )),
                ),
                Item::Number(n) => {
                    let rate = match n {
                        Number::Float(x) => *x,
                        Number::Int(t) => t.parse::<f64>().unwrap_or(f64::INFINITY),
                    };
                    let text = match n {
                        Number::Int(t) => t.clone(),
                        Number::Float(_) => rate.to_string(),
                    };
                    let outside = !(0.0..1.0).contains(&rate);
                    let d = outside.then(|| {
                        Diagnostic::new(item.span.clone(), format!("rate {text} is outside [0, 1)"))
                            .with_help("a rate is the fraction of filters pruned; 0 keeps them all")
                    });
                    (rate, d)
                }
            };
            if let Some(d) = problem {
                if !reported.contains(&&item.span) {
                    reported.push(&item.span);
                    self.errors.push(d);
                }
            }
            rates.push(rate);
        }
        let mut ok = reported.is_empty();
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
}

pub(super) fn preset_cfg(cfg: &[CfgItem], span: Span) -> Cfg {
    Cfg {
        items: cfg.iter().map(|i| (*i, span.clone())).collect(),
        span,
    }
}

pub(super) fn feature_convs(cfg: &Cfg) -> usize {
    cfg.items[..cfg.items.len().saturating_sub(1)]
        .iter()
        .filter(|(i, _)| matches!(i, CfgItem::Conv(_)))
        .count()
}
