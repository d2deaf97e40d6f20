//! The files vggdsl's tools hand each other, one type per format with its reading and writing:
//! a training run's folder ([`run`]) and its `metrics.jsonl` ([`metrics`]), the ranks file of
//! `vggdsl rank` ([`ranks`]), the kept filters of `vggdsl prune` ([`kept`]), the sweep of
//! `vggdsl sensitivity` ([`sensitivity`]), the benchmark results of `examples/bench.rs`
//! ([`bench`]), and a study's file ([`study`]) and results ([`results`]). They live here, below
//! both the trainer and the
//! compiler-only `vggdsl plot`, so that every writer and reader agrees on them.

pub mod bench;
pub mod kept;
pub mod metrics;
mod ordered;
pub mod ranks;
pub mod results;
pub mod run;
pub mod sensitivity;
pub mod study;

/// Why a file's text is not the format it should be: serde_json's sentence, or the rule the
/// contents break.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Invalid(String),
}

/// Why a file could not be read: one sentence naming it.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// The text is not the format; `what` names it (`a ranks file of `vggdsl rank``).
    #[error("{} is not {what}: {source}", path.display())]
    Format {
        path: std::path::PathBuf,
        what: &'static str,
        source: FormatError,
    },
}

/// Reads the file at `path` and parses its text with `parse`; `what` names the format.
pub(crate) fn read<T>(
    path: &std::path::Path,
    what: &'static str,
    parse: impl FnOnce(&str) -> Result<T, FormatError>,
) -> Result<T, ReadError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReadError::Io {
        path: path.to_owned(),
        source,
    })?;
    parse(&text).map_err(|source| ReadError::Format {
        path: path.to_owned(),
        what,
        source,
    })
}
