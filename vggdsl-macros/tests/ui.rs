//! `vgg!` through rustc: each mistake gives an error underlining the offending tokens
//! (expectations in `tests/ui/*.stderr`). The cases call `vggdsl_macros::vgg!` directly, so
//! trybuild's build has no libtorch in it; the accepted forms compile and run as
//! `runtime/tests/macro_forms.rs`.

#[test]
fn ui() {
    trybuild::TestCases::new().compile_fail("tests/ui/fail_*.rs");
}
