//! `vggdsl plot KIND … -o OUT.svg`: the pictures pruning work is read in: channel widths, filter
//! ranks with their cut, training curves, each conv's sensitivity to pruning, and inference
//! throughput against batch size. SVG, or PNG when OUT ends in `.png`.

use crate::exit::{FAILED, MODEL, USAGE};
use crate::failure::Failure;
use crate::plot::{self, bench, ranks, sensitivity, study, training, widths};
use crate::{input, output, rates, FileArg};
use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use vggdsl::files::ranks::max_bytes;
use vggdsl::spec::CfgItem;

#[derive(clap::Args)]
#[command(allow_external_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    kind: Kind,
}

/// The kinds of picture, as `vggdsl plot --help` lists them.
const KINDS: &str = "widths, ranks, training, sensitivity, bench and study";

#[derive(clap::Subcommand)]
enum Kind {
    /// Per-layer channel widths, unpruned vs pruned, and per-layer params and MACs; several
    /// models side by side.
    Widths {
        /// The .vgg files; every model of each is drawn, in order (`-` reads standard input).
        #[arg(required = true, value_name = "MODEL.vgg")]
        files: Vec<FileArg>,
        #[command(flatten)]
        out: Out,
    },
    /// Per conv, the distribution of filter ranks, and the cut a compress_rate makes.
    Ranks {
        /// A ranks file, as `vggdsl rank` writes it: JSON {"model": NAME, "images": N,
        /// "ranks": {"conv0": [...], ...}} (docs/language.md, "Ranks files"; `-` reads standard
        /// input).
        #[arg(value_name = "RANKS")]
        ranks: FileArg,
        /// The model the ranks belong to: its convs' names and cfg widths must be the file's,
        /// and its compress_rate gives the cut.
        #[arg(long, value_name = "MODEL.vgg")]
        model: Option<FileArg>,
        /// The cut, as in a .vgg file: "[0.95] + [0.5] * 6 + ..." (instead of the model's).
        #[arg(long, value_name = "RATES")]
        compress_rate: Option<String>,
        #[command(flatten)]
        out: Out,
    },
    /// Loss and accuracy per epoch of runs (the metrics.jsonl of each run folder): train, test
    /// and, with a validation split, validation; to compare a baseline with its fine-tuned pruned
    /// model.
    Training {
        /// Run folders holding metrics.jsonl (or metrics files themselves); the legend names
        /// each run by its folder.
        #[arg(required = true, value_name = "RUN_DIR")]
        runs: Vec<PathBuf>,
        #[command(flatten)]
        out: Out,
    },
    /// The accuracy with one conv pruned against the rate, a line per conv, from a sweep of
    /// `vggdsl sensitivity`.
    Sensitivity {
        /// A sensitivity file, as `vggdsl sensitivity` writes it (docs/language.md,
        /// "Sensitivity files").
        #[arg(value_name = "SENSITIVITY")]
        sensitivity: PathBuf,
        #[command(flatten)]
        out: Out,
    },
    /// Inference throughput (images/s) against batch size of every variant of a benchmark run,
    /// one panel per thread count; both axes on a log scale.
    Bench {
        /// A benchmark results file: JSON {"model": NAME, "rows": [{"variant": NAME, "threads":
        /// N, "batch": N, "images_per_second": X}, ...]} (docs/language.md, "Benchmark results
        /// files"; `-` reads standard input).
        #[arg(value_name = "RESULTS.json")]
        results: FileArg,
        #[command(flatten)]
        out: Out,
    },
    /// A study's test accuracy against MACs per method, mean ± standard deviation over the
    /// seeds, the unpruned base as a line (the results.json of `vggdsl study`).
    Study {
        /// A study's results.json (docs/language.md, "Study results files"; `-` reads standard
        /// input).
        #[arg(value_name = "RESULTS.json")]
        results: FileArg,
        #[command(flatten)]
        out: Out,
    },
    #[command(external_subcommand)]
    Unknown(Vec<OsString>),
}

#[derive(clap::Args)]
struct Out {
    /// The picture to write: SVG, or PNG when it ends in .png (`-` writes SVG to standard output);
    /// a file there is replaced only if vggdsl drew it.
    #[arg(short, long, value_name = "OUT.svg")]
    output: FileArg,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let (svg, out) = match args.kind {
        Kind::Widths { files, out } => {
            let mut models = Vec::new();
            for file in &files {
                models.extend(input::load(file)?.iter().map(widths::Model::new));
            }
            let (w, h) = widths::size(models.len());
            (plot::svg(w, h, |root| widths::draw(root, &models)), out)
        }
        Kind::Ranks {
            ranks,
            model,
            compress_rate,
            out,
        } => (
            ranks_figure(&ranks, model.as_ref(), compress_rate.as_deref())?,
            out,
        ),
        Kind::Training { runs, out } => {
            let runs = runs
                .iter()
                .map(|path| training::Run::read(path))
                .collect::<Result<Vec<_>, _>>()?;
            let (w, h) = training::SIZE;
            (plot::svg(w, h, |root| training::draw(root, &runs)), out)
        }
        Kind::Sensitivity {
            sensitivity: path,
            out,
        } => {
            let file = input::sensitivity(&path)?;
            let (w, h) = sensitivity::SIZE;
            (plot::svg(w, h, |root| sensitivity::draw(root, &file)), out)
        }
        Kind::Bench { results, out } => {
            let results = bench::Results::read(&results)?;
            let (w, h) = bench::size(&results);
            (plot::svg(w, h, |root| bench::draw(root, &results)), out)
        }
        Kind::Study { results, out } => {
            let results = study::read(&results)?;
            let (w, h) = study::SIZE;
            (plot::svg(w, h, |root| study::draw(root, &results)), out)
        }
        Kind::Unknown(words) => {
            let kind = words
                .first()
                .map_or_else(String::new, |w| w.to_string_lossy().into_owned());
            return Err(Failure::new(
                FAILED,
                format_args!("unknown plot kind `{kind}`; the kinds are {KINDS}"),
            ));
        }
    };
    let svg = svg.map_err(|e| Failure::new(FAILED, e))?;
    write(&out.output, svg)
}

