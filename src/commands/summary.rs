//! `vggdsl summary FILE [--json] [--flops] [--count exact|hrank|hrankplus]`: the figures of each
//! model, as a table or JSON, each set printed with the convention it counts by.

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
    /// How to count: `exact` (vggdsl's own count of the network as built), `hrank` (HRank's
    /// get_flops.py, which its published params and FLOPs use) or `hrankplus` (the thop FLOPs
    /// and Conv2d + Linear params HRankPlus publishes).
    #[arg(long, value_enum, default_value_t = Count::Exact)]
    count: Count,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Count {
    Exact,
    Hrank,
    Hrankplus,
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
            Count::Hrank | Count::Hrankplus if args.flops => {
                return Err(Failure::new(
                    USAGE,
                    format_args!(
                    "--flops adds FLOPs to the exact count; --count {0} prints {1}'s own FLOPs \
                     without it",
                    if args.count == Count::Hrank { "hrank" } else { "hrankplus" },
                    if args.count == Count::Hrank { "HRank" } else { "HRankPlus" },
                ),
                ))
            }
            Count::Hrank | Count::Hrankplus => {
                let (count, convention): (fn(&_) -> _, _) = match args.count {
                    Count::Hrank => (analysis::hrank, Convention::hrank()),
                    _ => (analysis::hrankplus, Convention::hrankplus()),
                };
                let summaries: Vec<_> = nets.iter().map(count).collect();
                let tables = summaries.iter().map(|s| s.table());
                show(args.json, &summaries, tables, convention)
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
