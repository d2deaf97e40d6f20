//! Writing a command's output files all or nothing: each is written whole and synced under a
//! temporary name in its folder ([`vggdsl::atomic::Pending`]), and only when every one is
//! complete are they renamed to their names and the folder synced. An error removes the
//! temporary files, so no half-written or partial set of outputs is ever left.

use std::path::{Path, PathBuf};

use vggdsl::atomic::{self, Pending};

use crate::exit::FAILED;
use crate::failure::Failure;

/// Output files of one command, written under temporary names in `dir` until [`Staged::commit`].
pub struct Staged {
    dir: PathBuf,
    /// Whether `dir` was created here, so that a failure removes it again.
    created: bool,
    files: Vec<Pending>,
}

impl Staged {
    /// Creates `dir` if missing.
    pub fn new(dir: &Path) -> Result<Staged, Failure> {
        let created = !dir.exists();
        std::fs::create_dir_all(dir).map_err(|e| Failure::write(dir.display(), e))?;
        Ok(Staged {
            dir: dir.to_path_buf(),
            created,
            files: Vec::new(),
        })
    }

    /// Writes `bytes` as output `name`.
    pub fn write(&mut self, name: &str, bytes: &[u8]) -> Result<(), Failure> {
        let path = self.dir.join(name);
        let file = Pending::new(&path, bytes).map_err(|e| Failure::write(path.display(), e))?;
        self.files.push(file);
        Ok(())
    }

    /// Renames every file to its name.
    pub fn commit(mut self) -> Result<(), Failure> {
        for file in std::mem::take(&mut self.files) {
            let path = file.path().to_owned();
            file.persist()
                .map_err(|e| Failure::write(path.display(), e))?;
        }
        self.created = false;
        atomic::sync_dir(&self.dir).map_err(|e| Failure::write(self.dir.display(), e))
    }
}

/// Not committed: the temporary files are removed, and the folder if it was made here.
impl Drop for Staged {
    fn drop(&mut self) {
        self.files.clear();
        if self.created {
            let _ = std::fs::remove_dir(&self.dir);
        }
    }
}

/// `Failure` for a path the command would overwrite but must not (one of its inputs).
pub fn refuse_overwrite(output: &Path, input: &Path, what: &str) -> Result<(), Failure> {
    #[cfg(unix)]
    let same = {
        use std::os::unix::fs::MetadataExt;
        match (std::fs::metadata(output), std::fs::metadata(input)) {
            (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
            _ => false,
        }
    };
    #[cfg(not(unix))]
    let same = matches!((output.canonicalize(), input.canonicalize()), (Ok(a), Ok(b)) if a == b);
    if same {
        return Err(Failure::new(
            FAILED,
            format_args!("cannot write {}: it is {what}", output.display()),
        ));
    }
    Ok(())
}
