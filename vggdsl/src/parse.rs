//! Text to syntax tree, through the one pest grammar.

use crate::ast::*;
use crate::diagnostic::Diagnostic;
use pest::iterators::Pair;
use pest::Parser as _;

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

/// Refuses, before pest sees them, brackets that do not match or nest too deeply and block
/// comments never closed; pest's own messages for these point far from the cause. Comments are
/// skipped as the grammar skips them.
fn scan(source: &str) -> Result<(), Diagnostic> {
    let bytes = source.as_bytes();
    let mut open: Vec<(u8, usize)> = Vec::new();
    // A byte-order mark is no text (the grammar skips it too).
    let mut i = if source.starts_with('\u{feff}') { 3 } else { 0 };
    while i < bytes.len() {
        match bytes[i] {
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                i = source[i..].find('\n').map_or(bytes.len(), |n| i + n);
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => match source[i + 2..].find("*/") {
                Some(n) => {
                    i += n + 4;
                    continue;
                }
                None => {
                    return Err(
                        Diagnostic::new(i..i + 2, "this block comment is never closed")
                            .with_help("close it with `*/`"),
                    );
                }
            },
            c @ (b'(' | b'[' | b'{' | b'<') => {
                open.push((c, i));
                if open.len() > MAX_NESTING {
                    return Err(Diagnostic::new(
                        i..i + 1,
                        format!("brackets nest more than {MAX_NESTING} deep"),
                    ));
                }
            }
            c @ (b')' | b']' | b'}' | b'>') => {
                let wanted = opener(c);
                // Nothing of its kind is open: the closer itself is the stray one.
                if !open.iter().any(|(o, _)| *o == wanted) {
                    return Err(Diagnostic::new(
                        i..i + 1,
                        format!("this `{}` has no matching `{}`", c as char, wanted as char),
                    ));
                }
                let (o, at) = open.pop().expect("an opener of its kind is open");
                if o != wanted {
                    return Err(Diagnostic::new(
                        i..i + 1,
                        format!(
                            "this `{}` does not match the `{}` before it",
                            c as char, o as char
                        ),
                    )
                    .with_help(format!(
                        "close the `{}` with `{}` first",
                        o as char,
                        closer(o) as char
                    ))
                    .with_label(at..at + 1, "opened here"));
                }
            }
            c if !c.is_ascii() => {
                let ch = source[i..].chars().next().expect("a character starts here");
                let at = i..i + ch.len_utf8();
                return Err(if ch.is_alphanumeric() {
                    Diagnostic::new(at, format!("names are ASCII, found `{ch}`"))
                        .with_help("use letters a-z and A-Z, digits and `_`")
                } else {
                    Diagnostic::new(at, format!("unexpected character `{ch}`"))
                });
            }
            _ => {}
        }
        i += 1;
    }
    match open.pop() {
        Some((o, at)) => Err(Diagnostic::new(
            at..at + 1,
            format!("this `{}` is never closed", o as char),
        )
        .with_help(format!("close it with `{}`", closer(o) as char))),
        None => Ok(()),
    }
}

fn opener(close: u8) -> u8 {
    match close {
        b')' => b'(',
        b']' => b'[',
        b'}' => b'{',
        _ => b'<',
    }
}

fn closer(open: u8) -> u8 {
    match open {
        b'(' => b')',
        b'[' => b']',
        b'{' => b'}',
        _ => b'>',
    }
}

/// Refuses init rules with more than [`MAX_OPERATORS`] operators.
fn check_operators(file: &Pair<Rule>) -> Result<(), Diagnostic> {
    for rule in file.clone().into_inner().flatten() {
        if rule.as_rule() != Rule::rule {
            continue;
        }
        let count = rule
            .clone()
            .into_inner()
            .flatten()
            .filter(|p| {
                matches!(
                    p.as_rule(),
                    Rule::add_op | Rule::mul_op | Rule::neg | Rule::call
                )
            })
            .count();
        // The rule's own distribution call is not an operator.
        if count > MAX_OPERATORS + 1 {
            let s = rule.as_span();
            let head = &s.as_str()[..s.as_str().find('=').unwrap_or(0)];
            let end = s.start() + head.trim_end().len();
            return Err(Diagnostic::new(
                s.start()..end,
                format!("this init rule has more than {MAX_OPERATORS} operators"),
            ));
        }
    }
    Ok(())
}

