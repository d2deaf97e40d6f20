//! Why training, resuming or evaluating stopped.

use std::path::PathBuf;

use tch::TchError;
use vggdsl::files::run::STATE;
use vggdsl_runtime::state_dict::{LoadError, Mismatch, SaveError};

use crate::data::{DataError, Dataset};

/// Why training or evaluation stopped; each message is one sentence.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error("{} already holds a training run ({STATE}); resume it or choose another folder", dir.display())]
    RunExists { dir: PathBuf },
    #[error("{} holds no training run to resume (no {STATE})", dir.display())]
    NoRun { dir: PathBuf },
    #[error("{} is not a vggdsl run state: {reason}", path.display())]
    BadState { path: PathBuf, reason: String },
    #[error("the run in {} trains model {saved}, not {model}", dir.display())]
    OtherModel {
        dir: PathBuf,
        saved: String,
        model: String,
    },
    #[error(
        "the run in {} trained on {saved} ({saved_images} training images), but the data given \
         is {dataset} ({images} training images)",
        dir.display()
    )]
    OtherData {
        dir: PathBuf,
        saved: String,
        saved_images: usize,
        dataset: Dataset,
        images: usize,
    },
    #[error(
        "{} does not belong to the checkpoint that {} describes: a save was cut short or the \
         file was replaced, so the run cannot continue exactly",
        dir.join(file).display(),
        dir.join(STATE).display()
    )]
    Inconsistent { dir: PathBuf, file: &'static str },
    #[error("the run has trained {done} epochs, more than the {epochs} asked for")]
    EpochsDone { done: u32, epochs: u32 },
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("{} does not match the model's parameters: {}", path.display(), mismatches[0])]
    OptimizerState {
        path: PathBuf,
        mismatches: Vec<Mismatch>,
    },
    #[error(
        "cannot save the checkpoint in {}: writing {file} failed: {source}; {}",
        dir.display(),
        if *intact { "the previous checkpoint there is intact" } else { "it may be incomplete" }
    )]
    Save {
        dir: PathBuf,
        file: String,
        source: std::io::Error,
        /// Whether every file of the previous checkpoint is still in place.
        intact: bool,
    },
    #[error("cannot save the checkpoint: {0}")]
    Serialize(#[from] SaveError),
    #[error(
        "the loss became {loss} in epoch {epoch}, batch {batch}: training diverged, probably \
         from too high a learning rate (nothing after the last checkpoint was saved)"
    )]
    Diverged { epoch: u32, batch: usize, loss: f64 },
    #[error("cannot create the run folder {}: {source}", dir.display())]
    CreateDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("libtorch failed: {0}")]
    Torch(#[from] TchError),
}
