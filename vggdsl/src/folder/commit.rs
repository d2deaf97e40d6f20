//! Writing a set of files into a folder all or nothing, whatever point a kill stops the process
//! at. The files are written and synced in a fresh hidden folder beside them,
//! `.vggdsl-staging.XXXXXX`; renaming that folder to `.vggdsl-commit` is the commit, one atomic
//! rename; then each file is renamed into place and the emptied folder removed. A process that
//! opens the folder afterwards ([`recover`]) moves whatever is left in `.vggdsl-commit` into place
//! (the set was committed: roll forward) and removes any staging folder (it was not: the files
//! it replaces were never touched). Every step is synced before the next, so this holds across a
//! power cut too.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use crate::atomic::sync_dir;

/// The committed set, while its files are moved into place.
const COMMITTED: &str = ".vggdsl-commit";
/// How a staging folder's name begins.
const STAGING: &str = ".vggdsl-staging.";

/// Files written into a staging folder until [`FileSet::commit`]; dropped before it, the folder
/// is removed and nothing in the destination has changed.
#[derive(Debug)]
pub struct FileSet {
    dir: PathBuf,
    /// `None` once committed.
    staging: Option<tempfile::TempDir>,
    names: Vec<String>,
}

/// Why a set could not be written, and whether the set was committed by then: a committed set
/// is whole and the next [`super::OutputDir::open`] puts it in place; an uncommitted one left the
/// folder as it was.
#[derive(Debug, thiserror::Error)]
#[error("writing {name} failed: {source}")]
pub struct CommitError {
    pub name: String,
    pub source: io::Error,
    pub committed: bool,
}

impl FileSet {
    pub(super) fn new(dir: &Path) -> io::Result<FileSet> {
        let staging = tempfile::Builder::new().prefix(STAGING).tempdir_in(dir)?;
        Ok(FileSet {
            dir: dir.into(),
            staging: Some(staging),
            names: Vec::new(),
        })
    }

    /// Writes `bytes` as the set's file `name` (a plain file name), synced.
    pub fn write(&mut self, name: &str, bytes: &[u8]) -> Result<(), CommitError> {
        let fail = |source| CommitError {
            name: name.into(),
            source,
            committed: false,
        };
        let staging = self.staging.as_ref().expect("not committed yet");
        let mut file = File::create_new(staging.path().join(name)).map_err(fail)?;
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .map_err(fail)?;
        self.names.push(name.into());
        Ok(())
    }

    /// Commits the set and puts its files in place, replacing those of the same names.
    pub fn commit(mut self) -> Result<(), CommitError> {
        let first = self.names.first().cloned().unwrap_or_default();
        let fail = |committed: bool| {
            let name = first.clone();
            move |source| CommitError {
                name,
                source,
                committed,
            }
        };
        let staging = self.staging.take().expect("committed once").keep();
        sync_dir(&staging).map_err(fail(false))?;
        crash_point();
        let committed = self.dir.join(COMMITTED);
        if let Err(e) = fs::rename(&staging, &committed) {
            let _ = fs::remove_dir_all(&staging);
            return Err(fail(false)(e));
        }
        sync_dir(&self.dir).map_err(fail(true))?;
        crash_point();
        for name in &self.names {
            fs::rename(committed.join(name), self.dir.join(name)).map_err(|source| {
                CommitError {
                    name: name.clone(),
                    source,
                    committed: true,
                }
            })?;
            crash_point();
        }
        fs::remove_dir(&committed)
            .and_then(|()| sync_dir(&self.dir))
            .map_err(fail(true))
    }
}

/// Completes a set a killed process committed in `dir`, and removes the staging folders of sets
/// it had not.
pub(super) fn recover(dir: &Path) -> io::Result<()> {
    let committed = dir.join(COMMITTED);
    if committed.is_dir() {
        for entry in fs::read_dir(&committed)? {
            let name = entry?.file_name();
            fs::rename(committed.join(&name), dir.join(&name))?;
        }
        fs::remove_dir(&committed)?;
    }
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with(STAGING) {
            fs::remove_dir_all(entry.path())?;
        }
    }
    sync_dir(dir)
}

/// Testing only: aborts the process at the step of a commit that `VGGDSL_TEST_FAIL=commit:N`
/// names, as a kill there would stop it (no destructor runs).
fn crash_point() {
    static STEP: AtomicU32 = AtomicU32::new(0);
    static AT: OnceLock<Option<u32>> = OnceLock::new();
    let at = AT.get_or_init(|| super::test_failure("commit").and_then(|n| n.parse().ok()));
    if let Some(at) = *at {
        if STEP.fetch_add(1, Ordering::Relaxed) + 1 == at {
            std::process::abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_set_replaces_its_files_and_leaves_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a"), "old a").unwrap();
        fs::write(dir.path().join("keep"), "kept").unwrap();
        let mut set = FileSet::new(dir.path()).unwrap();
        set.write("a", b"new a").unwrap();
        set.write("b", b"new b").unwrap();
        set.commit().unwrap();
        assert_eq!(listing(dir.path()), ["a", "b", "keep"]);
        assert_eq!(fs::read_to_string(dir.path().join("a")).unwrap(), "new a");
        // Dropped before its commit: the folder as it was.
        let mut set = FileSet::new(dir.path()).unwrap();
        set.write("a", b"newer a").unwrap();
        drop(set);
        assert_eq!(listing(dir.path()), ["a", "b", "keep"]);
        assert_eq!(fs::read_to_string(dir.path().join("a")).unwrap(), "new a");
    }

    #[test]
    fn recovery_completes_a_committed_set_and_discards_a_staged_one() {
        let dir = tempfile::tempdir().unwrap();
        // As a kill after the commit and the first move leaves it.
        fs::write(dir.path().join("a"), "new a").unwrap();
        fs::write(dir.path().join("b"), "old b").unwrap();
        fs::create_dir(dir.path().join(COMMITTED)).unwrap();
        fs::write(dir.path().join(COMMITTED).join("b"), "new b").unwrap();
        // As a kill before a commit leaves it.
        let staging = dir.path().join(format!("{STAGING}abc123"));
        fs::create_dir(&staging).unwrap();
        fs::write(staging.join("a"), "newer a").unwrap();
        recover(dir.path()).unwrap();
        assert_eq!(listing(dir.path()), ["a", "b"]);
        assert_eq!(fs::read_to_string(dir.path().join("a")).unwrap(), "new a");
        assert_eq!(fs::read_to_string(dir.path().join("b")).unwrap(), "new b");
    }
}
