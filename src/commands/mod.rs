//! One module per subcommand, each with its clap `Args` and its `run`.

pub mod check;
pub mod compile;
pub mod plot;
pub mod summary;
