//! The files vggdsl's tools hand each other, one type per format with its reading and writing:
//! a training run's folder ([`run`]) and its `metrics.jsonl` ([`metrics`]), the ranks file of
//! `vggdsl rank` ([`ranks`]), the kept filters of `vggdsl prune` ([`kept`]) and the benchmark
//! results of `examples/bench.rs` ([`bench`]), and a study's file ([`study`]) and results
//! ([`results`]). They live here, below both the trainer and the
//! compiler-only `vggdsl plot`, so that every writer and reader agrees on them.

pub mod bench;
pub mod kept;
pub mod metrics;
mod ordered;
pub mod ranks;
pub mod results;
pub mod run;
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
