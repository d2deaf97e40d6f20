//! Files written whole: the bytes go to a temporary file beside the destination, are synced, and
//! the file is renamed into place, then the folder is synced; a reader, or a crash, sees the old
//! file or the new one, never part of one. Single files go through here: generated code
//! ([`crate::write_if_changed`]), saved state_dicts, pictures; a set of files that must change
//! together goes through [`crate::folder`].

use std::fs::{File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

/// A file written in full and synced under a temporary name in its destination's folder; it is
/// removed unless [`Pending::persist`] renames it into place.
#[derive(Debug)]
struct Pending {
    temp: NamedTempFile,
    path: PathBuf,
}

impl Pending {
    /// `bytes` as the future contents of `path`, with `permissions` when given (to keep those of
    /// the file it replaces).
    fn with_permissions(
        path: &Path,
        bytes: &[u8],
        permissions: Option<Permissions>,
    ) -> io::Result<Pending> {
        let name = path
            .file_name()
            .ok_or_else(|| io::Error::other("it does not name a file"))?;
        let dir = folder(path);
        let mut prefix = std::ffi::OsString::from(".");
        prefix.push(name);
        prefix.push(".");
        // Opened here rather than by tempfile's own builder, whose errors name the temporary path.
        let open = |temp: &Path| OpenOptions::new().write(true).create_new(true).open(temp);
        let mut temp = tempfile::Builder::new()
            .prefix(&prefix)
            .suffix(".tmp")
            .make_in(dir, open)
            .map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("the folder {} does not exist", dir.display()),
                ),
                _ => e,
            })?;
        let file: &mut File = temp.as_file_mut();
        file.write_all(bytes)?;
        if let Some(permissions) = permissions {
            file.set_permissions(permissions)?;
        }
        file.sync_all()?;
        Ok(Pending {
            temp,
            path: path.to_owned(),
        })
    }

    /// Renames the file to its destination, replacing what is there. Durable once the folder is
    /// synced ([`sync_dir`]).
    fn persist(self) -> io::Result<()> {
        self.temp.persist(&self.path).map(drop).map_err(|e| e.error)
    }
}

/// Syncs a folder, which makes the renames into it durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes `bytes` to `path` whole and durably: a [`Pending`] file persisted, its folder synced.
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_with_permissions(path, bytes, None)
}

/// [`write`], with `permissions` when given.
pub fn write_with_permissions(
    path: &Path,
    bytes: &[u8],
    permissions: Option<Permissions>,
) -> io::Result<()> {
    Pending::with_permissions(path, bytes, permissions)?.persist()?;
    sync_dir(folder(path))
}

/// The folder a file is in; `.` for a bare name.
fn folder(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}
