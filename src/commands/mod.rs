//! One module per subcommand, each with its clap `Args` and its `run`.

pub mod check;
pub mod compile;
#[cfg(feature = "torch")]
pub mod criterion;
#[cfg(feature = "torch")]
pub mod eval;
pub mod export;
#[cfg(feature = "torch")]
pub mod latency;
pub mod plot;
#[cfg(feature = "torch")]
pub mod prune;
#[cfg(feature = "torch")]
pub mod rank;
#[cfg(feature = "torch")]
pub mod sensitivity;
#[cfg(feature = "torch")]
pub mod setup;
#[cfg(feature = "torch")]
pub mod split;
#[cfg(feature = "torch")]
pub mod study;
pub mod summary;
#[cfg(feature = "torch")]
pub mod train;
