//! A run's folder: the weights (`last.safetensors`, `best.safetensors`), the optimiser's momentum
//! buffers (`optimizer.safetensors`), where the run stands (`state.json`) and one line of figures
//! per epoch (`metrics.jsonl`).
//!
//! A save writes every file under a temporary name first and renames them only when all are
//! written, `state.json` last: a failed write (a full disk) leaves the previous checkpoint as it
//! was, and no file is ever half-written. `state.json` records a CRC-32 of the two files a resume
//! reads, so a set mixed from two saves (a kill between two renames) is refused, never trained on.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use vggdsl::atomic::{self, Pending};
use vggdsl::check::{check_recipe, Milestones};
use vggdsl::files::run::{BEST, LAST, METRICS, OPTIMIZER, STATE};
use vggdsl::spec::{Recipe, Schedule};

use crate::error::TrainError;

/// The version of `state.json`'s layout.
const FORMAT: u32 = 1;

/// What `state.json` holds: enough to continue the run exactly where it stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    pub format: u32,
    pub model: String,
    /// The dataset's command-line name (`cifar10`, `fashion-mnist`, …).
    pub dataset: String,
    /// The training set's size: the batches of an epoch depend on it.
    pub train_images: usize,
    /// The validation images carved from the training set (`crate::data::carve_validation`),
    /// 0 for none: a resume carves the same.
    #[serde(default)]
    pub validation_images: usize,
    /// Network Slimming's λ (`crate::sparsity`), 0 for none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub sparsity: f64,
    #[serde(with = "recipe_json")]
    pub recipe: Recipe,
    /// Epochs finished (trained and evaluated).
    pub epoch: u32,
    /// Batches of epoch `epoch` trained; all of them when only its evaluation is left.
    pub batch: usize,
    /// SGD steps taken in all.
    pub step: u64,
    /// Of the batches trained in epoch `epoch`, so that its figures come out as uninterrupted.
    pub sums: EpochSums,
    pub best: Option<Best>,
    pub files: Crcs,
}

/// Running sums over the batches of the current epoch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct EpochSums {
    /// Σ batch mean loss × batch size.
    pub loss: f64,
    pub correct: u64,
    pub images: u64,
    /// Wall time spent on the epoch so far, over all the processes that worked on it.
    pub seconds: f64,
}

/// The epoch whose weights `best.safetensors` holds: the best validation accuracy, with the
/// test accuracy beside it (runs saved before validation splits chose by the test accuracy).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Best {
    /// Counted from 1, as in `metrics.jsonl`.
    pub epoch: u32,
    pub test_accuracy: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_accuracy: Option<f64>,
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

/// CRC-32 of the files a resume reads, as saved with this state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Crcs {
    pub last: u32,
    pub optimizer: u32,
}

/// `Recipe` lives in the compiler crate, which has no serde derive for it: this is its JSON.
mod recipe_json {
    use super::*;
    use serde::{Deserializer, Serializer};

    #[derive(Serialize, Deserialize)]
    struct Record {
        epochs: u32,
        batch_size: u32,
        lr: f64,
        momentum: f64,
        weight_decay: f64,
        nesterov: bool,
        /// `multistep` or `cosine`.
        schedule: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        milestones: Option<Vec<u32>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gamma: Option<f64>,
        seed: u64,
    }

