//! `vggdsl export FILE --weights W -o OUT.onnx [--fold-bn] [--model NAME]`: a model and its
//! weights as an ONNX model, written by `vggdsl-onnx` without PyTorch.
//!
//! A command of its own rather than `compile --target onnx`: compile turns text into source
//! (stdout by default, written only if changed, never over a file it did not generate), while
//! export needs weights and writes a binary file, so its flags and rules differ.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use vggdsl_onnx::{Error, Options};

use crate::exit::FAILED;
use crate::failure::Failure;
use crate::staged::refuse_overwrite;
use crate::{input, weights_file, FileArg};

#[derive(clap::Args)]
pub struct Args {
    /// The .vgg file (`-` reads standard input).
    #[arg(value_name = "FILE")]
    file: FileArg,
    /// The model's state_dict: a .safetensors file, or a torch.save archive (.pt, .pth).
    #[arg(long, value_name = "W")]
    weights: PathBuf,
    /// The ONNX file to write (whole: a temporary file renamed over it).
    #[arg(short, long, value_name = "OUT")]
    output: PathBuf,
    /// Fold each BatchNorm into the conv or linear before it, as inference does.
    #[arg(long)]
    fold_bn: bool,
    /// The model to export when FILE declares several.
    #[arg(long, value_name = "NAME")]
    model: Option<String>,
}

/// What a safetensors header may take besides the tensors (the format's own cap, and its length).
const HEADER_BYTES: u64 = 100_000_000 + 8;

pub fn run(args: Args) -> Result<(), Failure> {
    if let FileArg::Path(file) = &args.file {
        refuse_overwrite(&args.output, file, "the model file")?;
    }
    refuse_overwrite(&args.output, &args.weights, "the weights file")?;
    let source = input::read(&args.file)?;
    let nets = vggdsl::load(&source.text, &source.name).map_err(|d| Failure::invalid(&d))?;
    let net = input::model(&nets, args.model.as_deref(), &source.name)?;
    // Eight bytes an element bounds every dtype a state_dict of the model can hold.
    let elements: u64 = net
        .layers()
        .flat_map(|(_, l)| l.kind.tensors())
        .map(|(_, shape)| shape.iter().product::<i64>() as u64)
        .sum();
    let weights = weights_file::read(&args.weights, 8 * elements + HEADER_BYTES)?;
    let options = Options {
        fold_bn: args.fold_bn,
    };
    let bytes = vggdsl_onnx::export(net, &weights, options)
        .map_err(|e| refusal(&e, &args.weights, &net.spec.name))?;
    write(&args.output, &bytes)
}

/// Weights that give no ONNX model, as one sentence naming the key.
fn refusal(error: &Error, weights: &Path, model: &str) -> Failure {
    let weights = weights.display();
    match error {
        Error::Mismatch(differences) => {
            Failure::another_model(weights, model, &differences[0], differences.len())
        }
        e => Failure::new(
            FAILED,
            format_args!("cannot export {model} with {weights}: {e}"),
        ),
    }
}

/// Writes `bytes` to `out`: a regular file (or a symlink's target) under a temporary name renamed
/// over it, only into a folder that exists; a device or pipe such as `/dev/null` directly.
fn write(out: &Path, bytes: &[u8]) -> Result<(), Failure> {
    let fail = |e: io::Error| Failure::write(out.display(), e);
    let file = match fs::metadata(out) {
        Ok(meta) if meta.is_dir() => return Err(fail(io::Error::other("it is a folder"))),
        Ok(meta) if !meta.is_file() => return fs::write(out, bytes).map_err(fail),
        Ok(_) => fs::canonicalize(out).map_err(fail)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => out.to_path_buf(),
        Err(e) => return Err(fail(e)),
    };
    // A missing folder is "the folder … does not exist", not a new tree.
    vggdsl::atomic::write(&file, bytes).map_err(fail)
}
