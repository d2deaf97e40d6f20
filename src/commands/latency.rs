//! `vggdsl latency FILE [--batch B] [--threads T]`: how long a model's inference form
//! (`to_inference()`: BatchNorm folded, ReLU fused) takes on one batch, the median of timed runs.
//! The weights are the model's seeded init: the time does not depend on their values.

use std::num::NonZeroUsize;
use std::time::Instant;

use serde::Serialize;
use vggdsl_runtime::tch::nn::VarStore;
use vggdsl_runtime::tch::{self, Device, Kind, Tensor};
use vggdsl_runtime::Network;

use crate::failure::Failure;
use crate::{input, output, FileArg};

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
    tch::set_num_threads(args.threads);
    tch::manual_seed(0);
    let vs = VarStore::new(Device::Cpu);
    let inference = Network::new(&vs.root(), ir).to_inference();
    let [c, h, w] = ir.spec.input;
    let xs = Tensor::randn(
        [args.batch.get() as i64, c, h, w],
        (Kind::Float, Device::Cpu),
    );
    for _ in 0..5 {
        let _ = inference.forward(&xs);
    }
    let mut times: Vec<f64> = (0..args.iterations.get())
        .map(|_| {
            let start = Instant::now();
            let _ = inference.forward(&xs);
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    let report = Report {
        model: &ir.spec.name,
        batch: args.batch.get(),
        threads: args.threads,
        iterations: times.len(),
        median_ms: times[times.len() / 2],
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
