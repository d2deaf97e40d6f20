//! The data a training run sees: the training set less the validation split (one definition,
//! `vggdsl_train::data::split`), the test set, and slices of both for quick runs.

use std::path::Path;

use vggdsl::analysis::thousands;
use vggdsl_train::data::{
    carve_validation, default_validation_size, split, Dataset, ImageSet, Split,
};
use vggdsl_train::trainer::Data;

use super::setup::load_split;
use crate::exit::FAILED;
use crate::failure::Failure;

#[derive(clap::Args)]
#[command(next_help_heading = "Data")]
pub struct SplitArgs {
    /// Validation images carved from the training set (never the test set) to choose
    /// best.safetensors; 0 trains on every image and keeps no best [default: 5,000, or a tenth
    /// of a smaller training set]
    #[arg(long, value_name = "N", conflicts_with = "resume")]
    pub val_size: Option<usize>,
    /// Use only the first N training images (file order), before the validation split: a quick
    /// run on a slice.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub limit_train: Option<u64>,
    /// Evaluate on only the first N test images (file order).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub limit_test: Option<u64>,
}

impl SplitArgs {
    /// The training, validation and test images; `saved` is the validation size a resumed run
    /// recorded, which wins over the default.
    pub fn load(
        &self,
        dataset: Dataset,
        dir: &Path,
        saved: Option<usize>,
    ) -> Result<Data, Failure> {
        let train = load_split(dataset, Split::Train, dir)?;
        let test = limit(load_split(dataset, Split::Test, dir)?, self.limit_test);
        let (train, validation) = carve(&train, self.limit_train, saved.or(self.val_size))?;
        Ok(Data {
            train,
            validation,
            test,
        })
    }
}

/// The training images a command reads and the validation images it holds out of them, chosen as
/// `train` chooses them: what `rank`, `prune --by taylor` and `sensitivity` take.
#[derive(clap::Args)]
#[command(next_help_heading = "Data")]
pub struct HeldOutArgs {
    /// Validation images held out of the training set, the same images as `vggdsl train
    /// --val-size N` holds out: ranks and Taylor scores read only the rest, the images train
    /// trains on, and `sensitivity` measures on these [default: 5,000, or a tenth of a smaller
    /// training set]
    #[arg(long, value_name = "N")]
    pub val_size: Option<usize>,
    /// Use only the first N training images (file order), before the validation split, as
    /// `vggdsl train --limit-train N`.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub limit_train: Option<u64>,
}

impl HeldOutArgs {
    /// [`carve`] of the flags: the images trained on and the validation images.
    pub fn carve(&self, train: &ImageSet) -> Result<(ImageSet, Option<ImageSet>), Failure> {
        carve(train, self.limit_train, self.val_size)
    }
}

/// The first `n` images of `set` (all without `n`).
fn limit(set: ImageSet, n: Option<u64>) -> ImageSet {
    match n {
        Some(n) => split::first(&set, usize::try_from(n).unwrap_or(usize::MAX)),
        None => set,
    }
}

/// A training set's first `limit_train` images (all without it) split into the images trained
/// on and `size` validation images (the default size without it; none for 0): what every
/// command that needs validation images takes, so that they are the same images everywhere.
pub fn carve(
    train: &ImageSet,
    limit_train: Option<u64>,
    size: Option<usize>,
) -> Result<(ImageSet, Option<ImageSet>), Failure> {
    let train = limit(train.clone(), limit_train);
    let size = size.unwrap_or_else(|| default_validation_size(train.len()));
    carve_validation(&train, size).map_err(|e| Failure::new(FAILED, e))
}

/// `55,000 training, 5,000 validation, 10,000 test images`.
pub fn describe(data: &Data) -> String {
    let validation = data.validation.as_ref().map_or(0, |v| v.len());
    format!(
        "{} training, {} validation, {} test images",
        thousands(data.train.len() as u64),
        thousands(validation as u64),
        thousands(data.test.len() as u64)
    )
}
