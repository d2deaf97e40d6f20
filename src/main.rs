//! The `vggdsl` command: every subcommand, as thin shells over the `vggdsl` compiler library
//! (and, with the `torch` feature, `vggdsl-runtime`).

use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

/// vggdsl: VGG-family networks written as cfg lists, compiled to typed Rust code on tch.
///
/// A `.vgg` file declares models such as
/// `model Vgg16Bn { cfg = default  bn = true  num_classes = 10 }`
/// (or the compact form `pub Vgg16Bn<cfg = default, bn = true>`). The language reference is
/// docs/language.md.
#[derive(Parser)]
#[command(name = "vggdsl", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check files: silent with exit 0 when valid, diagnostics on stderr and exit 1 otherwise.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print each model's layers, output shapes, parameters and MACs, and HRank's relucfg/convcfg.
    Summary {
        file: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Compile a file to formatted Rust source for tch (stdout, or OUT written only if changed).
    Compile {
        file: PathBuf,
        /// Write the Rust source here instead of stdout.
        #[arg(short, long, value_name = "OUT.rs")]
        output: Option<PathBuf>,
    },
}

/// Exit codes: 1 for invalid input, 2 for files that cannot be read or written.
enum Failure {
    Invalid,
    Io,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Invalid) => ExitCode::from(1),
        Err(Failure::Io) => ExitCode::from(2),
    }
}

fn run(command: Command) -> Result<(), Failure> {
    match command {
        Command::Check { files } => {
            let mut result = Ok(());
            for f in &files {
                if let Err(e) = load(f) {
                    result = Err(e);
                }
            }
            result
        }
        Command::Summary { file, json } => {
            let nets = load(&file)?;
            let summaries: Vec<_> = nets.iter().map(vggdsl::analysis::summarize).collect();
            if json {
                let doc = serde_json::json!({ "models": summaries, "convention": vggdsl::analysis::CONVENTION });
                println!(
                    "{}",
                    serde_json::to_string_pretty(&doc).expect("summaries serialize")
                );
            } else {
                let tables: Vec<String> = summaries.iter().map(|s| s.table()).collect();
                print!("{}", tables.join("\n"));
            }
            Ok(())
        }
        Command::Compile { file, output } => {
            let nets = load(&file)?;
            let label = file.display().to_string();
            let code = vggdsl::codegen::file(&nets, &vggdsl::codegen::Origin { file: Some(label) });
            match output {
                None => print!("{code}"),
                Some(out) => {
                    vggdsl::write_if_changed(&out, &code).map_err(|e| {
                        eprintln!("error: cannot write {}: {e}", out.display());
                        Failure::Io
                    })?;
                }
            }
            Ok(())
        }
    }
}

fn load(path: &PathBuf) -> Result<Vec<vggdsl::Network>, Failure> {
    let source = std::fs::read_to_string(path).map_err(|e| {
        eprintln!("error: cannot read {}: {e}", path.display());
        Failure::Io
    })?;
    vggdsl::load(&source, &path.display().to_string()).map_err(|d| {
        let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        eprint!("{}", d.render(color));
        Failure::Invalid
    })
}
