//! What `prune` and `sensitivity` share: which filters of a conv survive (`--by`, with `--ranks`
//! for HRank's ranks and the training images `--by taylor` scores on, never the validation images
//! `train` holds out), so that a sweep measures the filters a prune of the same flags keeps.

use std::num::NonZeroUsize;
use std::path::PathBuf;

use clap::ValueEnum;
use vggdsl_train::data::{Dataset, ImageSet, Split};
use vggdsl_train::prune::{By as Criterion, TaylorImages};

use super::setup::{self, load_split, parse_dataset};
use super::split::HeldOutArgs;
use crate::exit::{FAILED, USAGE};
use crate::failure::Failure;

#[derive(clap::Args)]
pub struct CriterionArgs {
    /// ranks.json from `vggdsl rank` on the unpruned model (needed with --by rank).
    #[arg(long, value_name = "R")]
    ranks: Option<PathBuf>,
    /// Which filters survive: the highest mean feature-map rank, the largest L1 norm, a random
    /// choice (seeded by --seed), the largest BatchNorm scale |γ| (Network Slimming), the
    /// largest sum of distances to the conv's other filters (FPGM), or the highest first-order
    /// Taylor importance |a·∂L/∂a| over the training images train trains on (not the
    /// --val-size images it holds out); ties go to the lower filter index.
    #[arg(long, value_enum, default_value_t = By::Rank)]
    by: By,
    #[command(flatten)]
    pub data: DataArgs,
}

/// The training images `--by taylor` scores filters on (the first batches, in file order, of
/// the images `train` trains on), and the dataset other data comes from.
#[derive(clap::Args)]
#[command(next_help_heading = "Data")]
pub struct DataArgs {
    /// The dataset [default: the one whose images and classes the model takes]
    #[arg(long, value_name = "NAME", value_parser = parse_dataset)]
    dataset: Option<Dataset>,
    /// The folder holding the dataset's files [default for fashion-mnist: Debian's]
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// How many batches (of the images train trains on) the Taylor importance averages over.
    #[arg(long, value_name = "N", default_value_t = NonZeroUsize::new(5).expect("positive"))]
    limit: NonZeroUsize,
    /// Images per batch of the Taylor importance.
    #[arg(long, value_name = "N", default_value_t = NonZeroUsize::new(128).expect("positive"))]
    batch_size: NonZeroUsize,
    #[command(flatten)]
    pub held_out: HeldOutArgs,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum By {
    Rank,
    L1,
    Random,
    Bn,
    Fpgm,
    Taylor,
}

impl By {
    fn name(self) -> &'static str {
        match self {
            By::Rank => "rank",
            By::L1 => "l1",
            By::Random => "random",
            By::Bn => "bn",
            By::Fpgm => "fpgm",
            By::Taylor => "taylor",
        }
    }
}

impl CriterionArgs {
    /// The training images `--by taylor` reads (those `train` trains on); `None` for the other
    /// criteria.
    pub fn taylor_images(&self, model: &vggdsl::Architecture) -> Result<Option<ImageSet>, Failure> {
        match self.by {
            By::Taylor => self.data.training_set(model).map(|(train, _)| Some(train)),
            _ => Ok(None),
        }
    }

    /// The criterion of the flags; `taylor` is [`CriterionArgs::taylor_images`]'s set.
    pub fn by<'a>(&'a self, taylor: Option<&'a ImageSet>) -> Result<Criterion<'a>, Failure> {
        Ok(match (self.by, &self.ranks) {
            (By::Rank, Some(path)) => Criterion::Rank(path),
            (By::Rank, None) => {
                return Err(Failure::new(
                    USAGE,
                    "--by rank needs --ranks R, the ranks.json of `vggdsl rank`",
                ))
            }
            (by, Some(_)) => {
                return Err(Failure::new(
                    USAGE,
                    format_args!(
                        "--ranks is read only by --by rank, so --by {} would ignore it; leave it \
                         out, or --by rank",
                        by.name()
                    ),
                ))
            }
            (By::L1, None) => Criterion::L1,
            (By::Random, None) => Criterion::Random,
            (By::Bn, None) => Criterion::Bn,
            (By::Fpgm, None) => Criterion::Fpgm,
            (By::Taylor, None) => Criterion::Taylor(TaylorImages {
                set: taylor.expect("loaded for --by taylor"),
                images: self
                    .data
                    .limit
                    .get()
                    .saturating_mul(self.data.batch_size.get()),
                batch_size: self.data.batch_size,
            }),
        })
    }
}

impl DataArgs {
    /// The training set of the dataset the model takes (or `--dataset`), from `--data` or where
    /// a system package installed it, split as `train` splits it: the images trained on and the
    /// validation images.
    pub fn training_set(
        &self,
        model: &vggdsl::Architecture,
    ) -> Result<(ImageSet, Option<ImageSet>), Failure> {
        let spec = &model.spec;
        let dataset = self
            .dataset
            .or_else(|| setup::infer_dataset(spec.input, spec.num_classes))
            .ok_or_else(|| {
                Failure::new(
                    USAGE,
                    "no dataset vggdsl knows has the model's images and classes: name one with \
                     --dataset",
                )
            })?;
        dataset
            .check_model(&spec.name, spec.input, spec.num_classes)
            .map_err(|e| Failure::new(FAILED, e))?;
        let dir = setup::data_dir(self.data.as_ref(), dataset)?;
        self.held_out
            .carve(&load_split(dataset, Split::Train, &dir)?)
    }
}
