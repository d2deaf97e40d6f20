//! `vggdsl rank FILE --weights W --out RANKS_DIR`: HRank's filter scores, the mean matrix rank
//! of each filter's feature map over the first `--limit` batches of the images `train` trains on
//! (the training set less its validation split), written to `RANKS_DIR/ranks.json` for `vggdsl
//! prune --ranks` (the format: [`vggdsl::files::ranks`]).

use std::io::IsTerminal;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use vggdsl::check::MAX_BATCH;
use vggdsl::files::ranks::RanksFile;
use vggdsl_train::data::{Dataset, Split};
use vggdsl_train::hrank::RankSums;

use super::setup::{Trained, TrainedArgs};
use super::split::HeldOutArgs;
use crate::exit::FAILED;
use crate::failure::Failure;
use crate::staged::Staged;
use crate::{input, numbers, output, FileArg};

/// The file `rank` writes in RANKS_DIR.
pub const RANKS_FILE: &str = "ranks.json";

/// The most batches `--limit` takes: more than any training set vggdsl reads holds.
const MAX_LIMIT: usize = 1_000_000;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    trained: TrainedArgs,
    /// How many batches of the images train trains on to rank over (HRank: 5 of 128 images).
    #[arg(
        long,
        value_name = "N",
        default_value_t = NonZeroUsize::new(5).expect("positive"),
        value_parser = numbers::count::<NonZeroUsize>(MAX_LIMIT),
        allow_negative_numbers = true
    )]
    limit: NonZeroUsize,
    /// Images per batch.
    #[arg(
        long,
        value_name = "N",
        default_value_t = NonZeroUsize::new(128).expect("positive"),
        value_parser = numbers::count::<NonZeroUsize>(MAX_BATCH as usize),
        allow_negative_numbers = true
    )]
    batch_size: NonZeroUsize,
    /// The folder to write ranks.json in (created if missing; an existing ranks.json is replaced
    /// only if it is one).
    #[arg(long, value_name = "RANKS_DIR")]
    out: PathBuf,
    #[command(flatten)]
    held_out: HeldOutArgs,
}

/// Ranks the first `limit × batch_size` images `train` trains on, in file order, unaugmented, so
/// that the same weights always give the same ranks (HRank's loader shuffles and augments) and
/// no validation image is read.
pub fn run(args: Args) -> Result<(), Failure> {
    // Before any work: a folder that cannot be written, or another command's, fails first.
    let mut staged = Staged::new(&args.out)?;
    refuse_foreign(&staged)?;
    let Trained { model, net, data } = args.trained.load(Split::Train)?;
    let (train, validation) = args.held_out.carve(&data)?;
    let held_out = validation.map_or(0, |v| v.len());
    let images = args
        .limit
        .get()
        .saturating_mul(args.batch_size.get())
        .min(train.len());

    let bar = if std::io::stderr().is_terminal() {
        ProgressBar::with_draw_target(Some(images as u64), ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("ranking [{bar:30}] {pos}/{len} images, ETA {eta}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    let mut sums = RankSums::new(&net);
    for batch in train.in_order(args.batch_size, images) {
        if let Err(e) = sums.add(&net, &batch.images) {
            bar.finish_and_clear();
            return Err(Failure::new(FAILED, format_args!("cannot rank: {e}")));
        }
        bar.set_position(sums.images() as u64);
    }
    bar.finish_and_clear();
    let ranks = sums.means();

    staged.write(RANKS_FILE, ranks.to_json().as_bytes())?;
    staged.commit()?;
    let path = args.out.join(RANKS_FILE);
    output::stdout(report(&ranks, model.dataset, held_out, &path).as_bytes())
}

/// An existing RANKS_DIR/ranks.json is replaced only if it is a ranks file: anything else there
/// by that name is someone's work.
fn refuse_foreign(staged: &Staged) -> Result<(), Failure> {
    let path = staged.path().join(RANKS_FILE);
    if !path.exists() || input::ranks(&FileArg::Path(path.clone()), input::MAX_DATA_BYTES).is_ok() {
        return Ok(());
    }
    Err(Failure::new(
        FAILED,
        format_args!(
            "cannot write {}: it is not a ranks file, so vggdsl did not write it and will not \
             replace it",
            path.display()
        ),
    ))
}

/// One line per conv: how its filters' mean ranks spread, and how many are dead (rank 0).
fn report(ranks: &RanksFile, dataset: Dataset, held_out: usize, path: &Path) -> String {
    let mut out = format!(
        "{}: mean feature-map rank per filter over the first {} training images of {dataset} \
         ({held_out} held out for validation, not read)\n",
        ranks.model, ranks.images
    );
    for (conv, means) in &ranks.convs {
        let (min, max) = means
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &m| {
                (lo.min(m), hi.max(m))
            });
        let mean = means.iter().sum::<f64>() / means.len() as f64;
        let dead = means.iter().filter(|&&m| m == 0.0).count();
        out += &format!(
            "  {conv:<8} {:>5} filters  mean {mean:7.3}  min {min:7.3}  max {max:7.3}  rank 0: {dead}\n",
            means.len()
        );
    }
    out + &format!("wrote {}\n", path.display())
}
