//! What several of this package's test files share.
#![allow(dead_code)]

#[cfg(feature = "torch")]
pub mod models;

use std::path::PathBuf;

/// A path inside the repository, from the workspace root.
pub fn repo(path: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(path)
        .display()
        .to_string()
}
