//! `vgg!`: the vggdsl language inline. A thin shell over the `vggdsl` crate.
//!
//! The macro turns its tokens back into text, lets [`vggdsl::check_source`] parse and check it
//! with the one pest grammar, and expands to [`vggdsl::codegen::tokens`], the code that
//! `vggdsl compile` emits. Diagnostics carry byte spans into that text; each maps back to the
//! tokens it covers, so rustc underlines the offending part of the call.

use proc_macro2::{Delimiter, Literal, Spacing, Span, TokenStream, TokenTree};
use quote::{quote, quote_spanned};
use std::ops::Range;
use std::path::PathBuf;
use vggdsl::codegen::{self, Origin};
use vggdsl::Architecture;

/// Declares VGG models written in the vggdsl language (docs/language.md).
///
/// ```ignore
/// // The compact form:
/// vgg!(pub Net<cfg = [64, M, 128, M, 256], bn = false, num_classes = 100>);
///
/// // The full form, exactly as in a `.vgg` file; one call may declare several models:
/// vgg! {
///     pub model Vgg16Bn {
///         cfg = default
///         init = { conv.weight = normal(0, sqrt(2 / (k * k * out))) }
///     }
/// }
///
/// // A `.vgg` file, relative to `CARGO_MANIFEST_DIR`; editing the file rebuilds the crate:
/// vgg!("models/net.vgg");
/// ```
#[proc_macro]
pub fn vgg(input: proc_macro::TokenStream) -> proc_macro::TokenStream {
    expand(input.into()).into()
}

fn expand(input: TokenStream) -> TokenStream {
    // The language has no string literals, so a leading one can only be the file form's path.
    let path = input
        .clone()
        .into_iter()
        .next()
        .and_then(|first| syn::parse2::<syn::LitStr>(first.into()).ok());
    match path {
        Some(path) => expand_file(&path, input),
        None => expand_inline(input),
    }
}

fn expand_inline(input: TokenStream) -> TokenStream {
    let text = Text::new(input);
    match vggdsl::check_source(&text.source) {
        Ok(nets) => models(&nets, None),
        Err(diagnostics) => diagnostics
            .iter()
            .map(|d| {
                let (first, last) = text.spans(&d.span);
                compile_error(&d.to_string(), first, last)
            })
            .collect(),
    }
}

