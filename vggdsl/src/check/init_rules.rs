//! `init`: rules typed against the language's layer kinds, tensors, distributions and variables,
//! then evaluated for every layer they touch so that no rule can give a NaN or a negative std.

use super::suggest::{count, found, with_suggestion};
use super::Checker;
use crate::ast::{self, Number, Span, Spanned, Value};
use crate::diagnostic::Diagnostic;
use crate::init::{self, Op};
use crate::ir::Architecture;
use crate::spec::{self, Dist, Expr, InitRule, Target};

/// The words `init` takes for whole rule sets.
const WORDS: [&str; 2] = ["default", "pytorch"];

/// `default` is the seed's `_initialize_weights`; `pytorch` keeps PyTorch's own defaults.
pub(super) fn named(word: &str) -> Option<Vec<InitRule>> {
    match word {
        "default" => Some(spec::seed_rules()),
        "pytorch" => Some(Vec::new()),
        _ => None,
    }
}

impl Checker {
    pub(super) fn init(&mut self, v: &Spanned<Value>) -> Option<(Vec<InitRule>, Vec<Span>)> {
        let rules = match &v.node {
            Value::Word(w) if named(w).is_some() => return named(w).map(|r| (r, Vec::new())),
            Value::Block(rules) => rules,
            other => {
                let found = found(other);
                let d = Diagnostic::new(
                    v.span.clone(),
                    format!("`init` takes `default`, `pytorch` or a block of rules, found {found}"),
                );
                self.errors.push(match other {
                    Value::Word(w) => with_suggestion(d, w, &WORDS, "choices are"),
                    _ => d,
                });
                return None;
            }
        };
        let mut out: Vec<InitRule> = Vec::new();
        let mut spans: Vec<Span> = Vec::new();
        let mut ok = true;
        for rule in rules {
            match self.rule(rule) {
                Some(r) => {
                    let first = out
                        .iter()
                        .position(|o| o.target == r.target && o.tensor == r.tensor);
                    if let Some(first) = first {
                        let what = format!("{}.{}", rule.layer.node, rule.tensor.node);
                        self.errors.push(
                            Diagnostic::new(
                                rule.layer.span.start..rule.tensor.span.end,
                                format!("`{what}` has two rules"),
                            )
                            .with_label(spans[first].clone(), "the first one"),
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

    pub(super) fn rule(&mut self, rule: &ast::Rule) -> Option<InitRule> {
        let kinds: Vec<&str> = Target::ALL.iter().map(|(n, _)| *n).collect();
        let target = Target::ALL
            .iter()
            .find(|(n, _)| *n == rule.layer.node)
            .map(|(_, t)| *t);
        let tensor = spec::TENSORS
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
                &spec::TENSORS,
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

    pub(super) fn dist(&mut self, call: &Spanned<ast::Call>) -> Option<Dist> {
        let name = &call.node.name;
        let Some((_, params)) = spec::DISTRIBUTIONS.iter().find(|(n, _)| *n == name.node) else {
            let names: Vec<&str> = spec::DISTRIBUTIONS.iter().map(|(n, _)| *n).collect();
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

    pub(super) fn expr(&mut self, e: &Spanned<ast::Expr>) -> Option<Expr> {
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
            ast::Expr::Var(v) => match spec::VARIABLES.iter().find(|(n, _)| n == v) {
                Some((n, _)) => Expr::Var(n),
                None => {
                    let names: Vec<&str> = spec::VARIABLES.iter().map(|(n, _)| *n).collect();
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
    pub(super) fn init_values(
        &mut self,
        net: &Architecture,
        spans: &[Span],
        bn: Option<&Spanned<Value>>,
    ) {
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
            let layers = net.layers().filter(|(_, l)| init::applies(rule, &l.kind));
            for (section, layer) in layers {
                let problem = match init::evaluate(rule, &layer.kind) {
                    Op::Normal { mean, std } => param_problem(&[("mean", mean), ("std", std)])
                        .or_else(|| {
                            (std < 0.0).then(|| format!("a negative std ({})", short(std)))
                        }),
                    Op::Uniform { low, high } => param_problem(&[("low", low), ("high", high)])
                        .or_else(|| {
                            (low > high).then(|| {
                                format!(
                                    "a low bound ({}) above its high bound ({})",
                                    short(low),
                                    short(high)
                                )
                            })
                        }),
                    Op::Constant(v) => param_problem(&[("value", v)]),
                };
                if let Some(problem) = problem {
                    self.error(
                        span.clone(),
                        format!(
                            "this rule gives {section}.{}.{} {problem}",
                            layer.name, rule.tensor
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
