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

/// A size limit as messages say it: `1 MiB`, `1,071 KiB`.
pub fn size(bytes: u64) -> String {
    if bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", crate::analysis::thousands(bytes >> 20))
    } else {
        format!(
            "{} KiB",
            crate::analysis::thousands(bytes.div_ceil(1 << 10))
        )
    }
}

/// Why a file could not be read: one sentence naming it.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// Longer than any file of the format could be (`/dev/zero` is refused at once).
    #[error(
        "cannot read {}: it is larger than {}, more than {what} holds",
        path.display(),
        size(*max_bytes)
    )]
    TooLarge {
        path: std::path::PathBuf,
        what: &'static str,
        max_bytes: u64,
    },
    /// The text is not the format; `what` names it (`a ranks file of `vggdsl rank``).
    #[error("{} is not {what}: {source}", path.display())]
    Format {
        path: std::path::PathBuf,
        what: &'static str,
        source: FormatError,
    },
}

/// Reads the file at `path`, refused beyond `max_bytes`, and parses its text with `parse`;
/// `what` names the format.
pub(crate) fn read<T>(
    path: &std::path::Path,
    what: &'static str,
    max_bytes: u64,
    parse: impl FnOnce(&str) -> Result<T, FormatError>,
) -> Result<T, ReadError> {
    use std::io::Read;
    let io = |source| ReadError::Io {
        path: path.to_owned(),
        source,
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(max_bytes + 1).read_to_end(&mut bytes))
        .map_err(io)?;
    if bytes.len() as u64 > max_bytes {
        return Err(ReadError::TooLarge {
            path: path.to_owned(),
            what,
            max_bytes,
        });
    }
    let text = String::from_utf8(bytes)
        .map_err(|e| io(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
    parse(&text).map_err(|source| ReadError::Format {
        path: path.to_owned(),
        what,
        source,
    })
}
