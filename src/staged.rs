//! Writing a command's output files all or nothing: each is written under a temporary name in
//! its folder, and only when every one is complete are they renamed to their names. An error
//! removes the temporary files, so no half-written or partial set of outputs is ever left.

use std::path::{Path, PathBuf};

use crate::failure::{Failure, FAILED};

/// Output files of one command, written to `.NAME.partial` in `dir` until [`Staged::commit`].
pub struct Staged {
    dir: PathBuf,
    /// Whether `dir` was created here, so that a failure removes it again.
    created: bool,
    /// (temporary path, final path)
    files: Vec<(PathBuf, PathBuf)>,
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

    /// The temporary path for output `name`, which the caller writes (e.g. with a library's own
    /// save function); it becomes `dir/name` at commit.
    pub fn path(&mut self, name: &str) -> PathBuf {
        let partial = self.dir.join(format!(".{name}.partial"));
        self.files.push((partial.clone(), self.dir.join(name)));
        partial
    }

    /// Writes `bytes` as output `name`.
    pub fn write(&mut self, name: &str, bytes: &[u8]) -> Result<(), Failure> {
        let path = self.path(name);
        std::fs::write(&path, bytes).map_err(|e| Failure::write(self.dir.join(name).display(), e))
    }

    /// Renames every file to its final name.
    pub fn commit(mut self) -> Result<(), Failure> {
        while let Some((partial, path)) = self.files.first() {
            std::fs::rename(partial, path).map_err(|e| Failure::write(path.display(), e))?;
            self.files.remove(0);
        }
        self.created = false;
        Ok(())
    }
}

/// Not committed: remove what was written.
impl Drop for Staged {
    fn drop(&mut self) {
        for (partial, _) in &self.files {
            let _ = std::fs::remove_file(partial);
        }
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
