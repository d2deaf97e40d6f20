//! `vgg!` through rustc: each mistake gives an error underlining the offending tokens
//! (expectations in `tests/ui/*.stderr`). The cases call `vggdsl_macros::vgg!` directly, so
//! trybuild's build has no libtorch in it; the accepted forms compile and run as
//! `runtime/tests/macro_forms.rs`.

use std::path::Path;

#[test]
fn ui() {
    // A file form reads its path from the root of the crate being compiled: trybuild's, in
    // `tests/trybuild/vggdsl-macros` of the target folder, wherever that is. The models the
    // cases read are put there.
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap();
    let models = target.join("tests/trybuild/vggdsl-macros/models");
    std::fs::create_dir_all(&models).unwrap();
    std::fs::copy("tests/ui/models/invalid.vgg", models.join("invalid.vgg")).unwrap();
    trybuild::TestCases::new().compile_fail("tests/ui/fail_*.rs");
}
