//! `vgg!` through rustc: each accepted form compiles and runs, and each mistake gives an error
//! underlining the offending tokens (expectations in `tests/ui/*.stderr`).

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass_*.rs");
    t.compile_fail("tests/ui/fail_*.rs");
}
