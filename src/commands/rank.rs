//! `vggdsl rank FILE --weights W --out RANKS_DIR`: HRank's filter scores, the mean matrix rank
//! of each filter's feature map over the first `--limit` batches of the training set, written to
//! `RANKS_DIR/ranks.json` for `vggdsl prune --ranks` (the format: [`vggdsl::files::ranks`]).

use std::io::IsTerminal;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use vggdsl::files::ranks::RanksFile;
use vggdsl_train::data::{Dataset, Split};
use vggdsl_train::hrank::RankSums;

use super::setup::{Trained, TrainedArgs};
use crate::failure::Failure;
use crate::output;
use crate::staged::Staged;

/// The file `rank` writes in RANKS_DIR.
pub const RANKS_FILE: &str = "ranks.json";

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    trained: TrainedArgs,
    /// How many batches of the training set to rank over (HRank: 5 of 128 images).
    #[arg(long, value_name = "N", default_value_t = NonZeroUsize::new(5).expect("positive"))]
    limit: NonZeroUsize,
    /// Images per batch.
    #[arg(long, value_name = "N", default_value_t = NonZeroUsize::new(128).expect("positive"))]
    batch_size: NonZeroUsize,
    /// The folder to write ranks.json in (created if missing).
    #[arg(long, value_name = "RANKS_DIR")]
    out: PathBuf,
}

/// Ranks the training set's first `limit × batch_size` images in file order, unaugmented, so
/// that the same weights always give the same ranks (HRank's loader shuffles and augments).
pub fn run(args: Args) -> Result<(), Failure> {
    let Trained {
        model,
        net,
        data: train,
    } = args.trained.load(Split::Train)?;
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
        sums.add(&net, &batch.images);
        bar.set_position(sums.images() as u64);
    }
    bar.finish_and_clear();
    let ranks = sums.means();

    let mut staged = Staged::new(&args.out)?;
    staged.write(RANKS_FILE, ranks.to_json().as_bytes())?;
    staged.commit()?;
    output::stdout(report(&ranks, model.dataset, &args.out.join(RANKS_FILE)).as_bytes())
}

/// One line per conv: how its filters' mean ranks spread, and how many are dead (rank 0).
fn report(ranks: &RanksFile, dataset: Dataset, path: &Path) -> String {
    let mut out = format!(
        "{}: mean feature-map rank per filter over the first {} training images of {dataset}\n",
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
