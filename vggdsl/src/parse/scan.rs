//! What pest's own messages would point far from: brackets that do not match or nest too deeply,
//! block comments never closed, characters outside ASCII; and init rules with too many operators.

use pest::iterators::Pair;

use super::{Rule, MAX_NESTING, MAX_OPERATORS};
use crate::diagnostic::Diagnostic;

/// Refuses, before pest sees them, brackets that do not match or nest too deeply and block
/// comments never closed; pest's own messages for these point far from the cause. Comments are
/// skipped as the grammar skips them.
pub(super) fn scan(source: &str) -> Result<(), Diagnostic> {
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
            c @ (b')' | b']' | b'}' | b'>') => close(&mut open, c, i)?,
            c if !c.is_ascii() => return Err(non_ascii(source, i)),
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

/// Closer `c` at byte `i`: it must close the innermost open bracket.
fn close(open: &mut Vec<(u8, usize)>, c: u8, i: usize) -> Result<(), Diagnostic> {
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
    Ok(())
}

/// The character outside ASCII at byte `i`: a letter in a name, or a stray character.
fn non_ascii(source: &str, i: usize) -> Diagnostic {
    let ch = source[i..].chars().next().expect("a character starts here");
    let at = i..i + ch.len_utf8();
    if ch.is_alphanumeric() {
        Diagnostic::new(at, format!("names are ASCII, found `{ch}`"))
            .with_help("use letters a-z and A-Z, digits and `_`")
    } else {
        Diagnostic::new(at, format!("unexpected character `{ch}`"))
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
pub(super) fn check_operators(file: &Pair<Rule>) -> Result<(), Diagnostic> {
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
