//! Writing generated files: only when the contents change (so builds watching them do not rerun),
//! never half-written, and never over a file that vggdsl did not generate.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// How every file [`crate::codegen::file`] makes begins. A file that begins otherwise was written
/// by someone else, so it is never replaced.
pub const GENERATED_HEADER: &str = "// @generated";

/// The header of generated `contents`, which the file they replace must begin with too: Rust's,
/// or the PyTorch module's ([`crate::codegen::pytorch::GENERATED_HEADER`]).
fn header_of(contents: &str) -> &'static str {
    let python = crate::codegen::pytorch::GENERATED_HEADER;
    if contents.starts_with(python) {
        python
    } else {
        GENERATED_HEADER
    }
}

/// Writes generated code to `path` unless it already holds exactly that; returns whether it wrote.
///
/// - A regular file (also through a symlink) is read only as far as needed to compare, at most
///   `contents.len() + 1` bytes, then replaced by a temporary file in its folder renamed over it,
///   with its permissions kept, so no reader ever sees half a file. One that is not empty and does
///   not start with [`GENERATED_HEADER`] (for Python contents, with Python's header) is refused.
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
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!(
                        "it does not start with `{header}`, so vggdsl did not write it and will \
                         not replace it"
                    ),
                ));
            }
            replace(&path, contents, Some(meta.permissions()))?;
        }
        Ok(meta) if meta.is_dir() => return Err(io::Error::other("it is a folder")),
        Ok(_) => OpenOptions::new()
            .write(true)
            .open(path)?
            .write_all(contents.as_bytes())?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => replace(path, contents, None)?,
        Err(e) => return Err(e),
    }
    Ok(true)
}

/// Writes a temporary file next to `path` and renames it over `path`; removes it on error.
fn replace(path: &Path, contents: &str, permissions: Option<Permissions>) -> io::Result<()> {
    let (temp, mut file) = create_temp(path)?;
    let written = (|| {
        file.write_all(contents.as_bytes())?;
        if let Some(permissions) = permissions {
            file.set_permissions(permissions)?;
        }
        file.sync_all()?;
        fs::rename(&temp, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temp);
    }
    written
}

/// A new hidden file `.<name>.<pid>.<n>.tmp` beside `path`, with the first `n` not taken.
fn create_temp(path: &Path) -> io::Result<(PathBuf, File)> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::other("it does not name a file"))?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut n = 0u32;
    loop {
        let mut temp = OsString::from(".");
        temp.push(name);
        temp.push(format!(".{}.{n}.tmp", std::process::id()));
        let temp = dir.join(temp);
        match OpenOptions::new().write(true).create_new(true).open(&temp) {
            Ok(file) => return Ok((temp, file)),
            // Left behind by an earlier process with the same id that was killed.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => n += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("the folder {} does not exist", dir.display()),
                ))
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn generated_files_start_with_the_header() {
        let code = crate::compile("model A { cfg = vgg11 }", "a.vgg").unwrap();
        assert!(code.starts_with(super::GENERATED_HEADER));
    }
}
