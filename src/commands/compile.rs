//! `vggdsl compile FILE [-o OUT.rs]`: the generated Rust source.

use crate::failure::{Failure, FAILED};
use crate::{input, output, FileArg};
use std::path::Path;

#[derive(clap::Args)]
pub struct Args {
    /// The .vgg file (`-` reads standard input).
    #[arg(value_name = "FILE")]
    file: FileArg,
    /// Write the Rust source to this file, only if it changed (`-` is standard output, the default).
    #[arg(short, long, value_name = "OUT.rs")]
    output: Option<FileArg>,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let source = input::read(&args.file)?;
    let code = vggdsl::compile(&source.text, &source.name).map_err(|d| Failure::invalid(&d))?;
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
