//! What the root package's tests share beyond `vggdsl-test-support`: the repository's files and
//! the models its tests compare.
#![allow(dead_code)] // each test binary uses its part

use std::path::Path;

#[cfg(feature = "torch")]
pub mod models;

/// The path of `rel` in the repository, as the text a command line takes.
pub fn repo(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(rel)
        .display()
        .to_string()
}

/// A text file of the repository.
pub fn read(rel: &str) -> String {
    let path = repo(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}
