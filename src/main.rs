//! The `vggdsl` command: the clap definitions and the dispatch. Each subcommand lives in
//! `commands/`, reads through `input` and writes through `output`, and fails with a [`Failure`]
//! that carries its exit code; nothing it prints can panic.

#[cfg(feature = "torch")]
mod budget;
mod commands;
mod exit;
mod failure;
mod input;
#[cfg(feature = "torch")]
mod numbers;
mod output;
mod plot;
mod rates;
mod staged;
#[cfg(feature = "torch")]
mod study;
mod weights_file;

use clap::builder::{MapValueParser, PathBufValueParser, TypedValueParser};
use clap::{Parser, Subcommand};
use failure::Failure;
use std::path::PathBuf;
use std::process::ExitCode;

/// vggdsl: VGG-family networks written as cfg lists, compiled to typed Rust code on tch.
///
/// A `.vgg` file declares models such as
/// `model Vgg16Bn { cfg = default  bn = true  num_classes = 10 }`
/// (or the compact form `pub Vgg16Bn<cfg = default, bn = true>`). The language reference is
/// docs/language.md. A FILE of `-` is standard input.
#[derive(Parser)]
#[command(name = "vggdsl", version, about, long_about, after_help = exit::help(exit::COMPILER))]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check files: silent with exit 0 when valid, diagnostics on stderr otherwise.
    #[command(after_help = exit::help(exit::COMPILER))]
    Check(commands::check::Args),
    /// Print each model's layers, output shapes, parameters and MACs, and HRank's relucfg/convcfg.
    #[command(after_help = exit::help(exit::COMPILER))]
    Summary(commands::summary::Args),
    /// Compile a file to formatted Rust source for tch, or with `--target pytorch` to a PyTorch
    /// module (stdout, or OUT written only if changed).
    #[command(after_help = exit::help(exit::COMPILER))]
    Compile(commands::compile::Args),
    /// Write a model and its weights (.safetensors or .pt) as an ONNX model (opset 17, dynamic
    /// batch); `--fold-bn` folds BatchNorm into the convs and linears.
    #[command(after_help = exit::help(exit::EXPORT))]
    Export(commands::export::Args),
    /// Draw a picture (SVG, or PNG for OUT.png): `widths` of models, filter `ranks` with their
    /// cut, `training` curves of runs, each conv's `sensitivity` to pruning, `bench` throughput
    /// against batch size, `study` accuracy against MACs.
    #[command(after_help = exit::help(exit::COMPILER))]
    Plot(commands::plot::Args),
    /// Train a model with SGD on CIFAR-10/100 or (Fashion-)MNIST; checkpoints, resume, Ctrl-C.
    #[cfg(feature = "torch")]
    #[command(after_help = exit::help(exit::TRAIN))]
    Train(commands::train::Args),
    /// Evaluate weights on a test set: accuracy, per-class accuracy, loss (on the fused inference
    /// path, `to_inference()`).
    #[cfg(feature = "torch")]
    #[command(after_help = exit::help(exit::EVAL))]
    Eval(commands::eval::Args),
    /// Rank every conv's filters by the mean matrix rank of their feature maps (HRank), over the
    /// first batches of the images train trains on (never its validation images); writes
    /// RANKS_DIR/ranks.json.
    #[cfg(feature = "torch")]
    #[command(after_help = exit::help(exit::RANK))]
    Rank(commands::rank::Args),
    /// Prune a model to compress rates or a budget, keeping the filters a criterion scores highest
    /// (HRank's ranks, L1 norm, …); writes DIR/model.vgg (model <Model>Pruned, or --name),
    /// DIR/model.safetensors and DIR/kept.json.
    #[cfg(feature = "torch")]
    #[command(after_help = exit::help(exit::PRUNE))]
    Prune(commands::prune::Args),
    /// Prune every conv alone at every rate, without fine-tuning, and measure each network on
    /// validation images carved from the training set (accuracy, loss, params, MACs, latency);
    /// writes DIR/sensitivity.json for `prune --strategy sensitivity` and `plot sensitivity`.
    #[cfg(feature = "torch")]
    #[command(after_help = exit::help(exit::SENSITIVITY))]
    Sensitivity(commands::sensitivity::Args),
    /// Time a model's inference form (to_inference()) on one batch: the median of timed runs.
    #[cfg(feature = "torch")]
    #[command(after_help = exit::help(exit::COMPILER))]
    Latency(commands::latency::Args),
    /// Run a pruning study (a TOML file): every step as its own command in its own folder,
    /// resumable, --jobs in parallel; writes results.json and a Markdown table.
    #[cfg(feature = "torch")]
    #[command(after_help = exit::help(exit::STUDY))]
    Study(commands::study::Args),
}

