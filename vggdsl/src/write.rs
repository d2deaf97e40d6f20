//! Writing generated files: only when the contents change (so builds watching them do not rerun),
//! never half-written, and never over a file that vggdsl did not generate.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;

use crate::atomic;
use crate::codegen::{header_of, PYTHON_HEADER, RUST_HEADER};

/// Writes generated code to `path` unless it already holds exactly that; returns whether it wrote.
///
/// - A regular file (also through a symlink) is read only as far as needed to compare, at most
///   `contents.len() + 1` bytes, then replaced by a temporary file in its folder renamed over it,
///   with its permissions kept, so no reader ever sees half a file. One that is not empty and does
///   not start with the header of `contents`' language ([`crate::codegen::RUST_HEADER`],
///   [`crate::codegen::PYTHON_HEADER`]) is refused.
/// - A new file needs its folder: a mistyped path gives an error rather than a new tree.
/// - Anything else but a folder (`/dev/stdout`, a pipe, `/dev/null`) is written directly and never
///   read, as a stream has nothing to compare with and reading one may never end.
pub fn write_if_changed(path: &Path, contents: &str) -> io::Result<bool> {
    match fs::metadata(path) {
        Ok(meta) if meta.is_file() => {
            // The rename must replace the symlink's target, not the symlink.
            let path = fs::canonicalize(path)?;
            let mut old = Vec::new();
            File::open(&path)?
                .take(contents.len() as u64 + 1)
                .read_to_end(&mut old)?;
            if old == contents.as_bytes() {
                return Ok(false);
            }
            let header = header_of(contents);
            if !old.is_empty() && !old.starts_with(header.as_bytes()) {
                let why = match [RUST_HEADER, PYTHON_HEADER]
                    .into_iter()
                    .find(|h| old.starts_with(h.as_bytes()))
                {
                    Some(other) => format!(
                        "it holds code vggdsl generated in {}, not {}, so vggdsl will not replace \
                         it with the other language",
                        language(other),
                        language(header)
                    ),
                    None => format!(
                        "it does not start with `{header}`, so vggdsl did not write it and will \
                         not replace it"
                    ),
                };
                return Err(io::Error::new(io::ErrorKind::AlreadyExists, why));
            }
            atomic::write_with_permissions(&path, contents.as_bytes(), Some(meta.permissions()))?;
        }
        Ok(meta) if meta.is_dir() => return Err(io::Error::other("it is a folder")),
        Ok(_) => OpenOptions::new()
            .write(true)
            .open(path)?
            .write_all(contents.as_bytes())?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => atomic::write(path, contents.as_bytes())?,
        Err(e) => return Err(e),
    }
    Ok(true)
}

/// The language whose generated files begin with `header`.
fn language(header: &str) -> &'static str {
    if header == PYTHON_HEADER {
        "Python"
    } else {
        "Rust"
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn generated_files_start_with_the_header() {
        let code = crate::compile("model A { cfg = vgg11 }", "a.vgg").unwrap();
        assert!(code.starts_with(crate::codegen::RUST_HEADER));
    }
}
