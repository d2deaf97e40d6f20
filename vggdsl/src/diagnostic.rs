//! Errors that point at the text: one plain sentence, a span, and an optional hint.
//!
//! The CLI renders them rustc-style (`error: message`, `file:line:col`, the source line and a
//! caret line with the hint); the macro turns each span back into token spans. Both read the
//! same `Diagnostic`.

use crate::ast::Span;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Byte range of the offending text.
    pub span: Span,
    /// One plain sentence, no trailing period.
    pub message: String,
    /// A hint such as "did you mean `bn`?".
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn new(span: Span, message: impl Into<String>) -> Self {
        Self {
            span,
            message: message.into(),
            help: None,
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// 1-based line and column (in characters) of the span's start.
    pub fn line_col(&self, source: &str) -> (usize, usize) {
        line_col(source, self.span.start)
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(help) = &self.help {
            write!(f, "; {help}")?;
        }
        Ok(())
    }
}

/// 1-based line and column of a byte offset.
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = &source[..floor_char_boundary(source, offset)];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, col)
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// All the diagnostics for one source file.
#[derive(Debug, Clone)]
pub struct Diagnostics {
    pub file_name: String,
    pub source: String,
    pub items: Vec<Diagnostic>,
}

impl Diagnostics {
    /// Renders every diagnostic as
    ///
    /// ```text
    /// error: unknown key `bm`
    ///  --> models.vgg:3:5
    ///   |
    /// 3 |     bm = true
    ///   |     ^^ did you mean `bn`?
    /// ```
    ///
    /// one blank line between diagnostics; `color` adds ANSI colours for terminals.
    pub fn render(&self, color: bool) -> String {
        let mut out = String::new();
        for (i, d) in self.items.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            render_one(&mut out, &self.file_name, &self.source, d, color);
        }
        out
    }
}

/// ANSI styles, or nothing.
struct Style {
    error: &'static str,
    bold: &'static str,
    gutter: &'static str,
    reset: &'static str,
}

impl Style {
    fn new(color: bool) -> Self {
        if color {
            Style {
                error: "\x1b[1;31m",
                bold: "\x1b[1m",
                gutter: "\x1b[1;34m",
                reset: "\x1b[0m",
            }
        } else {
            Style {
                error: "",
                bold: "",
                gutter: "",
                reset: "",
            }
        }
    }
}

/// Lines longer than this many characters are cut around the span ...
const MAX_SHOWN: usize = 100;
/// ... keeping this many characters before it.
const CONTEXT_SHOWN: usize = 40;

fn render_one(out: &mut String, file: &str, source: &str, d: &Diagnostic, color: bool) {
    use fmt::Write as _;
    let s = Style::new(color);
    let start = floor_char_boundary(source, d.span.start.min(source.len()));
    let end = floor_char_boundary(source, d.span.end.clamp(start, source.len()));
    let (line_no, col) = line_col(source, start);
    let line_start = source[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = source[start..]
        .find('\n')
        .map_or(source.len(), |i| start + i);
    let mut line = source[line_start..line_end].trim_end_matches('\r');
    // Underline the span's part on its first line; at least one column (an empty span or the
    // end of the input gets one caret after the last character).
    let mut before = &line[..(start - line_start).min(line.len())];
    let mut marked = &source[start..end.min(line_start + line.len()).max(start)];
    // A very long line is shown as a window around the span.
    let (mut head, mut tail) = ("", "");
    if line.chars().count() > MAX_SHOWN {
        let byte_at = |n: usize| line.char_indices().nth(n).map_or(line.len(), |(i, _)| i);
        let skip = before.chars().count().saturating_sub(CONTEXT_SHOWN);
        let (cut, end) = (byte_at(skip), byte_at(skip + MAX_SHOWN));
        let offset = before.len();
        head = if cut > 0 { "..." } else { "" };
        tail = if end < line.len() { "..." } else { "" };
        before = &line[cut..offset];
        marked = &marked[..marked.len().min(end - offset)];
        line = &line[cut..end];
    }
    let width = |t: &str| {
        t.chars()
            .map(|c| if c == '\t' { 4 } else { 1 })
            .sum::<usize>()
    };
    let carets = "^".repeat(width(marked).max(1));
    let pad = " ".repeat(head.len() + width(before));
    let num = line_no.to_string();
    let blank = " ".repeat(num.len());
    let (g, r) = (s.gutter, s.reset);
    // Writing to a String cannot fail.
    let _ = writeln!(out, "{}error{r}{}: {}{r}", s.error, s.bold, d.message);
    let _ = writeln!(out, "{blank}{g}-->{r} {file}:{line_no}:{col}");
    let _ = writeln!(out, "{blank} {g}|{r}");
    let shown = format!("{head}{}{tail}", line.replace('\t', "    "));
    let sep = if shown.is_empty() { "" } else { " " };
    let _ = writeln!(out, "{g}{num} |{r}{sep}{shown}");
    let label = d.help.as_deref().map_or(String::new(), |h| format!(" {h}"));
    let _ = writeln!(out, "{blank} {g}|{r} {pad}{}{carets}{label}{r}", s.error);
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(false))
    }
}

impl std::error::Error for Diagnostics {}
