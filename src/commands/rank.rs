//! `vggdsl rank FILE --weights W --out RANKS_DIR`: HRank's filter scores, the mean matrix rank
//! of each filter's feature map over the first `--limit` batches of the training set, written to
//! `RANKS_DIR/ranks.json` for `vggdsl prune --ranks`, and the file format's one home.

use std::io::IsTerminal;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use vggdsl_runtime::data::Split;
use vggdsl_runtime::hrank::{RankSums, Ranks};
use vggdsl_runtime::tch::nn::VarStore;
use vggdsl_runtime::tch::Device;
use vggdsl_runtime::Network;

use super::setup::{load_failure, load_split, ModelArgs};
use crate::failure::{Failure, FAILED, UNREADABLE};
use crate::output;
use crate::staged::Staged;

/// The exit codes of `rank`.
pub const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  FILE, the data or the weights are invalid, or RANKS_DIR cannot be written (nothing is written)
  2  a FILE cannot be read, or the command line is wrong";

/// The file `rank` writes in RANKS_DIR.
pub const RANKS_FILE: &str = "ranks.json";

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// The model's weights (.safetensors or a torch.save archive), loaded strictly.
    #[arg(long, value_name = "W")]
    weights: PathBuf,
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
    let model = args.model.model()?;
    let name = model.ir.spec.name.clone();
    let mut vs = VarStore::new(Device::Cpu);
    let net = Network::new(&vs.root(), &model.ir);
    vggdsl_runtime::load_state_dict(&mut vs, &args.weights).map_err(|e| load_failure(&e, &name))?;
    let train = load_split(
        model.dataset,
        Split::Train,
        &args.model.data_dir(model.dataset)?,
    )?;
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
    staged.write(RANKS_FILE, to_json(&ranks).as_bytes())?;
    staged.commit()?;
    output::stdout(report(&ranks, model.dataset, &args.out.join(RANKS_FILE)).as_bytes())
}

/// One line per conv: how its filters' mean ranks spread, and how many are dead (rank 0).
fn report(ranks: &Ranks, dataset: vggdsl_runtime::data::Dataset, path: &Path) -> String {
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

/// `{"model": …, "images": N, "ranks": {"conv0": [mean rank per filter, …], …}}`, convs in order.
pub fn to_json(ranks: &Ranks) -> String {
    #[derive(Serialize)]
    struct File<'a> {
        model: &'a str,
        images: i64,
        ranks: InOrder<'a>,
    }
    struct InOrder<'a>(&'a [(String, Vec<f64>)]);
    impl Serialize for InOrder<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
        }
    }
    let file = File {
        model: &ranks.model,
        images: ranks.images,
        ranks: InOrder(&ranks.convs),
    };
    serde_json::to_string_pretty(&file).expect("ranks serialize") + "\n"
}

/// Reads a ranks file that `vggdsl rank` wrote; anything else is one sentence.
pub fn read(path: &Path) -> Result<Ranks, Failure> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        model: String,
        images: i64,
        ranks: InOrder,
    }
    struct InOrder(Vec<(String, Vec<f64>)>);
    impl<'de> Deserialize<'de> for InOrder {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct Entries;
            impl<'de> Visitor<'de> for Entries {
                type Value = InOrder;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a map from conv names to lists of mean ranks")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<InOrder, A::Error> {
                    let mut entries = Vec::new();
                    while let Some(entry) = map.next_entry()? {
                        entries.push(entry);
                    }
                    Ok(InOrder(entries))
                }
            }
            d.deserialize_map(Entries)
        }
    }
    let text = std::fs::read_to_string(path).map_err(|e| {
        Failure::new(
            UNREADABLE,
            format_args!("cannot read {}: {e}", path.display()),
        )
    })?;
    let file: File = serde_json::from_str(&text).map_err(|e| {
        Failure::new(
            FAILED,
            format_args!(
                "{} is not a ranks file of `vggdsl rank`: {e}",
                path.display()
            ),
        )
    })?;
    Ok(Ranks {
        model: file.model,
        images: file.images,
        convs: file.ranks.0,
    })
}
