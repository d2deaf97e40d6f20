//! pest's failure as one sentence: "expected …, found …" at the token where the input went
//! wrong, with the names a user knows (rules and literal tokens), and a hint for the construct it
//! was in.

use super::Rule;
use crate::ast::Span;
use crate::diagnostic::Diagnostic;

pub(super) fn syntax_error(e: pest::error::Error<Rule>, source: &str) -> Diagnostic {
    use pest::error::{ErrorVariant, InputLocation};
    let pos = match e.location {
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
    let attempt = e
        .parse_attempts()
        .filter(|a| a.max_position >= pos)
        .map(|a| Attempt {
            max_position: a.max_position,
            deepest: a
                .call_stacks()
                .iter()
                .filter_map(|stack| stack.deepest.get_rule().copied())
                .collect(),
            // pest does not export the token type; its text is a literal token, `E` for the
            // exponent, `0..9` for a range or BUILTIN_RULE, and only literals are named here.
            tokens: a
                .expected_tokens()
                .into_iter()
                .map(|t| t.to_string())
                .collect(),
        });
    let (furthest, rules, mut context) = expected_rules(attempt.as_ref(), pos, positives);
    let mut names = expected_names(attempt.as_ref(), &rules);
    // A number glued to letters (`64u8`, `1.5e`): say so rather than what the grammar expected.
    if let Some(d) = [pos, furthest]
        .iter()
        .find_map(|&at| glued_number(source, at))
    {
        return d;
    }
    if let Some(d) = train_written_as_a_setting(source, furthest) {
        return d;
    }
    narrow(&mut names, &rules, source, furthest);
    if source[furthest..].starts_with('<') && names.iter().any(|n| n == "`{`") {
        context = Some("the compact form has no `model` keyword: `Name<cfg = default>`");
    }
    let (span, found) = found_at(source, furthest);
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

/// pest's furthest parse attempt, as plain data: where it got to, the deepest rule of each of
/// its call stacks, and the tokens it expected there.
struct Attempt {
    max_position: usize,
    deepest: Vec<Rule>,
    tokens: Vec<String>,
}

/// Where the input went wrong (the furthest attempt, past pest's own position), the rules that
/// could have come there, and the hint of the construct they are in.
fn expected_rules(
    attempt: Option<&Attempt>,
    pos: usize,
    positives: Vec<Rule>,
) -> (usize, Vec<Rule>, Option<&'static str>) {
    let (mut pos, mut rules, mut context) = (pos, positives, None);
    if let Some(a) = attempt {
        if a.max_position > pos {
            pos = a.max_position;
            rules.clear();
        }
        for &r in &a.deepest {
            match context_help(r) {
                Some(help) => context = context.or(Some(help)),
                None if is_leaf(r) => rules.push(r),
                None => {}
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
    (pos, rules, context)
}

/// What "expected …" names: the rules, then the literal tokens not already inside them.
fn expected_names(attempt: Option<&Attempt>, rules: &[Rule]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for r in rules {
        let name = rule_name(*r).to_owned();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    let Some(a) = attempt else {
        return names;
    };
    let mut tokens: Vec<&String> = a
        .tokens
        .iter()
        .filter(|t| !is_inner_token(t, rules) && !t.contains("..") && *t != "BUILTIN_RULE")
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
    names
}

/// The number glued to letters around `at` (`64u8`, `1.5e`), as its own error.
fn glued_number(source: &str, at: usize) -> Option<Diagnostic> {
    let start = word_start(source, at);
    let word = token_at(&source[start..]);
    let glued = word.starts_with(|c: char| c.is_ascii_digit())
        && word.contains(|c: char| c.is_alphabetic() || c == '_')
        && !is_float(word);
    glued.then(|| {
        Diagnostic::new(
            start..start + word.len(),
            format!("`{word}` is not a number"),
        )
        .with_help("numbers are plain digits such as 64, 0.5 or 1e-3, without a suffix")
    })
}

/// Drops the names not worth saying at `pos`.
fn narrow(names: &mut Vec<String>, rules: &[Rule], source: &str, pos: usize) {
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
}

/// Where the error points and what it found there: the token at `pos` (a whole number when
/// `pos` is inside one), white space, the end of a line or of the input.
fn found_at(source: &str, mut pos: usize) -> (Span, String) {
    // Inside a number (`* 2.5` where an integer must be): show the whole number.
    let start = word_start(source, pos);
    if start < pos && source[start..].starts_with(|c: char| c.is_ascii_digit()) {
        pos = start;
    }
    let found_token = token_at(&source[pos..]);
    if found_token.is_empty() {
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
    }
}

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

/// Rules that name a construct rather than a token: a failure inside them gets their shape as
/// the hint.
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
