//! Names that become Rust items: model names and the visibility written before them.

use super::Checker;
use crate::ast::Spanned;
use crate::diagnostic::Diagnostic;

// Rust's strict and reserved keywords (2015–2024 editions): the name becomes a struct.
const RESERVED: &[&str] = &[
    "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern",
    "false", "fn", "for", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub",
    "ref", "return", "self", "Self", "static", "struct", "super", "trait", "true", "type",
    "unsafe", "use", "where", "while", "abstract", "become", "box", "do", "final", "gen", "macro",
    "override", "priv", "try", "typeof", "unsized", "virtual", "yield", "_",
];

impl Checker {
    /// `pub(in path)` takes a path Rust accepts there: it starts with `crate`, `self` or
    /// `super`, `super` may only follow `self` or `super`, and no segment is a keyword.
    pub(super) fn visibility(&mut self, v: &Spanned<String>) {
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

    pub(super) fn model_name(&mut self, name: &Spanned<String>) {
        if RESERVED.contains(&name.node.as_str()) {
            self.error(
                name.span.clone(),
                format!("`{}` is a Rust keyword and cannot name a model", name.node),
            );
        }
    }
}

/// The structs the generated code defines for a model.
pub(super) fn generated_structs(model: &str) -> [String; 5] {
    use crate::names;
    [
        model.to_owned(),
        names::features_type(model),
        names::classifier_type(model),
        names::activations_type(model),
        names::inference_type(model),
    ]
}
