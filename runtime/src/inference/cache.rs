//! The tuner's choices, kept per machine ([`MachineFile`], under `kernels/`): an entry per
//! thread count, layer shape and batch-size class, naming the kernel chosen.

use std::path::{Path, PathBuf};

use super::Kernel;
use crate::machine::MachineFile;

/// The tuner's choices for one machine, and the file they are kept in.
#[derive(Debug)]
pub struct KernelCache(MachineFile<String>);

impl KernelCache {
    /// The choices kept in `path` for `machine` (none if `path` is `None`, missing, unreadable,
    /// or for another machine), to be kept there.
    pub fn open(path: Option<PathBuf>, machine: &str) -> Self {
        KernelCache(MachineFile::open(path, machine))
    }

    /// The cache of this machine in the user's cache folder.
    pub fn for_this_machine() -> Self {
        KernelCache(MachineFile::for_this_machine("kernels"))
    }

    /// The file the choices are kept in, if any.
    pub fn path(&self) -> Option<&Path> {
        self.0.path()
    }

    /// The kernel kept for `key`, if it names one.
    pub fn get(&self, key: &str) -> Option<Kernel> {
        self.0.get(key).and_then(|k| Kernel::from_name(k))
    }

    /// Keeps `kernel` for `key`, and writes the file anew with what other processes have added
    /// to it meanwhile. Returns whether the file was written.
    pub fn insert(&mut self, key: &str, kernel: Kernel) -> bool {
        self.0.insert(key, kernel.name().to_owned())
    }
}
