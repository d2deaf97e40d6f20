//! A command's output folder (`rank --out`, `prune --out`), opened before the command's work so
//! that an unwritable or busy folder fails first ([`vggdsl::folder::OutputDir`]: created if
//! missing, locked against other vggdsl processes, recovered from a killed command), and its
//! files written all or nothing as one [`vggdsl::folder::FileSet`]: a failure or a kill at any
//! point leaves either all the new files or none of them. A command that fails removes what it
//! staged, and the folder if it made it.

use std::path::Path;

#[cfg(feature = "torch")]
use vggdsl::folder::{FileSet, OutputDir};

use crate::exit::FAILED;
use crate::failure::Failure;

/// Output files of one command, staged in its locked folder until [`Staged::commit`].
#[cfg(feature = "torch")]
pub struct Staged {
    /// Before `dir`, so that it is dropped (and its staging folder removed) first.
    set: Option<FileSet>,
    dir: OutputDir,
}

#[cfg(feature = "torch")]
impl Staged {
    /// Opens `dir` for the command's files, creating it if missing.
    pub fn new(dir: &Path) -> Result<Staged, Failure> {
        let dir = OutputDir::open(dir).map_err(|e| Failure::new(FAILED, e))?;
        Ok(Staged { set: None, dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// What the folder holds already, sorted.
    pub fn entries(&self) -> Result<Vec<String>, Failure> {
        self.dir.entries().map_err(|e| Failure::new(FAILED, e))
    }

    /// Writes `bytes` as output `name`.
    pub fn write(&mut self, name: &str, bytes: &[u8]) -> Result<(), Failure> {
        let set = match &mut self.set {
            Some(set) => set,
            None => {
                let set = self
                    .dir
                    .file_set()
                    .map_err(|e| Failure::write(self.dir.path().display(), e))?;
                self.set.insert(set)
            }
        };
        set.write(name, bytes)
            .map_err(|e| Failure::write(self.dir.path().join(name).display(), e.source))
    }

    /// Puts every file in place.
    pub fn commit(mut self) -> Result<(), Failure> {
        let Some(set) = self.set.take() else {
            return Ok(());
        };
        set.commit().map_err(|e| {
            let then = if e.committed {
                "; the files are written whole, and the next vggdsl command that writes the folder \
                 puts them in place"
            } else {
                ""
            };
            Failure::new(
                FAILED,
                format_args!(
                    "cannot write {}: {}{then}",
                    self.dir.path().join(&e.name).display(),
                    e.source
                ),
            )
        })
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
