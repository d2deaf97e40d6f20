//! `vggdsl compile FILE [--target rust|pytorch] [-o OUT]`: the generated Rust source, or the
//! PyTorch module for training with DDP.

use crate::exit::FAILED;
use crate::failure::Failure;
use crate::{input, output, FileArg};
use std::path::Path;
use vggdsl::codegen::{self, Origin};

#[derive(clap::Args)]
pub struct Args {
    /// The .vgg file (`-` reads standard input).
    #[arg(value_name = "FILE")]
    file: FileArg,
    /// What to generate: Rust for tch, or one PyTorch module (a .py file needing only torch).
    #[arg(long, value_enum, default_value_t = Target::Rust)]
    target: Target,
    /// Write the source to this file, only if it changed (`-` is standard output, the default).
    #[arg(short, long, value_name = "OUT")]
    output: Option<FileArg>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Target {
    Rust,
    Pytorch,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let source = input::read(&args.file)?;
    let code = match args.target {
        Target::Rust => {
            vggdsl::compile(&source.text, &source.name).map_err(|d| Failure::invalid(&d))?
        }
        Target::Pytorch => {
            let nets =
                vggdsl::load(&source.text, &source.name).map_err(|d| Failure::invalid(&d))?;
            let origin = Origin {
                file: Some(source.name.clone()),
            };
            codegen::pytorch::file(&nets, &origin).map_err(|e| Failure::new(FAILED, e))?
        }
    };
    let target = args.output.unwrap_or(FileArg::Std);
    if let (FileArg::Path(file), FileArg::Path(out)) = (&args.file, &target) {
        if is_same_file(file, out) {
            return Err(Failure::new(
                FAILED,
                format_args!(
                    "cannot write {}: it is the file being compiled",
                    out.display()
                ),
            ));
        }
    }
    output::generated(&target, &code)
}

/// Whether `out` is the regular file `input` under any name: the same path written otherwise, a
/// symlink or a hard link. Other files, such as one terminal as both input and output, may be both.
#[cfg(unix)]
fn is_same_file(input: &Path, out: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(input), std::fs::metadata(out)) {
        (Ok(a), Ok(b)) => a.is_file() && (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

/// Whether `out` is the regular file `input` (hard links aside, which need unix's inode numbers).
#[cfg(not(unix))]
fn is_same_file(input: &Path, out: &Path) -> bool {
    input.is_file()
        && matches!((input.canonicalize(), out.canonicalize()), (Ok(a), Ok(b)) if a == b)
}
