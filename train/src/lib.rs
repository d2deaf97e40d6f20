//! Training and pruning vggdsl networks, on `vggdsl-runtime`'s layers and run-time network: what
//! the `vggdsl train`, `eval`, `rank` and `prune` commands run, callable from Rust.
//!
//! The pipeline shows in the modules: [`data`] (datasets, augmentation, batches) → [`trainer`]
//! (the loop, with [`sgd`] and the run folder's [`checkpoint`]) → [`hrank`] (ranks, filter
//! choice, surgery) → [`prune`] (a model and its weights cut to compress rates). The files a run
//! leaves and the ranks file are `vggdsl::files`' formats, read the same by `vggdsl plot`.

pub mod budget;
pub mod checkpoint;
pub mod criteria;
pub mod data;
pub mod error;
pub mod hrank;
pub mod latency;
pub mod prune;
pub mod sensitivity;
pub mod sgd;
pub mod sparsity;
pub mod trainer;
pub mod weights;

pub use error::TrainError;
pub use prune::{prune, PruneError, Pruned, Request};
pub use trainer::{Trainer, EVAL_BATCH};