/// A FILE or OUT argument: a path, or `-` for standard input or output (`./-` is a file named
/// `-`).
#[derive(Debug, Clone)]
enum FileArg {
    Std,
    Path(PathBuf),
}

/// Parsed as a `PathBuf` first, so an empty argument is clap's usage error like any other.
impl clap::builder::ValueParserFactory for FileArg {
    type Parser = MapValueParser<PathBufValueParser, fn(PathBuf) -> FileArg>;
    fn value_parser() -> Self::Parser {
        PathBufValueParser::new().map(|path| {
            if path.as_os_str() == "-" {
                FileArg::Std
            } else {
                FileArg::Path(path)
            }
        })
    }
}

fn main() -> ExitCode {
    // The libtorch commands reuse freed tensor memory instead of faulting in fresh pages for each
    // step's activations (vggdsl_runtime::memory; TRAINING.md measures it). Best effort: an older
    // glibc takes a lower threshold, and nothing else depends on it.
    #[cfg(feature = "torch")]
    vggdsl_runtime::memory::reuse_freed_memory();
    let result = parse().and_then(|command| guarded(|| run(command)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => output::report(&failure),
    }
}

fn run(command: Command) -> Result<(), Failure> {
    match command {
        Command::Check(args) => commands::check::run(args),
        Command::Summary(args) => commands::summary::run(args),
        Command::Compile(args) => commands::compile::run(args),
        Command::Export(args) => commands::export::run(args),
        Command::Plot(args) => commands::plot::run(args),
        #[cfg(feature = "torch")]
        Command::Train(args) => commands::train::run(args),
        #[cfg(feature = "torch")]
        Command::Eval(args) => commands::eval::run(args),
        #[cfg(feature = "torch")]
        Command::Rank(args) => commands::rank::run(args),
        #[cfg(feature = "torch")]
        Command::Prune(args) => commands::prune::run(args),
        #[cfg(feature = "torch")]
        Command::Sensitivity(args) => commands::sensitivity::run(args),
        #[cfg(feature = "torch")]
        Command::Latency(args) => commands::latency::run(args),
        #[cfg(feature = "torch")]
        Command::Study(args) => commands::study::run(args),
    }
}

/// Runs a command so that a panic, above all a libtorch error that tch raises as one, ends it
/// with one sentence and exit 1 rather than a panic's report and backtrace. (Testing only:
/// `VGGDSL_TEST_FAIL=torch` makes a libtorch call fail first.)
fn guarded(command: impl FnOnce() -> Result<(), Failure>) -> Result<(), Failure> {
    std::panic::set_hook(Box::new(|_| {}));
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        #[cfg(feature = "torch")]
        if vggdsl::folder::test_failure("torch").is_some() {
            use vggdsl_runtime::tch::{Device, Kind, Tensor};
            let _ = Tensor::zeros([2], (Kind::Float, Device::Cpu)).view([3]);
        }
        command()
    }))
    .unwrap_or_else(|payload| Err(Failure::panicked(payload.as_ref())))
}

/// The command line, or clap's help, version or usage error printed under the same output policy
/// as the commands' own (clap's own exit would hide a failed write of `--help`).
fn parse() -> Result<Command, Failure> {
    Cli::try_parse().map(|cli| cli.command).map_err(|e| {
        let code = u8::try_from(e.exit_code()).unwrap_or(exit::FAILED);
        match e.print() {
            Err(io) if !e.use_stderr() => Failure::write("to standard output", io),
            _ => Failure::exit(code),
        }
    })
}
