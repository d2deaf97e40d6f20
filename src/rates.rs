//! The rates of a `--compress-rate` flag (`vggdsl prune`, `vggdsl plot ranks`): read and checked
//! by the compiler as the `compress_rate` of a model, and written back in the language's notation.

use crate::exit::USAGE;
use crate::failure::Failure;
use vggdsl::{Diagnostic, Diagnostics};

/// The rates of `--compress-rate`, checked as the `compress_rate` of model `name`, with errors
/// pointing at the flag's text.
pub fn from_flag(source: &str, name: &str, flag: &str) -> Result<Vec<f64>, Failure> {
    let flag = flag.trim();
    let (text, span) = vggdsl::rewrite::with_compress_rate(source, name, flag, "")
        .expect("FILE parsed and has the model");
    let inside = |d: &Diagnostic| d.span.start >= span.start && d.span.end <= span.end;
    // The flag must be one value, not text that ends the model and starts another.
    let one_value = match vggdsl::parse::parse(&text) {
        Ok(file) => {
            vggdsl::rewrite::compress_rate(&text, name).map(str::len) == Some(flag.len())
                && file.models.len() == 1
        }
        Err(d) => inside(&d),
    };
    let not_a_list = || {
        Failure::new(
            USAGE,
            format_args!(
                "--compress-rate `{flag}` is not one list of rates, such as \
                 [0.95] + [0.5] * 6 + [0.9] * 4 + [0.8] * 2"
            ),
        )
    };
    if !one_value {
        return Err(not_a_list());
    }
    let nets = match vggdsl::check_source(&text) {
        Ok(nets) => nets,
        Err(items) => {
            if !items.iter().all(inside) {
                return Err(not_a_list());
            }
            let shift = |s: &std::ops::Range<usize>| s.start - span.start..s.end - span.start;
            let items = items
                .into_iter()
                .map(|d| Diagnostic {
                    span: shift(&d.span),
                    labels: d
                        .labels
                        .iter()
                        .filter(|l| l.span.start >= span.start && l.span.end <= span.end)
                        .map(|l| vggdsl::diagnostic::Label {
                            span: shift(&l.span),
                            text: l.text.clone(),
                        })
                        .collect(),
                    ..d
                })
                .collect();
            let mut failure = Failure::invalid(&Diagnostics {
                file_name: "--compress-rate".to_owned(),
                source: flag.to_owned(),
                items,
            });
            failure.code = USAGE;
            return Err(failure);
        }
    };
    Ok(nets[0]
        .spec
        .compress_rate
        .clone()
        .expect("the model has the flag's rates"))
}
