//! Wording shared by the checks: "did you mean" suggestions, what a value is, plurals.

use crate::ast::Value;
use crate::diagnostic::Diagnostic;

/// What a value is, naming words: "`yes`", "an integer".
pub(super) fn found(v: &Value) -> String {
    match v {
        Value::Word(w) => format!("`{w}`"),
        other => other.describe().to_owned(),
    }
}

/// `1 rate`, `13 rates`.
pub(super) fn count(n: usize, noun: &str) -> String {
    format!("{n} {}", plural(n, noun))
}

pub(super) fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        noun.to_owned()
    } else {
        format!("{noun}s")
    }
}

/// Adds "did you mean `x`?" when a known word is close, else lists the choices.
pub(super) fn with_suggestion(
    d: Diagnostic,
    word: &str,
    choices: &[&str],
    plural: &str,
) -> Diagnostic {
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
