//! The lock on a folder: an exclusive `flock` on the file `.vggdsl.lock` in it, which holds the
//! process id of its holder (for the message a second process shows) and is removed on release.
//! The lock dies with its process, so a killed command never leaves a folder locked; a lock file
//! it leaves behind is taken over by the next command.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::FolderError;

/// The lock file's name.
pub(super) const LOCK_FILE: &str = ".vggdsl.lock";

#[derive(Debug)]
pub(super) struct Lock {
    /// Open for as long as the lock is held: closing it unlocks.
    _file: File,
    path: PathBuf,
}

impl Lock {
    /// Locks `dir`, or says which process holds it.
    pub(super) fn acquire(dir: &Path) -> Result<Lock, FolderError> {
        let path = dir.join(LOCK_FILE);
        let io = |source| FolderError::Io {
            path: dir.into(),
            source,
        };
        loop {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(io)?;
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    let pid = fs::read_to_string(&path)
                        .ok()
                        .and_then(|text| text.trim().parse().ok());
                    return Err(FolderError::Busy {
                        path: dir.into(),
                        pid,
                    });
                }
                Err(TryLockError::Error(e)) => return Err(io(e)),
            }
            // The holder before may have removed the file between our open and our lock, and a
            // third process may hold a new one by that name: the lock counts only on the file
            // the name still gives.
            if !same_file(&file, &path) {
                continue;
            }
            // Best effort: the id only makes another process's message clearer, and a full disk
            // must not stop a command before the save it may still manage.
            let _ = file
                .set_len(0)
                .and_then(|()| writeln!(file, "{}", std::process::id()));
            return Ok(Lock { _file: file, path });
        }
    }
}

/// Removed while still held, so that no other process takes the name's file in between.
impl Drop for Lock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

#[cfg(unix)]
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), fs::metadata(path)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

/// Without inode numbers, the file that is there is taken as the one opened.
#[cfg(not(unix))]
fn same_file(_: &File, path: &Path) -> bool {
    path.exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_names_the_holder_and_a_released_one_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let first = Lock::acquire(dir.path()).unwrap();
        match Lock::acquire(dir.path()) {
            Err(FolderError::Busy { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
            other => panic!("{other:?}"),
        }
        drop(first);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
        let again = Lock::acquire(dir.path()).unwrap();
        drop(again);
    }
}
