//! `vggdsl sensitivity FILE --weights W --out DIR`: every conv pruned alone at every rate,
//! without fine-tuning, measured on validation images carved from the training set, on the fused
//! inference path; written to `DIR/sensitivity.json` for `vggdsl prune --strategy sensitivity`
//! and `vggdsl plot sensitivity` (the format: [`vggdsl::files::sensitivity`]), and printed.

use std::io::IsTerminal;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use vggdsl::analysis::thousands;
use vggdsl::files::sensitivity::SensitivityFile;
use vggdsl_runtime::tch;
use vggdsl_train::latency::{At, LatencyTable};
use vggdsl_train::sensitivity::{sweep, Sweep};
use vggdsl_train::trainer::EVAL_BATCH;
use vggdsl_train::Request;

use super::criterion::CriterionArgs;
use super::device::DeviceArgs;
use super::prune::prune_failure;
use crate::exit::USAGE;
use crate::failure::Failure;
use crate::staged::Staged;
use crate::{input, output, FileArg};

/// The file `sensitivity` writes in DIR.
pub const SENSITIVITY_FILE: &str = "sensitivity.json";

#[derive(clap::Args)]
pub struct Args {
    /// The .vgg file (`-` reads standard input). Its model without `compress_rate` is the
    /// network the weights belong to.
    #[arg(value_name = "FILE")]
    file: FileArg,
    /// The model to sweep when FILE declares several.
    #[arg(long, value_name = "NAME")]
    model: Option<String>,
    /// The weights of the unpruned model (.safetensors or a torch.save archive).
    #[arg(long, value_name = "W")]
    weights: PathBuf,
    #[command(flatten)]
    criterion: CriterionArgs,
    /// The rates each conv is pruned at, one network each (a rate that leaves a conv no filter
    /// is skipped).
    #[arg(
        long,
        value_name = "R,…",
        value_delimiter = ',',
        default_value = "0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9"
    )]
    rates: Vec<f64>,
    /// Round every pruned width up to a multiple of N, as `prune --round-to` [default: FILE's
    /// round_to, else 1: no rounding]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(1..=65536))]
    round_to: Option<i64>,
    /// Seeds --by random.
    #[arg(long, value_name = "N", default_value_t = 0)]
    seed: u64,
    /// Images per batch of each latency, timed on this machine's to_inference() on the CPU
    /// (whatever --device).
    #[arg(long, value_name = "B", default_value_t = 1, value_parser = clap::value_parser!(i64).range(1..=65536))]
    latency_batch: i64,
    /// libtorch threads of each latency.
    #[arg(long, value_name = "T", default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..=1024))]
    latency_threads: i32,
    /// libtorch's intra-op threads for the rest [default: libtorch's, one per core]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(1..=1024))]
    threads: Option<i64>,
    // The networks are evaluated on --device; the criterion and the latencies run on the CPU.
    #[command(flatten)]
    device: DeviceArgs,
    /// The folder to write sensitivity.json in (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

pub fn run(args: Args) -> Result<(), Failure> {
    if let Some(r) = args.rates.iter().find(|r| !(0.0..1.0).contains(*r)) {
        return Err(Failure::new(
            USAGE,
            format_args!("--rates: rate {r} is outside [0, 1)"),
        ));
    }
    let device = args.device.checked()?;
    let source = input::read(&args.file)?;
    let nets = vggdsl::load(&source.text, &source.name).map_err(|d| Failure::invalid(&d))?;
    let model = input::model(&nets, args.model.as_deref(), &source.name)?;
    if let Some(threads) = args.threads {
        tch::set_num_threads(threads as i32);
    }
    // Before the work (and the data): a folder that cannot be written fails first.
    let mut staged = Staged::new(&args.out)?;
    // Taylor scores on the images trained on; the sweep measures on the held-out ones.
    let (train, validation) = args.criterion.data.training_set(model)?;
    let Some(validation) = validation else {
        return Err(Failure::new(
            USAGE,
            "--val-size 0 leaves no validation image",
        ));
    };
    let by = args.criterion.by(Some(&train))?;
    let request = Request {
        source: &source.text,
        file_name: &source.name,
        model,
        weights: &args.weights,
        rates: None,
        by,
        rule: Default::default(),
        round_to: args.round_to,
        inherit: Default::default(),
        seed: args.seed,
        name: None,
    };
    let sweep_of = Sweep {
        request: &request,
        by: by.name(),
        rates: &args.rates,
        validation: &validation.on(device),
        batch_size: NonZeroUsize::new(EVAL_BATCH).expect("positive"),
        latency: At {
            batch: args.latency_batch,
            threads: args.latency_threads,
        },
    };
    let bar = progress(model.convs().count() * args.rates.len());
    let mut table = LatencyTable::for_this_machine();
    let file = sweep(&sweep_of, &mut table, &mut |p| {
        bar.set_position(p.done as u64);
        bar.set_message(format!("{} at {}", p.conv, p.rate));
    })
    .map_err(|e| prune_failure(e, &request))?;
    bar.finish_and_clear();
    staged.write(SENSITIVITY_FILE, file.to_json().as_bytes())?;
    staged.commit()?;
    output::stdout(report(&file, &args.out.join(SENSITIVITY_FILE)).as_bytes())
}

/// A bar on a terminal, nothing otherwise.
fn progress(total: usize) -> ProgressBar {
    let bar = if std::io::stderr().is_terminal() {
        ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("sweeping [{bar:30}] {pos}/{len} networks ({msg}), ETA {eta}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar
}

/// The unpruned figures, a row of accuracies per conv, where the time went.
fn report(file: &SensitivityFile, path: &Path) -> String {
    use comfy_table::{presets::UTF8_FULL_CONDENSED, CellAlignment, Table};
    let u = &file.unpruned;
    let threads = file.latency.threads;
    let mut out = format!(
        "{}: each conv pruned alone, filters kept by {}, on {} validation images of {}\n\
         unpruned: accuracy {:.2}%, loss {:.4}, {} params, {} MACs, {:.3} ms (batch {}, {} \
         thread{})\n",
        file.model,
        file.by,
        thousands(file.validation.images),
        file.validation.dataset,
        100.0 * u.accuracy,
        u.loss,
        thousands(u.params),
        thousands(u.macs),
        u.latency_ms,
        file.latency.batch,
        threads,
        if threads == 1 { "" } else { "s" }
    );
    let mut rates: Vec<f64> = file
        .convs
        .iter()
        .flat_map(|c| c.points.iter().map(|p| p.rate))
        .collect();
    rates.sort_by(f64::total_cmp);
    rates.dedup();
    let mut t = Table::new();
    let mut header = vec!["accuracy (%) at rate".to_owned(), "filters".to_owned()];
    header.extend(rates.iter().map(|r| r.to_string()));
    t.load_preset(UTF8_FULL_CONDENSED).set_header(header);
    for conv in &file.convs {
        let mut row = vec![conv.name.clone(), conv.width.to_string()];
        row.extend(rates.iter().map(|&r| {
            conv.points
                .iter()
                .find(|p| p.rate == r)
                .map_or("-".to_owned(), |p| format!("{:.2}", 100.0 * p.accuracy))
        }));
        t.add_row(row);
    }
    for i in 1..rates.len() + 2 {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    let s = &file.seconds;
    out += &format!(
        "{t}\ntime: {:.1} s (maps before each conv {:.1} s, networks cut {:.1} s, evaluated \
         {:.1} s, latency {:.1} s)\nwrote {}\n",
        s.total,
        s.cache,
        s.prune,
        s.evaluate,
        s.latency,
        path.display()
    );
    out
}
