//! A folder a command writes its outputs into (`vggdsl train`'s run folder, `rank`'s and
//! `prune`'s `--out`): created if missing, and removed again when the command leaves nothing in
//! it; locked against every other vggdsl process while it is written ([`lock`]); and written a
//! set of files at a time, all or nothing, whatever point a crash or a kill stops the process at
//! ([`FileSet`]). Opening it completes a set a killed process had committed, or discards one it
//! had not, so a reader that opens it never sees part of a set.
//!
//! Testing only: the environment variable `VGGDSL_TEST_FAIL=commit:N` aborts the process at the
//! N-th step of a commit (counted from 1 over the process), where a kill could stop it.

mod commit;
mod lock;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

pub use commit::{CommitError, FileSet};

/// Why a folder cannot be written; each message is one sentence naming it.
#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    #[error("{} is a file, not a folder", path.display())]
    NotAFolder { path: PathBuf },
    #[error("cannot create the folder {}: {source}", path.display())]
    Create { path: PathBuf, source: io::Error },
    #[error(
        "{} is being written by another vggdsl command{}; wait for it to finish, or choose \
         another folder",
        path.display(),
        pid.map_or(String::new(), |pid| format!(" (process {pid})"))
    )]
    Busy { path: PathBuf, pid: Option<u32> },
    #[error("cannot write in {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

/// A folder this process writes, locked until dropped.
#[derive(Debug)]
pub struct OutputDir {
    path: PathBuf,
    /// The outermost folder created here (the folder or one of its parents), so that what was
    /// created is removed again if left empty.
    created: Option<PathBuf>,
    /// `None` only while dropping, so that the lock file goes before the folder.
    lock: Option<lock::Lock>,
}

impl OutputDir {
    /// Opens `path` for writing: creates it if missing, locks it (creating the lock file is also
    /// the proof that files can be created there), and completes or discards a commit that a
    /// killed process left.
    pub fn open(path: &Path) -> Result<OutputDir, FolderError> {
        let created = match fs::metadata(path) {
            Ok(meta) if meta.is_dir() => None,
            Ok(_) => return Err(FolderError::NotAFolder { path: path.into() }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let outermost = path
                    .ancestors()
                    .take_while(|a| !a.as_os_str().is_empty() && !a.exists())
                    .last()
                    .unwrap_or(path)
                    .to_path_buf();
                fs::create_dir_all(path).map_err(|source| FolderError::Create {
                    path: path.into(),
                    source,
                })?;
                Some(outermost)
            }
            Err(source) => {
                return Err(FolderError::Io {
                    path: path.into(),
                    source,
                })
            }
        };
        let mut dir = OutputDir {
            path: path.into(),
            created,
            lock: None,
        };
        dir.lock = Some(lock::Lock::acquire(path)?);
        commit::recover(path).map_err(|source| FolderError::Io {
            path: path.into(),
            source,
        })?;
        Ok(dir)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The names of what the folder holds, sorted, without the lock's own file.
    pub fn entries(&self) -> Result<Vec<String>, FolderError> {
        let io = |source| FolderError::Io {
            path: self.path.clone(),
            source,
        };
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.path).map_err(io)? {
            let name = entry
                .map_err(io)?
                .file_name()
                .to_string_lossy()
                .into_owned();
            if name != lock::LOCK_FILE {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    /// A new set of files to write into the folder.
    pub fn file_set(&self) -> io::Result<FileSet> {
        FileSet::new(&self.path)
    }
}

/// Releases the lock; folders created here and left empty are removed.
impl Drop for OutputDir {
    fn drop(&mut self) {
        self.lock = None;
        let Some(outermost) = &self.created else {
            return;
        };
        for dir in self.path.ancestors() {
            if fs::remove_dir(dir).is_err() || dir == outermost {
                break;
            }
        }
    }
}

/// Testing only: whether `VGGDSL_TEST_FAIL` names failure point `point`, and the value after
/// `point:` if it gives one.
pub fn test_failure(point: &str) -> Option<String> {
    let value = std::env::var("VGGDSL_TEST_FAIL").ok()?;
    match value.split_once(':') {
        Some((name, rest)) if name == point => Some(rest.to_owned()),
        None if value == point => Some(String::new()),
        _ => None,
    }
}
