//! `vggdsl latency FILE [--batch B] [--threads T]`: how long a model's inference form
//! (`to_inference()`: BatchNorm folded, ReLU fused) takes on one batch, the median of timed runs.
//! The weights are a fresh init: the time does not depend on their values.

use std::num::NonZeroUsize;

use serde::Serialize;
use vggdsl_train::latency::{self, At};

use crate::failure::Failure;
use crate::{input, output, FileArg};

/// Untimed passes before the timed ones: the kernel choices and oneDNN's packings happen there.
const WARMUP: usize = 5;

#[derive(clap::Args)]
pub struct Args {
    /// The .vgg file (`-` reads standard input).
    #[arg(value_name = "FILE")]
    file: FileArg,
    /// The model to time when FILE declares several.
    #[arg(long, value_name = "NAME")]
    model: Option<String>,
    /// Images per forward pass.
    #[arg(long, value_name = "B", default_value_t = NonZeroUsize::new(1).expect("positive"))]
    batch: NonZeroUsize,
    /// libtorch's intra-op threads.
    #[arg(long, value_name = "T", default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..=1024))]
    threads: i32,
    /// Timed forward passes (after 5 untimed ones).
    #[arg(long, value_name = "N", default_value_t = NonZeroUsize::new(50).expect("positive"))]
    iterations: NonZeroUsize,
    /// Print one JSON object: model, batch, threads, iterations, median_ms.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Report<'a> {
    model: &'a str,
    batch: usize,
    threads: i32,
    iterations: usize,
    median_ms: f64,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let source = input::read(&args.file)?;
    let nets = vggdsl::load(&source.text, &source.name).map_err(|d| Failure::invalid(&d))?;
    let ir = input::model(&nets, args.model.as_deref(), &source.name)?;
    let at = At {
        batch: args.batch.get() as i64,
        threads: args.threads,
    };
    let median_ms = latency::measure_runs(ir, at, WARMUP, args.iterations.get());
    let report = Report {
        model: &ir.spec.name,
        batch: args.batch.get(),
        threads: args.threads,
        iterations: args.iterations.get(),
        median_ms,
    };
    let text = if args.json {
        serde_json::to_string(&report).expect("a report serializes") + "\n"
    } else {
        format!(
            "{}: {:.3} ms per batch of {} (median of {} runs of to_inference(), {} thread{})\n",
            report.model,
            report.median_ms,
            report.batch,
            report.iterations,
            report.threads,
            if report.threads == 1 { "" } else { "s" }
        )
    };
    output::stdout(text.as_bytes())
}
