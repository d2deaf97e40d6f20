//! Source-to-source edits of a model: what `vggdsl prune` writes as the pruned model's file.
//!
//! The edit works on the text, not on a re-printed syntax tree, so that everything the user wrote
//! (layout, comments, presets, the `init` and `train` blocks) stays byte for byte.

use crate::ast::{Model, Span};
use crate::codegen::cfg_text;
use crate::spec::CfgItem;
use crate::Architecture;

/// The settings `prune` writes, of [`crate::spec::KEYS`].
const KEY: &str = "compress_rate";
const ROUND_TO: &str = "round_to";
const CFG: &str = "cfg";

/// Model `model`'s text with its `compress_rate` set to `rates` (list text such as
/// `[0.95] + [0.5] * 12`): the value replaced when the model has the setting, else the setting
/// added after its last one (or first in an empty model). `comment` comes first, each of its
/// lines as a `//` comment. Returns the text and the span of `rates` in it.
///
/// `None` when `source` does not parse or has no model `model`; the result is not checked, which
/// is the caller's job (it says whether `rates` fits the model).
pub fn with_compress_rate(
    source: &str,
    model: &str,
    rates: &str,
    comment: &str,
) -> Option<(String, Span)> {
    with_setting(source, model, KEY, rates, comment)
}

/// [`with_compress_rate`]'s edit for `round_to`: the model's text with `round_to = n`, no comment.
pub fn with_round_to(source: &str, model: &str, n: i64) -> Option<String> {
    with_setting(source, model, ROUND_TO, &n.to_string(), "").map(|(text, _)| text)
}

/// `source` (one model's text, as [`with_compress_rate`] returns it) with model `model` renamed
/// `name`; `None` when it does not parse or has no model `model`.
pub fn with_name(source: &str, model: &str, name: &str) -> Option<String> {
    let file = crate::parse::parse(source).ok()?;
    let m = file.models.iter().find(|m| m.name.node == model)?;
    let span = m.name.span.clone();
    Some(format!(
        "{}{name}{}",
        &source[..span.start],
        &source[span.end..]
    ))
}

/// [`with_compress_rate`]'s edit for `cfg`: the model's text with `cfg = cfg`, no comment.
pub fn with_cfg(source: &str, model: &str, cfg: &str) -> Option<String> {
    with_setting(source, model, CFG, cfg, "").map(|(text, _)| text)
}

/// The cfg of `model`'s network with its convs at `widths`, in order (e.g. a pruned model's
/// widths: the cfg to declare it by to prune it again).
pub fn cfg_with_widths(model: &Architecture, widths: &[i64]) -> String {
    let mut widths = widths.iter().copied();
    let cfg: Vec<CfgItem> = model
        .spec
        .features()
        .iter()
        .map(|item| match item {
            CfgItem::Conv(c) => CfgItem::Conv(widths.next().unwrap_or(*c)),
            CfgItem::Pool => CfgItem::Pool,
        })
        .chain(model.spec.cfg.last().copied())
        .collect();
    cfg_text(&cfg)
}

/// Model `model`'s text with setting `key` set to `value`, as [`with_compress_rate`] says.
fn with_setting(
    source: &str,
    model: &str,
    key: &str,
    value: &str,
    comment: &str,
) -> Option<(String, Span)> {
    let file = crate::parse::parse(source).ok()?;
    let m = file.models.iter().find(|m| m.name.node == model)?;
    let mut out: String = comment.lines().map(|l| format!("// {l}\n")).collect();
    let (at, replace, before, after) = placement(source, m, key);
    out += &source[m.span.start..at];
    out += &before;
    let start = out.len();
    out += value;
    let span = start..out.len();
    out += &after;
    out += &source[at + replace..m.span.end];
    out.push('\n');
    Some((out, span))
}

/// The text of model `model`'s `compress_rate` value as written, if `source` parses and the
/// model sets it.
pub fn compress_rate<'a>(source: &'a str, model: &str) -> Option<&'a str> {
    let file = crate::parse::parse(source).ok()?;
    let m = file.models.iter().find(|m| m.name.node == model)?;
    let setting = m.settings.iter().find(|s| s.key.node == KEY)?;
    Some(&source[setting.value.span.clone()])
}

/// Where the value of `key` goes: the byte offset, how many bytes it replaces, and the text
/// around it.
fn placement(source: &str, m: &Model, key: &str) -> (usize, usize, String, String) {
    if let Some(s) = m.settings.iter().find(|s| s.key.node == key) {
        return (
            s.value.span.start,
            s.value.span.len(),
            String::new(),
            String::new(),
        );
    }
    let compact = source[skip_trivia(source, m.name.span.end)..].starts_with('<');
    match m.settings.iter().max_by_key(|s| s.value.span.end) {
        Some(last) if compact => (last.value.span.end, 0, format!(", {key} = "), String::new()),
        // A model on one line gets the setting on that line.
        Some(last) if !source[m.span.clone()].contains('\n') => {
            (last.value.span.end, 0, format!(" {key} = "), String::new())
        }
        // Otherwise on a line of its own after the last setting's, indented alike; a comment
        // that ends that line stays on it.
        Some(last) => {
            let end = last.value.span.end;
            let eol = source[end..].find('\n').map_or(source.len(), |i| end + i);
            let rest = source[end..eol].trim_start();
            let at = if rest.is_empty() || rest.starts_with("//") {
                eol
            } else {
                end
            };
            let line_start = source[..last.key.span.start]
                .rfind('\n')
                .map_or(0, |i| i + 1);
            let indent: String = source[line_start..last.key.span.start]
                .chars()
                .take_while(|c| c.is_whitespace())
                .collect();
            (at, 0, format!("\n{indent}{key} = "), String::new())
        }
        // Just inside the `{` or `<`.
        None => {
            let open = skip_trivia(source, m.name.span.end) + 1;
            let (before, after) = if compact {
                (format!("{key} = "), String::new())
            } else {
                (format!(" {key} = "), " ".to_owned())
            };
            (open, 0, before, after)
        }
    }
}

