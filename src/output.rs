//! Every byte the command writes. Nothing here panics: a write error is a [`Failure`] (a broken
//! pipe a quiet exit 0), and stderr's own errors are dropped, as there is nowhere to report them.

use crate::failure::Failure;
use crate::FileArg;
use std::io::Write;
use std::process::ExitCode;

pub fn stdout(bytes: &[u8]) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|e| Failure::write("to standard output", e))
}

pub fn stderr(text: &str) {
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// Shows what `failure` has left to say and gives its exit code.
pub fn report(failure: &Failure) -> ExitCode {
    stderr(failure.text());
    ExitCode::from(failure.code)
}

/// Generated code to `target`: standard output, or a file written as
/// [`vggdsl::write_if_changed`] does (only if changed, whole, never over a hand-written file).
pub fn generated(target: &FileArg, code: &str) -> Result<(), Failure> {
    match target {
        FileArg::Std => stdout(code.as_bytes()),
        FileArg::Path(path) => vggdsl::write_if_changed(path, code)
            .map(drop)
            .map_err(|e| Failure::write(path.display(), e)),
    }
}
