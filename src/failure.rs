//! The command's one error type: what is left to say on stderr, and the exit code
//! ([`crate::exit`]). [`crate::output::report`] shows it.

use std::fmt::Display;
use std::io::{self, IsTerminal};

use crate::exit::FAILED;

/// Why a command stopped, with the exit code `vggdsl --help` documents for it.
pub struct Failure {
    pub code: u8,
    /// What stderr still has to show: `error: …` lines, or nothing when all is said.
    text: String,
}

impl Failure {
    /// What stderr still has to show.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// `error: ` and one sentence.
    pub fn new(code: u8, sentence: impl Display) -> Self {
        Self {
            code,
            text: format!("error: {sentence}\n"),
        }
    }

    /// Stop with `code`; everything has been said.
    pub fn exit(code: u8) -> Self {
        Self {
            code,
            text: String::new(),
        }
    }

    /// The checker's diagnostics, rustc-style, coloured on a terminal unless `NO_COLOR` is set.
    pub fn invalid(diagnostics: &vggdsl::Diagnostics) -> Self {
        let color = io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        Self {
            code: FAILED,
            text: diagnostics.render(color),
        }
    }

    /// Writing to `target` failed. A reader that went away (`| head`) took all it wanted, so a
    /// broken pipe ends the command quietly with 0, as with other Unix tools.
    pub fn write(target: impl Display, error: io::Error) -> Self {
        if error.kind() == io::ErrorKind::BrokenPipe {
            Self::exit(0)
        } else {
            Self::new(FAILED, format_args!("cannot write {target}: {error}"))
        }
    }

    /// A panic caught at the top (tch turns a libtorch error of a call without `f_` into one): one
    /// sentence, libtorch's message without its C++ backtrace, instead of a panic's report.
    pub fn panicked(payload: &(dyn std::any::Any + Send)) -> Self {
        let text = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("a panic without a message");
        // tch's `unwrap` shows the error's Debug form: `… Err value: Torch("message\nException …")`.
        match text.split_once("Torch(\"") {
            Some((_, rest)) => {
                let end = ["\\n", "\")"]
                    .iter()
                    .filter_map(|stop| rest.find(stop))
                    .min()
                    .unwrap_or(rest.len());
                Self::new(FAILED, format_args!("libtorch failed: {}", &rest[..end]))
            }
            None => Self::new(
                FAILED,
                format_args!(
                    "internal error: {}; this is a bug of vggdsl",
                    text.lines().next().unwrap_or_default()
                ),
            ),
        }
    }

    /// A weights file holding another model's weights: the first of `differences` named, the
    /// others counted.
    pub fn another_model(
        weights: impl Display,
        model: &str,
        first: impl Display,
        differences: usize,
    ) -> Self {
        let more = match differences - 1 {
            0 => String::new(),
            1 => " (and 1 more difference)".into(),
            n => format!(" (and {n} more differences)"),
        };
        Self::new(
            FAILED,
            format_args!("{weights} holds weights of another model than {model}: {first}{more}"),
        )
    }
}
