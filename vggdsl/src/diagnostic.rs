//! Errors that point at the text: one plain sentence, a span, and an optional hint.
//!
//! The CLI renders them rustc-style (`error: message`, `file:line:col`, the source line and a
//! caret line with the hint, then any secondary labels such as "first set here"); the macro turns
//! the span back into token spans. Both read the same `Diagnostic`.
//!
//! The renderer is our own rather than annotate-snippets: it keeps the 90 reviewed diagnostic
//! snapshots and the macro's messages alike, and windows 26 KB single-line inputs that the
//! fuzzer feeds it.

use crate::ast::Span;
use std::fmt;
use unicode_width::UnicodeWidthStr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Byte range of the offending text.
    pub span: Span,
    /// One plain sentence, no trailing period.
    pub message: String,
    /// A hint such as "did you mean `bn`?".
    pub help: Option<String>,
    /// Other places that explain the error, such as where a duplicate was first defined.
    pub labels: Vec<Label>,
}

/// A secondary place in the text, underlined with `-` and explained in a few words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    pub span: Span,
    pub text: String,
}

impl Diagnostic {
    pub fn new(span: Span, message: impl Into<String>) -> Self {
        Self {
            span,
            message: message.into(),
            help: None,
            labels: Vec::new(),
        }
    }

    pub fn with_label(mut self, span: Span, text: impl Into<String>) -> Self {
        self.labels.push(Label {
            span,
            text: text.into(),
        });
        self
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

/// 1-based line and column (in characters) of a byte offset; a byte-order mark is no column.
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = &source[..floor_char_boundary(source, offset)];
    let line = before.matches('\n').count() + 1;
    let line_text = before.rsplit('\n').next().unwrap_or("");
    let col = line_text.trim_start_matches(BOM).chars().count() + 1;
    (line, col)
}

const BOM: char = '\u{feff}';

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

/// Lines longer than this many characters are cut around what they mark ...
const MAX_SHOWN: usize = 100;
/// ... keeping this many characters before it.
const CONTEXT_SHOWN: usize = 40;

/// One underlined place: `^` for the error itself, `-` for a label.
struct Mark<'a> {
    line_no: usize,
    /// Byte ranges in the source: the line (without its newline) and the marked part of it.
    line: Span,
    marked: Span,
    underline: char,
    text: &'a str,
}

impl<'a> Mark<'a> {
    fn new(source: &str, span: &Span, underline: char, text: &'a str) -> Self {
        let start = floor_char_boundary(source, span.start.min(source.len()));
        let end = floor_char_boundary(source, span.end.clamp(start, source.len()));
        let line_start = source[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = source[start..]
            .find('\n')
            .map_or(source.len(), |i| start + i);
        let line_end = line_start + source[line_start..line_end].trim_end_matches('\r').len();
        // A span running past its first line is marked to the line's last character.
        let marked_end = if end > line_end {
            line_start + source[line_start..line_end].trim_end().len()
        } else {
            end
        };
        Mark {
            line_no: line_col(source, start).0,
            line: line_start..line_end,
            marked: start..marked_end.max(start),
            underline,
            text,
        }
    }
}

/// Display columns of text as shown: tabs as four spaces, wide characters as two.
fn width(text: &str) -> usize {
    text.split('\t').map(|part| part.width()).sum::<usize>() + 4 * text.matches('\t').count()
}

fn render_one(out: &mut String, file: &str, source: &str, d: &Diagnostic, color: bool) {
    use fmt::Write as _;
    let s = Style::new(color);
    let help = d.help.as_deref().unwrap_or("");
    let mut marks = vec![Mark::new(source, &d.span, '^', help)];
    marks.extend(
        d.labels
            .iter()
            .map(|l| Mark::new(source, &l.span, '-', &l.text)),
    );
    let (line_no, col) = line_col(source, marks[0].marked.start);
    marks.sort_by_key(|m| (m.line_no, m.marked.start));
    let digits = marks
        .iter()
        .map(|m| m.line_no)
        .max()
        .unwrap_or(1)
        .to_string()
        .len();
    let blank = " ".repeat(digits);
    let (g, r) = (s.gutter, s.reset);
    // Writing to a String cannot fail.
    let _ = writeln!(out, "{}error{r}{}: {}{r}", s.error, s.bold, d.message);
    let _ = writeln!(out, "{blank}{g}-->{r} {file}:{line_no}:{col}");
    let _ = writeln!(out, "{blank} {g}|{r}");
    let mut shown_line = None;
    for group in marks.chunk_by(|a, b| a.line_no == b.line_no) {
        let first = &group[0];
        if shown_line.is_some_and(|n: usize| first.line_no > n + 1) {
            let _ = writeln!(out, "{g}...{r}");
        }
        shown_line = Some(first.line_no);
        let line = &source[first.line.clone()];
        // A very long line is shown as a window around its first mark.
        let (mut from, mut to) = (first.line.start, first.line.end);
        let (mut head, mut tail) = ("", "");
        if line.chars().count() > MAX_SHOWN {
            let before = &source[first.line.start..first.marked.start];
            let byte_at = |n: usize| {
                first.line.start + line.char_indices().nth(n).map_or(line.len(), |(i, _)| i)
            };
            let skip = before.chars().count().saturating_sub(CONTEXT_SHOWN);
            (from, to) = (byte_at(skip), byte_at(skip + MAX_SHOWN));
            head = if from > first.line.start { "..." } else { "" };
            tail = if to < first.line.end { "..." } else { "" };
        }
        let shown = format!(
            "{head}{}{tail}",
            source[from..to]
                .trim_start_matches(BOM)
                .replace('\t', "    ")
        );
        let sep = if shown.is_empty() { "" } else { " " };
        let _ = writeln!(out, "{g}{:>digits$} |{r}{sep}{shown}", first.line_no);
        for m in group {
            let start = m.marked.start.clamp(from, to);
            let end = m.marked.end.clamp(start, to);
            let pad = " ".repeat(head.len() + width(&source[from..start]));
            let marks = m
                .underline
                .to_string()
                .repeat(width(&source[start..end]).max(1));
            let label = if m.text.is_empty() {
                String::new()
            } else {
                format!(" {}", m.text)
            };
            let style = if m.underline == '^' {
                s.error
            } else {
                s.gutter
            };
            let _ = writeln!(out, "{blank} {g}|{r} {pad}{style}{marks}{label}{r}");
        }
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(false))
    }
}

impl std::error::Error for Diagnostics {}
