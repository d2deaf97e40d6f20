//! `vggdsl study STUDY.toml [--out DIR] [--jobs N]`: a pruning study, every step run as the
//! command a user would type, resumable; `results.json` and `results.md` at the end.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use crate::exit::FAILED;
use crate::failure::Failure;
use crate::output;
use crate::study::{report, run, Study};

#[derive(clap::Args)]
pub struct Args {
    /// The study file (TOML; docs/language.md, "Study files").
    #[arg(value_name = "STUDY")]
    study: PathBuf,
    /// The study's folder: a folder per step, results.json, results.md [default: studies/<STUDY's
    /// name>]
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Steps run at the same time.
    #[arg(long, value_name = "N", default_value_t = NonZeroUsize::new(1).expect("positive"))]
    jobs: NonZeroUsize,
    /// Validation images held out of the training set by every step that reads it (training,
    /// ranking, Taylor scores, sensitivity), over the study file's `val_size`.
    #[arg(long, value_name = "N")]
    val_size: Option<u64>,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let stem = args
        .study
        .file_stem()
        .map_or("study".into(), |s| s.to_string_lossy().into_owned());
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("studies").join(stem));
    let study = Study::new(&args.study, out, args.val_size)?;
    ctrlc::set_handler(|| {
        if !run::STOP.swap(true, Ordering::Relaxed) {
            output::stderr("\nstopping the study's running steps\n");
        }
    })
    .map_err(|e| Failure::new(FAILED, format_args!("cannot catch Ctrl-C: {e}")))?;
    let threads = study.file.threads.unwrap_or(1);
    let done = run::run(&study.plan, &study.out, args.jobs.get(), threads)?;
    let results = report::collect(&study, &done)?;
    report::write(&study.out, &results)?;
    output::stderr(&format!(
        "study: {} runs; wrote {} and {}\n",
        results.rows.len(),
        study.out.join(report::RESULTS).display(),
        study.out.join(report::TABLE).display()
    ));
    output::stdout(results.table().as_bytes())
}
