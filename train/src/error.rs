//! Why training, resuming or evaluating stopped.

use std::path::PathBuf;

use tch::TchError;
use vggdsl::check::BatchOfOne;
use vggdsl::files::run::STATE;
use vggdsl::folder::FolderError;
use vggdsl_runtime::state_dict::{LoadError, Mismatch, SaveError};

use crate::data::{DataError, Dataset};

/// Why training or evaluation stopped; each message is one sentence.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Folder(#[from] FolderError),
    #[error("{} already holds a training run ({STATE}); resume it or choose another folder", dir.display())]
    RunExists { dir: PathBuf },
    #[error(
        "{} holds no training run to resume (no {STATE}): a run stopped before its first \
         checkpoint starts again without resuming",
        dir.display()
    )]
    NoRun { dir: PathBuf },
    #[error(
        "{} holds files that are not a vggdsl training run ({}); choose an empty or new folder \
         for the run, or move them away",
        dir.display(),
        listed(files)
    )]
    NotARun { dir: PathBuf, files: Vec<String> },
    #[error(transparent)]
    BatchOfOne(#[from] BatchOfOne),
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
    #[error(
        "the run's cosine schedule decays the learning rate over its {epochs} epochs, which \
         cannot change to {asked} when resuming (the epochs left would train at other rates); \
         to train on, start a new run from its last.safetensors"
    )]
    CosineEpochs { epochs: u32, asked: u32 },
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("{} does not match the model's parameters: {}", path.display(), mismatches[0])]
    OptimizerState {
        path: PathBuf,
        mismatches: Vec<Mismatch>,
    },
    #[error(
        "cannot save the checkpoint in {}: writing {file} failed: {source}; {stage}",
        dir.display()
    )]
    Save {
        dir: PathBuf,
        file: String,
        source: std::io::Error,
        stage: SaveStage,
    },
    #[error("cannot save the checkpoint: {0}")]
    Serialize(#[from] SaveError),
    #[error(
        "the loss became {loss} in epoch {epoch}, batch {batch}: training diverged, probably \
         from too high a learning rate (nothing after the last checkpoint was saved)"
    )]
    Diverged { epoch: u32, batch: usize, loss: f64 },
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("libtorch failed: {}", torch_sentence(.0))]
    Torch(#[from] TchError),
}

/// Where a failed save left the run folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SaveStage {
    #[error("the previous checkpoint there is intact")]
    Intact,
    #[error("no checkpoint had been saved there yet")]
    Nothing,
    /// Committed, but not all its files are in place: the next open of the folder moves them.
    #[error("the checkpoint is saved whole, and resuming the run puts it in place")]
    Committed,
}

/// libtorch's error as one line: its message without the C++ backtrace that follows it.
pub fn torch_sentence(error: &TchError) -> String {
    let text = match error {
        TchError::Torch(message) => message.clone(),
        other => other.to_string(),
    };
    text.lines()
        .next()
        .unwrap_or_default()
        .trim_end()
        .to_owned()
}

/// The first names of `files`, and how many more there are.
fn listed(files: &[String]) -> String {
    let shown = files.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
    match files.len().saturating_sub(3) {
        0 => shown,
        n => format!("{shown} and {n} more"),
    }
}
