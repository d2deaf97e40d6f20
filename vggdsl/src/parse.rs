//! Text to syntax tree, through the one pest grammar.

use crate::ast::*;
use crate::diagnostic::Diagnostic;
use pest::iterators::Pair;
use pest::Parser as _;

#[derive(pest_derive::Parser)]
#[grammar = "grammar.pest"]
struct Grammar;

/// How deeply brackets may nest; deeper input is refused before pest recurses into it.
const MAX_NESTING: usize = 64;

/// Parses a whole source text (a `.vgg` file or the inside of a `vgg!` call).
pub fn parse(source: &str) -> Result<File, Diagnostic> {
    check_nesting(source)?;
    let file = Grammar::parse(Rule::file, source)
        .map_err(syntax_error)?
        .next()
        .expect("the file rule always yields one pair");
    let models = file
        .into_inner()
        .filter(|p| p.as_rule() == Rule::model)
        .map(model)
        .collect();
    Ok(File { models })
}

fn check_nesting(source: &str) -> Result<(), Diagnostic> {
    let mut depth = 0usize;
    for (i, c) in source.char_indices() {
        match c {
            '(' | '[' | '{' | '<' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(Diagnostic::new(
                        i..i + 1,
                        format!("brackets nest more than {MAX_NESTING} deep"),
                    ));
                }
            }
            ')' | ']' | '}' | '>' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

fn syntax_error(e: pest::error::Error<Rule>) -> Diagnostic {
    use pest::error::{ErrorVariant, InputLocation};
    let start = match e.location {
        InputLocation::Pos(p) => p,
        InputLocation::Span((s, _)) => s,
    };
    let found = e.line().get(e.line_col_char()..).unwrap_or("");
    let found_token = token_at(found);
    let span = start..start + found_token.len().max(1);
    let expected = match &e.variant {
        ErrorVariant::ParsingError { positives, .. } => expected_list(positives),
        ErrorVariant::CustomError { message } => message.clone(),
    };
    let found = if found_token.is_empty() {
        "the end of the input".to_owned()
    } else {
        format!("`{found_token}`")
    };
    Diagnostic::new(span, format!("expected {expected}, found {found}"))
}

/// Columns from pest count characters; this finds the text the error points at.
trait LineColChar {
    fn line_col_char(&self) -> usize;
}

impl LineColChar for pest::error::Error<Rule> {
    fn line_col_char(&self) -> usize {
        let col = match self.line_col {
            pest::error::LineColLocation::Pos((_, c)) => c,
            pest::error::LineColLocation::Span((_, c), _) => c,
        };
        self.line()
            .char_indices()
            .nth(col - 1)
            .map_or(self.line().len(), |(i, _)| i)
    }
}

/// The word, number or single symbol at the start of `rest`.
fn token_at(rest: &str) -> &str {
    let word_len = rest
        .char_indices()
        .find(|(_, c)| !(c.is_alphanumeric() || *c == '_' || *c == '.'))
        .map_or(rest.len(), |(i, _)| i);
    if word_len > 0 {
        &rest[..word_len]
    } else {
        rest.chars().next().map_or("", |c| &rest[..c.len_utf8()])
    }
}

fn expected_list(rules: &[Rule]) -> String {
    let mut names: Vec<&str> = rules.iter().map(|r| rule_name(*r)).collect();
    names.sort_unstable();
    names.dedup();
    match names.as_slice() {
        [] => "something else".to_owned(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// Plain names for the grammar's rules, as a user would call them.
fn rule_name(r: Rule) -> &'static str {
    match r {
        Rule::EOI => "the end of the input",
        Rule::model | Rule::block_model | Rule::compact_model => "a model",
        Rule::visibility => "`pub`",
        Rule::path => "a path",
        Rule::setting => "a setting such as `bn = true`",
        Rule::value => "a value",
        Rule::list_sum | Rule::list_term | Rule::list => "a list",
        Rule::item => "a list item",
        Rule::block => "`{`",
        Rule::rule => "an init rule such as `conv.weight = normal(0, 0.01)`",
        Rule::call => "a call such as `normal(0, 0.01)`",
        Rule::expr | Rule::term | Rule::factor => "an expression",
        Rule::add_op => "`+` or `-`",
        Rule::mul_op => "`*` or `/`",
        Rule::neg | Rule::minus => "`-`",
        Rule::number | Rule::float | Rule::exponent => "a number",
        Rule::integer => "an integer",
        Rule::ident => "a name",
        Rule::file | Rule::WHITESPACE | Rule::COMMENT => "something else",
    }
}

fn span(pair: &Pair<Rule>) -> Span {
    pair.as_span().start()..pair.as_span().end()
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
    let settings = inner.map(setting).collect();
    Model {
        visibility,
        name,
        settings,
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