fn syntax_error(e: pest::error::Error<Rule>, source: &str) -> Diagnostic {
    use pest::error::{ErrorVariant, InputLocation};
    let mut pos = match e.location {
        InputLocation::Pos(p) => p,
        InputLocation::Span((s, _)) => s,
    };
    let positives = match &e.variant {
        ErrorVariant::ParsingError { positives, .. } => positives.clone(),
        // pest's own limits ("call limit reached"); the nesting scan normally comes first.
        ErrorVariant::CustomError { message } => {
            let end = pos + token_at(&source[pos..]).len();
            return Diagnostic::new(pos..end, format!("the input is too complex: {message}"));
        }
    };
    let positives_pos = pos;
    let mut names: Vec<String> = Vec::new();
    let mut context = None;
    let attempts = e.parse_attempts().filter(|a| a.max_position >= pos);
    let mut rules: Vec<Rule> = positives;
    if let Some(a) = &attempts {
        if a.max_position > pos {
            pos = a.max_position;
            rules.clear();
        }
        for stack in a.call_stacks() {
            if let Some(&r) = stack.deepest.get_rule() {
                match context_help(r) {
                    Some(help) => context = context.or(Some(help)),
                    None if is_leaf(r) => rules.push(r),
                    None => {}
                }
            }
        }
    }
    rules.retain(|r| is_leaf(*r) || *r == Rule::model);
    if rules.contains(&Rule::model) {
        // Between models: "a model" says it all.
        rules.retain(|r| matches!(r, Rule::model | Rule::EOI));
        rules.sort_by_key(|r| *r == Rule::EOI);
        context = None;
    }
    for r in &rules {
        let name = rule_name(*r).to_owned();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    if let Some(a) = &attempts {
        let mut tokens: Vec<String> = a
            .expected_tokens()
            .into_iter()
            // pest does not export the token type; its text is a literal token, `E` for the
            // exponent, `0..9` for a range or BUILTIN_RULE, and only literals are named here.
            .map(|t| t.to_string())
            .filter(|t| !is_inner_token(t, &rules) && !t.contains("..") && t != "BUILTIN_RULE")
            .collect();
        tokens.sort_by_key(|t| token_rank(t));
        let operators = tokens.iter().filter(|t| is_operator(t)).count();
        for t in &tokens {
            if operators > 1 && is_operator(t) {
                continue;
            }
            names.push(format!("`{t}`"));
        }
        // Several operators are "an operator", which also covers the names of the operator rules.
        names.retain(|n| operators < 2 || !(n.contains("`+`") || n.contains("`*`")));
        if operators > 1 {
            names.push("an operator".to_owned());
        }
    }
    // A number glued to letters (`64u8`, `1.5e`): say so rather than what the grammar expected.
    for at in [positives_pos, pos] {
        let start = word_start(source, at);
        let word = token_at(&source[start..]);
        if word.starts_with(|c: char| c.is_ascii_digit())
            && word.contains(|c: char| c.is_alphabetic() || c == '_')
            && !is_float(word)
        {
            return Diagnostic::new(
                start..start + word.len(),
                format!("`{word}` is not a number"),
            )
            .with_help("numbers are plain digits such as 64, 0.5 or 1e-3, without a suffix");
        }
    }
    if let Some(d) = train_written_as_a_setting(source, pos) {
        return d;
    }
    if rules.contains(&Rule::call) {
        names.retain(|n| n != rule_name(Rule::ident));
    }
    // `train` starts a block where a setting's name may stand: "a name" says it.
    if names.iter().any(|n| n == rule_name(Rule::ident)) {
        names.retain(|n| n != "`train`");
    }
    // Right after a name, "a name" is only the name going on: not worth saying.
    let after_word = source[..pos]
        .chars()
        .next_back()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    if after_word && names.len() > 1 {
        names.retain(|n| n != rule_name(Rule::ident));
    }
    if source[pos..].starts_with('<') && names.iter().any(|n| n == "`{`") {
        context = Some("the compact form has no `model` keyword: `Name<cfg = default>`");
    }
    // Inside a number (`* 2.5` where an integer must be): show the whole number.
    let start = word_start(source, pos);
    if start < pos && source[start..].starts_with(|c: char| c.is_ascii_digit()) {
        pos = start;
    }
    let rest = &source[pos..];
    let found_token = token_at(rest);
    let (span, found) = if found_token.is_empty() {
        // The end of the input: point just after the last token, not at trailing blank lines.
        let end = source[..pos].trim_end().len();
        (end..end, "the end of the input".to_owned())
    } else if found_token.trim().is_empty() {
        let what = if found_token.contains('\n') {
            "the end of the line"
        } else {
            "white space"
        };
        (pos..pos, what.to_owned())
    } else {
        (pos..pos + found_token.len(), format!("`{found_token}`"))
    };
    let expected = match names.as_slice() {
        [] => "something else".to_owned(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    };
    let d = Diagnostic::new(span, format!("expected {expected}, found {found}"));
    match context {
        Some(help) => d.with_help(help),
        None => d,
    }
}

/// Rules that name a construct rather than a token: a failure inside them gets their shape as
/// the hint.
/// `train = { epochs = 30 }` reads as a block of init rules that fails inside: say what was
/// meant, at the word `train`.
fn train_written_as_a_setting(source: &str, pos: usize) -> Option<Diagnostic> {
    let open = source[..pos].rfind('{')?;
    if source[open..pos].contains('}') {
        return None;
    }
    let key = source[..open].trim_end().strip_suffix('=')?.trim_end();
    let start = key.strip_suffix("train")?.len();
    let whole_word = !key[..start].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_');
    whole_word.then(|| {
        Diagnostic::new(start..key.len(), "`train` is a block, not a setting")
            .with_help("write `train { epochs = 30 }` without `=`")
    })
}

fn context_help(r: Rule) -> Option<&'static str> {
    Some(match r {
        Rule::setting => "a setting looks like `bn = true`",
        Rule::rule => "an init rule looks like `conv.weight = normal(0, 0.01)`",
        Rule::block_model | Rule::model => "a model looks like `model Name { cfg = default }`",
        Rule::compact_model => "the compact form looks like `Name<cfg = default, bn = true>`",
        Rule::visibility => {
            "visibility is `pub`, `pub(crate)`, `pub(super)`, `pub(self)` or `pub(in path)`"
        }
        _ => return None,
    })
}

/// Rules that stand for one token or value, named in "expected …" as what may come there.
fn is_leaf(r: Rule) -> bool {
    matches!(
        r,
        Rule::EOI
            | Rule::ident
            | Rule::path
            | Rule::number
            | Rule::integer
            | Rule::float
            | Rule::item
            | Rule::value
            | Rule::expr
            | Rule::term
            | Rule::factor
            | Rule::call
    )
}

/// Literal tokens that are parts of the rules already named (white space, comment openers,
/// the insides of names and numbers, keywords of a model).
fn is_inner_token(t: &str, rules: &[Rule]) -> bool {
    let has = |r: Rule| rules.contains(&r);
    let number = has(Rule::number) || has(Rule::item) || has(Rule::value) || has(Rule::factor);
    matches!(t, " " | "\t" | "\r" | "\n" | "//" | "/*" | "_")
        || (t == "-" && number)
        || (matches!(t, "." | "e" | "E") && (number || has(Rule::float) || has(Rule::integer)))
        || (matches!(t, "model" | "pub") && has(Rule::model))
        || (matches!(t, "[" | "{") && has(Rule::value))
}

fn is_operator(t: &str) -> bool {
    matches!(t, "+" | "-" | "*" | "/")
}

/// Separators and closers first, then the rest, operators last.
fn token_rank(t: &str) -> (u8, String) {
    let rank = match t {
        "=" | "." | "," => 0,
        ")" | "]" | "}" | ">" => 1,
        _ if is_operator(t) => 3,
        _ => 2,
    };
    (rank, t.to_owned())
}

/// Where the word (name or number) around byte `at` starts.
fn word_start(source: &str, at: usize) -> usize {
    source[..at]
        .char_indices()
        .rev()
        .take_while(|(_, c)| c.is_alphanumeric() || *c == '_' || *c == '.')
        .last()
        .map_or(at, |(i, _)| i)
}

fn is_float(word: &str) -> bool {
    word.parse::<f64>().is_ok()
        && !word.contains(|c: char| c.is_alphabetic() && c != 'e' && c != 'E')
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

/// Plain names for the grammar's rules, as a user would call them.
fn rule_name(r: Rule) -> &'static str {
    match r {
        Rule::EOI => "the end of the input",
        Rule::model | Rule::block_model | Rule::compact_model => "a model",
        Rule::visibility => "`pub`",
        Rule::path => "a path",
        Rule::setting => "a setting such as `bn = true`",
        Rule::train => "a `train { … }` block",
        Rule::value => "a value (a word, a number, a list or a block)",
        Rule::list_sum | Rule::list_term | Rule::list => "a list",
        Rule::item => "a list item",
        Rule::block => "`{`",
        Rule::rule => "an init rule such as `conv.weight = normal(0, 0.01)`",
        Rule::call => "a distribution such as `normal(0, 0.01)`",
        Rule::expr | Rule::term | Rule::factor => "an expression",
        Rule::add_op => "`+` or `-`",
        Rule::mul_op => "`*` or `/`",
        Rule::neg | Rule::minus => "`-`",
        Rule::number | Rule::float | Rule::exponent => "a number",
        Rule::integer => "an integer",
        Rule::ident => "a name",
        Rule::keyword => "`model`",
        Rule::file | Rule::WHITESPACE | Rule::COMMENT => "something else",
    }
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
