//! `vggdsl summary FILE [--json] [--flops] [--count exact|hrank]`: the figures of each model, as
//! a table or JSON, each set printed with the convention it counts by.

use crate::exit::USAGE;
use crate::failure::Failure;
use crate::{input, output, FileArg};
use serde::Serialize;
use vggdsl::analysis::{self, Convention};

#[derive(clap::Args)]
pub struct Args {
    /// The .vgg file (`-` reads standard input).
    #[arg(value_name = "FILE")]
    file: FileArg,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Print FLOPs (2 × MACs) beside the MACs (the exact count only: HRank's has its own FLOPs).
    #[arg(long)]
    flops: bool,
    /// How to count: `exact` (vggdsl's own count of the network as built) or `hrank` (HRank's
    /// get_flops.py, which its published params and FLOPs use).
    #[arg(long, value_enum, default_value_t = Count::Exact)]
    count: Count,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Count {
    Exact,
    Hrank,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let nets = input::load(&args.file)?;
    let text =
        match args.count {
            Count::Exact => {
                let summaries: Vec<_> = nets
                    .iter()
                    .map(|n| {
                        let s = analysis::summarize(n);
                        if args.flops {
                            s.with_flops()
                        } else {
                            s
                        }
                    })
                    .collect();
                let tables = summaries.iter().map(|s| s.table());
                show(args.json, &summaries, tables, Convention::exact(args.flops))
            }
            Count::Hrank if args.flops => return Err(Failure::new(
                USAGE,
                "--flops adds FLOPs to the exact count; --count hrank prints HRank's own FLOPs \
                 without it",
            )),
            Count::Hrank => {
                let summaries: Vec<_> = nets.iter().map(analysis::hrank).collect();
                let tables = summaries.iter().map(|s| s.table());
                show(args.json, &summaries, tables, Convention::hrank())
            }
        };
    output::stdout(text.as_bytes())
}

/// The tables one after the other, or as JSON
/// `{"models": [...], "convention": {"name": …, "text": …}}`.
fn show<T: Serialize>(
    json: bool,
    models: &[T],
    tables: impl Iterator<Item = String>,
    convention: Convention,
) -> String {
    if json {
        let doc = Doc { models, convention };
        serde_json::to_string_pretty(&doc).expect("summaries serialize") + "\n"
    } else {
        tables.collect::<Vec<_>>().join("\n")
    }
}

#[derive(Serialize)]
struct Doc<'a, T> {
    models: &'a [T],
    convention: Convention,
}
