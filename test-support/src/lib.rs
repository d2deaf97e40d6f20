//! What the workspace's tests share, so that no test reaches into another package's folder:
//! PyTorch, run by the reference scripts in this package's `python/` folder ([`pytorch`]); what a
//! test does when a resource is missing ([`skip`]); libtorch's global random generator, which
//! tests take turns at ([`rng`]); temporary folders ([`tempdir`]); and CIFAR-10 files in the
//! real binary format ([`cifar`]).

pub mod cifar;
pub mod pytorch;

use std::path::Path;
use std::process::Output;
use std::sync::{Mutex, MutexGuard};

pub use tempfile::TempDir;

/// The one policy for a test whose resource is missing (PyTorch, a dataset, a tmpfs): it says why
/// and passes (the caller returns), unless the environment variable `CI` is set, where a missing
/// resource is a failure.
pub fn skip(reason: &str) {
    assert!(std::env::var_os("CI").is_none(), "CI is set but {reason}");
    println!("skipped: {reason}");
}

/// libtorch's random generator is global and the tests of a binary run on parallel threads:
/// whatever seeds it and draws (building a model, `randn`) holds this lock, so that no foreign
/// draw falls between a `manual_seed` and its last tensor.
pub fn rng() -> MutexGuard<'static, ()> {
    static RNG: Mutex<()> = Mutex::new(());
    RNG.lock().unwrap_or_else(|e| e.into_inner())
}

/// A fresh folder in the system's temporary folder, removed when dropped.
pub fn tempdir() -> TempDir {
    tempfile::Builder::new()
        .prefix("vggdsl-test-")
        .tempdir()
        .expect("a temporary folder")
}

/// The path of `name` in `dir`, as the text a command line takes.
pub fn file_in(dir: &TempDir, name: &str) -> String {
    text(&dir.path().join(name))
}

/// A path as the text a command line takes.
pub fn text(path: &Path) -> String {
    path.to_str().expect("a UTF-8 path").to_owned()
}

/// Asserts that the process `what` succeeded, showing all it printed when it did not.
pub fn assert_success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