/// The ranks picture: RANKS checked against `model` if given, cut by `compress_rate` or else the
/// model's own rates.
fn ranks_figure(
    file: &FileArg,
    model: Option<&FileArg>,
    compress_rate: Option<&str>,
) -> Result<Result<String, String>, Failure> {
    let model = match model {
        Some(file) => Some(single_model(file)?),
        None => None,
    };
    let max = model
        .as_ref()
        .map_or(input::MAX_DATA_BYTES, |(_, net)| ranks_bytes(net));
    let mut figure = ranks::Ranks::new(input::ranks(file, max)?);
    if let Some((source, net)) = &model {
        figure.check_against(net).map_err(|e| {
            let path = match file {
                FileArg::Path(path) => path.display().to_string(),
                FileArg::Std => "<stdin>".to_owned(),
            };
            let file = &source.name;
            Failure::new(FAILED, format_args!("{path} does not fit {file}: {e}"))
        })?;
    }
    let rates = match (compress_rate, &model) {
        (Some(flag), Some((source, net))) => {
            Some(rates::from_flag(&source.text, &net.spec.name, flag)?)
        }
        (Some(flag), None) => {
            let (source, name) = figure.as_model();
            Some(rates::from_flag(&source, name, flag)?)
        }
        (None, model) => model
            .as_ref()
            .and_then(|(_, m)| m.spec.compress_rate.clone()),
    };
    let round_to = model.as_ref().map_or(1, |(_, m)| m.spec.round_to());
    figure.cut(rates.as_deref(), round_to);
    let (w, h) = ranks::size(&figure);
    Ok(plot::svg(w, h, |root| ranks::draw(root, &figure)))
}

/// The most a ranks file of `net` (its filters by its cfg widths) is read to.
fn ranks_bytes(net: &vggdsl::Architecture) -> u64 {
    let widths = net.spec.features().iter().map(|item| match item {
        CfgItem::Conv(width) => *width as u64,
        CfgItem::Pool => 0,
    });
    max_bytes(widths.sum())
}

/// The one model of a `--model` file, and the file.
fn single_model(file: &FileArg) -> Result<(input::Source, vggdsl::Architecture), Failure> {
    let source = input::read(file)?;
    let nets = vggdsl::load(&source.text, &source.name).map_err(|d| Failure::invalid(&d))?;
    // `--model` is the file here: a file of several models is the command line's mistake.
    let model = vggdsl::pick(&nets, None, &source.name).map_err(|_| {
        let names: Vec<&str> = nets.iter().map(|n| n.spec.name.as_str()).collect();
        Failure::new(
            MODEL,
            format_args!(
                "--model needs a file with one model; it has {}",
                names.join(", ")
            ),
        )
    })?;
    Ok((source, model.clone()))
}

/// The figure to `target`: SVG, PNG for a `.png` path; a path ending otherwise is refused, so
/// that a mistyped `-o` never overwrites a model or a data file.
fn write(target: &FileArg, svg: String) -> Result<(), Failure> {
    let path = match target {
        FileArg::Std => return output::stdout(svg.as_bytes()),
        FileArg::Path(path) => path,
    };
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let bytes = match extension.as_deref() {
        Some("svg") => svg.into_bytes(),
        Some("png") => plot::png(&svg).map_err(|e| Failure::new(FAILED, e))?,
        _ => {
            return Err(Failure::new(
                USAGE,
                format_args!(
                    "cannot write {}: a picture's name ends in .svg or .png",
                    path.display()
                ),
            ))
        }
    };
    refuse_foreign(path)?;
    // Through a symlink, the picture it points to is replaced, not the link.
    let target = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
    vggdsl::atomic::write(&target, &bytes).map_err(|e| Failure::write(path.display(), e))
}

/// A file at `path` is replaced only if it is a picture vggdsl drew ([`plot::drew`]): anything
/// else by that name is someone's work.
fn refuse_foreign(path: &Path) -> Result<(), Failure> {
    let refuse = |why: &str| {
        Failure::new(
            FAILED,
            format_args!("cannot write {}: {why}", path.display()),
        )
    };
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Failure::write(path.display(), e)),
        Ok(meta) if !meta.is_file() => return Err(refuse("it is not a file")),
        Ok(_) => {}
    }
    let mut head = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(plot::MARK_BYTES as u64).read_to_end(&mut head))
        .map_err(|e| Failure::write(path.display(), e))?;
    if plot::drew(&head) {
        Ok(())
    } else {
        Err(refuse(
            "it is not a picture vggdsl drew, so vggdsl will not replace it",
        ))
    }
}
