//! `vggdsl check FILE...`: every file checked, every error shown.

use crate::failure::Failure;
use crate::{input, output, FileArg};

#[derive(clap::Args)]
pub struct Args {
    /// The .vgg files to check (`-` reads standard input).
    #[arg(required = true, value_name = "FILE")]
    files: Vec<FileArg>,
}

/// Checks every file, reporting each one's errors as it goes, so that one bad file hides nothing;
/// the exit code is the highest of the files', whatever their order.
pub fn run(args: Args) -> Result<(), Failure> {
    let mut code = 0;
    for file in &args.files {
        if let Err(failure) = input::load(file) {
            output::report(&failure);
            code = code.max(failure.code);
        }
    }
    match code {
        0 => Ok(()),
        code => Err(Failure::exit(code)),
    }
}