fn expand_file(path: &syn::LitStr, input: TokenStream) -> TokenStream {
    let at = path.span();
    let mut extra = input.into_iter().skip(1).map(|t| t.span());
    if let Some(first) = extra.next() {
        let last = extra.last().unwrap_or(first);
        let message = "`vgg!(\"file.vgg\")` takes only the path of a `.vgg` file";
        return compile_error(message, first, last);
    }
    let written = path.value();
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default();
    let resolved = PathBuf::from(manifest_dir).join(&written);
    let source = match std::fs::read_to_string(&resolved) {
        Ok(source) => source,
        Err(e) => {
            let message = format!("cannot read {}: {e}", resolved.display());
            return compile_error(&message, at, at);
        }
    };
    let models = match vggdsl::check_source(&source) {
        // Labelled with the path as written, as `vggdsl compile <path>` labels it.
        Ok(nets) => models(&nets, Some(written)),
        Err(diagnostics) => diagnostics
            .iter()
            .map(|d| {
                let (line, col) = d.line_col(&source);
                compile_error(&format!("{written}:{line}:{col}: {d}"), at, at)
            })
            .collect(),
    };
    // Cargo rebuilds a crate when a file it `include_str!`s changes (as pest_derive and sqlx do).
    let tracked = Literal::string(&resolved.to_string_lossy());
    quote! {
        #models
        const _: &str = ::core::include_str!(#tracked);
    }
}

fn models(nets: &[Architecture], file: Option<String>) -> TokenStream {
    let origin = Origin { file };
    nets.iter()
        .map(|net| codegen::tokens(net, &origin))
        .collect()
}

/// `compile_error!` underlining `first` to `last`. Stable proc macros cannot join spans, but
/// rustc reports the error over the whole invocation, from the path's span to the group's (the
/// trick of syn's `Error::to_compile_error`).
fn compile_error(message: &str, first: Span, last: Span) -> TokenStream {
    let path = quote_spanned!(first=> ::core::compile_error);
    let rest = quote_spanned!(last=> !{ #message });
    quote!(#path #rest)
}

/// The macro's tokens as source text, with each token's byte range in it and its span.
struct Text {
    source: String,
    tokens: Vec<(Range<usize>, Span)>,
    /// The last token was a `Joint` punct: the next one follows without a space, so `::` stays
    /// `::`.
    glue: bool,
}

impl Text {
    fn new(input: TokenStream) -> Self {
        let mut text = Text {
            source: String::new(),
            tokens: Vec::new(),
            glue: false,
        };
        text.push_stream(input);
        text
    }

    fn push_stream(&mut self, stream: TokenStream) {
        for tree in stream {
            match tree {
                TokenTree::Group(g) => {
                    let (open, close) = match g.delimiter() {
                        Delimiter::Parenthesis => ("(", ")"),
                        Delimiter::Brace => ("{", "}"),
                        Delimiter::Bracket => ("[", "]"),
                        // Invisible groups come from `macro_rules!` fragments such as `$w:expr`.
                        Delimiter::None => {
                            self.push_stream(g.stream());
                            continue;
                        }
                    };
                    self.push(open, g.span_open(), false);
                    self.push_stream(g.stream());
                    self.push(close, g.span_close(), false);
                }
                TokenTree::Punct(p) => {
                    let joint = p.spacing() == Spacing::Joint;
                    self.push(&p.as_char().to_string(), p.span(), joint);
                }
                other => self.push(&other.to_string(), other.span(), false),
            }
        }
    }

    fn push(&mut self, token: &str, span: Span, joint: bool) {
        if !self.source.is_empty() && !self.glue {
            self.source.push(' ');
        }
        let start = self.source.len();
        self.source.push_str(token);
        self.tokens.push((start..self.source.len(), span));
        self.glue = joint;
    }

    /// The spans of the first and last token that the byte range touches (an empty range counts
    /// as its first byte). Past the end ("found the end of the input"): the last token; in an
    /// empty call, the whole call.
    fn spans(&self, range: &Range<usize>) -> (Span, Span) {
        let end = range.end.max(range.start + 1);
        let mut hit = self
            .tokens
            .iter()
            .filter(|(t, _)| t.start < end && range.start < t.end)
            .map(|(_, span)| *span);
        match hit.next() {
            Some(first) => (first, hit.next_back().unwrap_or(first)),
            None => {
                let last = self.tokens.last().map_or_else(Span::call_site, |(_, s)| *s);
                (last, last)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::ToTokens;

    const SEED: &str = include_str!("../../examples/vgg16_bn.vgg");
    const SEED_PATH: &str = "../examples/vgg16_bn.vgg";

    fn tokens(source: &str) -> TokenStream {
        source.parse().expect("the source lexes as Rust tokens")
    }

    /// A Rust file's tokens, as a comparable string. Formatting both sides with prettyplease
    /// first evens out what it rewrites: trailing commas and `#[doc = ".."]` versus `///`.
    fn file_tokens(code: &str) -> String {
        let parse = |code: &str| syn::parse_file(code).expect("generated code parses");
        let formatted = prettyplease::unparse(&parse(code));
        parse(&formatted).into_token_stream().to_string()
    }

    #[test]
    fn file_form_expands_to_what_vggdsl_compile_writes() {
        let expanded = expand(tokens(&format!("{SEED_PATH:?}")));
        let compiled = vggdsl::compile(SEED, SEED_PATH).expect("the seed checks");
        let resolved = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(SEED_PATH);
        let tracked = Literal::string(&resolved.to_string_lossy());
        let expected = format!("{compiled}\nconst _: &str = ::core::include_str!({tracked});");
        assert_eq!(file_tokens(&expanded.to_string()), file_tokens(&expected));
    }

    #[test]
    fn inline_form_expands_to_the_same_code_labelled_vgg() {
        let expanded = expand(tokens(SEED));
        let nets = vggdsl::check_source(SEED).expect("the seed checks");
        let compiled = codegen::file(&nets, &Origin { file: None });
        assert_eq!(file_tokens(&expanded.to_string()), file_tokens(&compiled));
    }

    #[test]
    fn macro_text_keeps_what_the_grammar_needs() {
        let text = Text::new(tokens(
            "pub(crate) model A { input = [3, 32, 32] cfg = [64, M, 512] compress_rate = [0.95]
             init = { conv.weight = normal(-1, sqrt(2 / (in * k * k))) linear.bias = constant(- 1) } }",
        ));
        assert!(text.source.starts_with("pub ( crate ) model A {"));
        let nets = vggdsl::check_source(&text.source).expect("macro text checks");
        assert_eq!(nets[0].spec.visibility.as_deref(), Some("pub(crate)"));
        assert_eq!(nets[0].spec.compress_rate, Some(vec![0.95]));
    }

    #[test]
    fn joint_puncts_stay_together_so_paths_parse() {
        let text = Text::new(tokens("pub(in crate::a) Net<cfg = default>"));
        assert_eq!(text.source, "pub ( in crate :: a ) Net < cfg = default >");
        let pieces: Vec<&str> = text
            .tokens
            .iter()
            .map(|(r, _)| &text.source[r.clone()])
            .collect();
        let expected = "pub ( in crate : : a ) Net < cfg = default >";
        assert_eq!(pieces, expected.split(' ').collect::<Vec<_>>());
        let nets = vggdsl::check_source(&text.source).expect("macro text checks");
        assert_eq!(nets[0].spec.visibility.as_deref(), Some("pub(in crate::a)"));
    }
}
