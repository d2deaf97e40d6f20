//! Text to syntax tree, through the one pest grammar: [`scan`] refuses unmatched brackets and
//! unclosed comments before pest sees them, [`syntax_error`] turns pest's failures into one
//! sentence, and this file builds the tree.

use crate::ast::*;
use crate::diagnostic::Diagnostic;
use pest::iterators::Pair;
use pest::Parser as _;

mod scan;
mod syntax_error;

use scan::{check_operators, scan};
use syntax_error::syntax_error;

#[derive(pest_derive::Parser)]
#[grammar = "grammar.pest"]
struct Grammar;

/// How deeply brackets may nest; deeper input is refused before pest recurses into it.
pub const MAX_NESTING: usize = 64;

/// How many operators (`+ - * /`, unary `-`, calls) one init rule may use, so that checking and
/// evaluating its expression tree never recurses deeply.
pub const MAX_OPERATORS: usize = 256;

/// Parses a whole source text (a `.vgg` file or the inside of a `vgg!` call).
pub fn parse(source: &str) -> Result<File, Diagnostic> {
    // Makes pest record the literal tokens it expected, for "expected `=`" messages.
    pest::set_error_detail(true);
    scan(source)?;
    let file = Grammar::parse(Rule::file, source)
        .map_err(|e| syntax_error(e, source))?
        .next()
        .expect("the file rule always yields one pair");
    check_operators(&file)?;
    let models = file
        .into_inner()
        .filter(|p| p.as_rule() == Rule::model)
        .map(model)
        .collect();
    Ok(File { models })
}

/// The pair's text without the white space and comments the grammar skipped after its last
/// token (a `list_sum` that tried to read one more `+ [..]` ends with them).
fn span(pair: &Pair<Rule>) -> Span {
    let start = pair.as_span().start();
    start..start + trim_skipped(pair.as_str()).len()
}

fn trim_skipped(mut text: &str) -> &str {
    loop {
        let trimmed = text.trim_end();
        let without_comment = if trimmed.ends_with("*/") {
            trimmed.rfind("/*").map(|i| &trimmed[..i])
        } else {
            // No string literals: a `//` on the last line always starts a comment.
            let line = trimmed.rfind('\n').map_or(0, |i| i + 1);
            trimmed[line..].find("//").map(|i| &trimmed[..line + i])
        };
        match without_comment {
            Some(shorter) => text = shorter,
            None => return trimmed,
        }
    }
}

fn ident(pair: Pair<Rule>) -> Spanned<String> {
    Spanned::new(pair.as_str().to_owned(), span(&pair))
}

fn model(pair: Pair<Rule>) -> Model {
    let model_span = span(&pair);
    let mut visibility = None;
    let mut body = None;
    for p in pair.into_inner() {
        match p.as_rule() {
            Rule::visibility => {
                // Normalise white space inside `pub ( crate )`, as the macro's text has it.
                let text: String = p.as_str().split_whitespace().collect();
                visibility = Some(Spanned::new(text.replace("pub(in", "pub(in "), span(&p)));
            }
            _ => body = Some(p),
        }
    }
    let mut inner = body.expect("a model has a body").into_inner();
    let name = ident(inner.next().expect("a model has a name"));
    let (mut settings, mut train) = (Vec::new(), Vec::new());
    for p in inner {
        match p.as_rule() {
            Rule::train => {
                let keyword = p.as_span().start()..p.as_span().start() + "train".len();
                let settings = p.into_inner().map(setting).collect();
                train.push(TrainBlock { keyword, settings });
            }
            _ => settings.push(setting(p)),
        }
    }
    Model {
        visibility,
        name,
        settings,
        train,
        span: model_span,
    }
}

fn setting(pair: Pair<Rule>) -> Setting {
    let mut inner = pair.into_inner();
    let key = ident(inner.next().expect("setting key"));
    let value_pair = inner.next().expect("setting value");
    let value_span = span(&value_pair);
    let v = value_pair.into_inner().next().expect("value alternative");
    let value = match v.as_rule() {
        Rule::block => Value::Block(v.into_inner().map(rule).collect()),
        Rule::list_sum => Value::List(v.into_inner().map(list_term).collect()),
        Rule::number => Value::Number(number(v)),
        _ => Value::Word(v.as_str().to_owned()),
    };
    Setting {
        key,
        value: Spanned::new(value, value_span),
    }
}

fn number(pair: Pair<Rule>) -> Number {
    let text: String = pair.as_str().split_whitespace().collect();
    let is_float = pair.into_inner().any(|p| p.as_rule() == Rule::float);
    if is_float {
        // The grammar admits only digits, a point and an exponent, which f64 always parses
        // (out-of-range values become infinite and are refused by the checker).
        Number::Float(text.parse().unwrap_or(f64::INFINITY))
    } else {
        Number::Int(text)
    }
}

fn list_term(pair: Pair<Rule>) -> ListTerm {
    let mut inner = pair.into_inner();
    let list = inner.next().expect("list term has a list");
    let items = list
        .into_inner()
        .map(|item| {
            let s = span(&item);
            let p = item.into_inner().next().expect("item alternative");
            let node = match p.as_rule() {
                Rule::number => Item::Number(number(p)),
                _ => Item::Word(p.as_str().to_owned()),
            };
            Spanned::new(node, s)
        })
        .collect();
    let repeat = inner.next().map(ident);
    ListTerm { items, repeat }
}

fn rule(pair: Pair<Rule>) -> crate::ast::Rule {
    let mut inner = pair.into_inner();
    let layer = ident(inner.next().expect("rule layer"));
    let tensor = ident(inner.next().expect("rule tensor"));
    let call_pair = inner.next().expect("rule call");
    crate::ast::Rule {
        layer,
        tensor,
        call: Spanned::new(call(call_pair.clone()), span(&call_pair)),
    }
}

fn call(pair: Pair<Rule>) -> Call {
    let mut inner = pair.into_inner();
    let name = ident(inner.next().expect("call name"));
    let args = inner.map(expr).collect();
    Call { name, args }
}

fn expr(pair: Pair<Rule>) -> Spanned<Expr> {
    let s = span(&pair);
    match pair.as_rule() {
        Rule::expr | Rule::term => {
            let mut inner = pair.into_inner();
            let mut lhs = expr(inner.next().expect("operand"));
            while let Some(op) = inner.next() {
                let op = match op.as_str() {
                    "+" => BinOp::Add,
                    "-" => BinOp::Sub,
                    "*" => BinOp::Mul,
                    _ => BinOp::Div,
                };
                let rhs = expr(inner.next().expect("right operand"));
                let joined = lhs.span.start..rhs.span.end;
                lhs = Spanned::new(Expr::Binary(Box::new(lhs), op, Box::new(rhs)), joined);
            }
            lhs
        }
        Rule::factor => {
            let parts: Vec<_> = pair.into_inner().collect();
            let (negs, atom) = parts.split_at(parts.len() - 1);
            let mut e = expr(atom[0].clone());
            for n in negs.iter().rev() {
                e = Spanned::new(Expr::Neg(Box::new(e)), n.as_span().start()..s.end);
            }
            e
        }
        Rule::call => Spanned::new(Expr::Call(call(pair)), s),
        Rule::number => Spanned::new(Expr::Number(number(pair)), s),
        _ => Spanned::new(Expr::Var(pair.as_str().to_owned()), s),
    }
}
