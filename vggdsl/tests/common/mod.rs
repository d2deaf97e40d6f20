//! What the compiler's tests share: the repository's files.
#![allow(dead_code)] // each test binary uses its part

use std::path::{Path, PathBuf};

/// The path of `rel` in the repository (the workspace root, one up from this crate).
pub fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

/// A text file of the repository.
pub fn read(rel: &str) -> String {
    let path = repo(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