    pub fn serialize<S: Serializer>(r: &Recipe, s: S) -> Result<S::Ok, S::Error> {
        let (schedule, milestones, gamma) = match &r.schedule {
            Schedule::MultiStep { milestones, gamma } => {
                ("multistep", Some(milestones.clone()), Some(*gamma))
            }
            Schedule::Cosine => ("cosine", None, None),
        };
        Record {
            epochs: r.epochs,
            batch_size: r.batch_size,
            lr: r.lr,
            momentum: r.momentum,
            weight_decay: r.weight_decay,
            nesterov: r.nesterov,
            schedule: schedule.into(),
            milestones,
            gamma,
            seed: r.seed,
        }
        .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Recipe, D::Error> {
        let r = Record::deserialize(d)?;
        let schedule = match (r.schedule.as_str(), r.milestones, r.gamma) {
            ("multistep", Some(milestones), Some(gamma)) => {
                Schedule::MultiStep { milestones, gamma }
            }
            ("cosine", None, None) => Schedule::Cosine,
            (name, ..) => {
                return Err(serde::de::Error::custom(format!(
                    "schedule `{name}` with these milestones and gamma is not one vggdsl writes"
                )))
            }
        };
        Ok(Recipe {
            epochs: r.epochs,
            batch_size: r.batch_size,
            lr: r.lr,
            momentum: r.momentum,
            weight_decay: r.weight_decay,
            nesterov: r.nesterov,
            schedule,
            seed: r.seed,
        })
    }
}

impl RunState {
    pub(crate) fn new(model: &str, dataset: &str, train_images: usize, recipe: Recipe) -> Self {
        RunState {
            format: FORMAT,
            model: model.into(),
            dataset: dataset.into(),
            train_images,
            validation_images: 0,
            sparsity: 0.0,
            recipe,
            epoch: 0,
            batch: 0,
            step: 0,
            sums: EpochSums::default(),
            best: None,
            files: Crcs::default(),
        }
    }
}

/// The folder of one training run.
#[derive(Debug, Clone)]
pub struct RunDir {
    path: PathBuf,
}

impl RunDir {
    pub fn new(path: impl Into<PathBuf>) -> RunDir {
        RunDir { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// The saved state, or `None` when the folder holds no run (no `state.json`).
    pub fn state(&self) -> Result<Option<RunState>, TrainError> {
        let path = self.file(STATE);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(TrainError::Io { path, source }),
        };
        let bad = |reason: String| TrainError::BadState {
            path: path.clone(),
            reason,
        };
        let state: RunState = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        if state.format != FORMAT {
            return Err(bad(format!(
                "it has format {}, this vggdsl reads format {FORMAT}",
                state.format
            )));
        }
        check_recipe(&state.recipe, Milestones::PastTheEnd).map_err(|e| bad(e.to_string()))?;
        Ok(Some(state))
    }

    /// Checks one of the files a resume reads against the CRC its state recorded.
    pub(crate) fn check(&self, name: &'static str, crc: u32) -> Result<(), TrainError> {
        let path = self.file(name);
        let bytes = fs::read(&path).map_err(|source| TrainError::Io {
            path: path.clone(),
            source,
        })?;
        if crc32(&bytes) != crc {
            return Err(TrainError::Inconsistent {
                dir: self.path.clone(),
                file: name,
            });
        }
        Ok(())
    }

    /// The lines of `metrics.jsonl` for the first `epochs` epochs: a file the last save did not
    /// finish with (none yet, or lines from an epoch the checkpoint does not cover) is cut there.
    pub(crate) fn metrics(&self, epochs: u32) -> Result<Vec<String>, TrainError> {
        let path = self.file(METRICS);
        match fs::read_to_string(&path) {
            Ok(text) => Ok(text
                .lines()
                .take(epochs as usize)
                .map(String::from)
                .collect()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(source) => Err(TrainError::Io { path, source }),
        }
    }

    /// Writes the checkpoint: `last` and `optimizer` (safetensors bytes), `best` (the same as
    /// `last`, when this epoch is the best so far), `metrics` (all lines, at the end of an epoch)
    /// and `state`, whose CRCs are filled in here. All or nothing, as the module says.
    pub(crate) fn save(
        &self,
        state: &mut RunState,
        last: &[u8],
        optimizer: &[u8],
        best: bool,
        metrics: Option<&[String]>,
    ) -> Result<(), TrainError> {
        fs::create_dir_all(&self.path).map_err(|source| TrainError::CreateDir {
            dir: self.path.clone(),
            source,
        })?;
        let mut saved = state.clone();
        saved.files = Crcs {
            last: crc32(last),
            optimizer: crc32(optimizer),
        };
        let mut json = serde_json::to_string_pretty(&saved).expect("a run state serializes");
        json.push('\n');
        let metrics = metrics.map(|lines| lines.iter().map(|l| format!("{l}\n")).collect());
        let mut files: Vec<(&str, &[u8])> = Vec::new();
        if best {
            files.push((BEST, last));
        }
        files.push((LAST, last));
        files.push((OPTIMIZER, optimizer));
        if let Some(metrics) = &metrics {
            files.push((METRICS, String::as_bytes(metrics)));
        }
        files.push((STATE, json.as_bytes()));
        let save_error = |name: &str, source, intact| TrainError::Save {
            dir: self.path.clone(),
            file: name.to_string(),
            source,
            intact,
        };
        let pending = files
            .iter()
            .map(|&(name, bytes)| {
                Pending::new(&self.file(name), bytes).map_err(|e| save_error(name, e, true))
            })
            .collect::<Result<Vec<_>, _>>()?;
        for (file, (name, _)) in pending.into_iter().zip(&files) {
            file.persist().map_err(|e| save_error(name, e, false))?;
        }
        atomic::sync_dir(&self.path).map_err(|e| save_error(STATE, e, false))?;
        *state = saved;
        Ok(())
    }
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = flate2::Crc::new();
    crc.update(bytes);
    crc.sum()
}