/// The offset of the first byte at or after `at` that is not white space or a comment.
fn skip_trivia(source: &str, mut at: usize) -> usize {
    loop {
        let rest = &source[at..];
        let trimmed = rest.trim_start();
        at += rest.len() - trimmed.len();
        if trimmed.starts_with("//") {
            at += trimmed.find('\n').unwrap_or(trimmed.len());
        } else if trimmed.starts_with("/*") {
            at += trimmed.find("*/").map_or(trimmed.len(), |i| i + 2);
        } else {
            return at;
        }
    }
}

/// Rates in the language's list syntax, runs of equal rates as `[r] * n`.
pub fn rate_list(rates: &[f64]) -> String {
    let mut terms: Vec<String> = Vec::new();
    let mut singles: Vec<String> = Vec::new();
    let mut i = 0;
    while i < rates.len() {
        let n = rates[i..].iter().take_while(|&&r| r == rates[i]).count();
        if n > 1 {
            if !singles.is_empty() {
                terms.push(format!("[{}]", singles.join(", ")));
                singles.clear();
            }
            terms.push(format!("[{}] * {n}", rates[i]));
        } else {
            singles.push(rates[i].to_string());
        }
        i += n;
    }
    if !singles.is_empty() {
        terms.push(format!("[{}]", singles.join(", ")));
    }
    terms.join(" + ")
}

#[cfg(test)]
mod tests {
    use super::{with_compress_rate, with_round_to, KEY, ROUND_TO};

    #[test]
    fn the_keys_are_settings() {
        assert!(crate::spec::KEYS.contains(&KEY));
        assert!(crate::spec::KEYS.contains(&ROUND_TO));
    }

    #[test]
    fn round_to_is_added_or_replaced_like_compress_rate() {
        let source = "model A {\n    cfg = [8, 8, M, 8, 16]\n}\n";
        let text = with_round_to(source, "A", 16).unwrap();
        assert_eq!(
            text,
            "model A {\n    cfg = [8, 8, M, 8, 16]\n    round_to = 16\n}\n"
        );
        let again = with_round_to(&text, "A", 8).unwrap();
        assert_eq!(
            again,
            "model A {\n    cfg = [8, 8, M, 8, 16]\n    round_to = 8\n}\n"
        );
        assert_eq!(
            crate::check_source(&again).unwrap()[0].spec.round_to,
            Some(8)
        );
    }

    fn rewrite(source: &str, name: &str) -> String {
        let (text, span) = with_compress_rate(source, name, "[0.5] * 3", "from x.vgg").unwrap();
        assert_eq!(&text[span], "[0.5] * 3");
        crate::check_source(&text).unwrap_or_else(|d| panic!("{text}\n{d:?}"));
        text
    }

    #[test]
    fn replaces_a_rate_and_keeps_the_rest() {
        let source = "// head\nmodel A { cfg = [8, 8, M, 8, 16] /* c */ compress_rate = [0.1]*3 // r\n  bn = false }\n";
        assert_eq!(
            rewrite(source, "A"),
            "// from x.vgg\nmodel A { cfg = [8, 8, M, 8, 16] /* c */ compress_rate = [0.5] * 3 // r\n  bn = false }\n"
        );
    }

    #[test]
    fn adds_a_rate_after_the_last_setting() {
        let block = "model A {\n    cfg = [8, 8, M, 8, 16]\n    bn = false // no norm\n}";
        assert_eq!(
            rewrite(block, "A"),
            "// from x.vgg\nmodel A {\n    cfg = [8, 8, M, 8, 16]\n    bn = false // no norm\n    compress_rate = [0.5] * 3\n}\n"
        );
        let line = "model L { cfg = [8, 8, M, 8, 16]; bn = false }";
        assert_eq!(
            rewrite(line, "L"),
            "// from x.vgg\nmodel L { cfg = [8, 8, M, 8, 16]; bn = false compress_rate = [0.5] * 3 }\n"
        );
        let compact = "pub B<cfg = [8, 8, M, 8, 16], bn = false,>";
        assert_eq!(
            rewrite(compact, "B"),
            "// from x.vgg\npub B<cfg = [8, 8, M, 8, 16], bn = false, compress_rate = [0.5] * 3,>\n"
        );
    }

    #[test]
    fn adds_a_rate_to_an_empty_model_and_picks_the_named_one() {
        let source = "model A /* { */ {}\nB /* < */ <>\n";
        let a = with_compress_rate(source, "A", "[0.5] * 13", "c")
            .unwrap()
            .0;
        assert_eq!(a, "// c\nmodel A /* { */ { compress_rate = [0.5] * 13 }\n");
        let b = with_compress_rate(source, "B", "[0.5] * 13", "c")
            .unwrap()
            .0;
        assert_eq!(b, "// c\nB /* < */ <compress_rate = [0.5] * 13>\n");
        assert!(with_compress_rate(source, "C", "[0.5]", "c").is_none());
        let b = with_compress_rate(source, "B", "[0.5] * 13", "c")
            .unwrap()
            .0;
        assert_eq!(super::compress_rate(&b, "B"), Some("[0.5] * 13"));
        assert_eq!(super::compress_rate(source, "B"), None);
    }
}
