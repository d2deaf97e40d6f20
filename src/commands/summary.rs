//! `vggdsl summary FILE [--json]`: the figures of each model, as a table or JSON.

use crate::failure::Failure;
use crate::{input, output, FileArg};
use vggdsl::analysis;

#[derive(clap::Args)]
pub struct Args {
    /// The .vgg file (`-` reads standard input).
    #[arg(value_name = "FILE")]
    file: FileArg,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let nets = input::load(&args.file)?;
    let summaries: Vec<_> = nets.iter().map(analysis::summarize).collect();
    let text = if args.json {
        let doc = serde_json::json!({ "models": summaries, "convention": analysis::CONVENTION });
        serde_json::to_string_pretty(&doc).expect("summaries serialize") + "\n"
    } else {
        let tables: Vec<String> = summaries.iter().map(|s| s.table()).collect();
        tables.join("\n")
    };
    output::stdout(text.as_bytes())
}
