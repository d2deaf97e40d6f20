//! Compiles the example models with vggdsl's build.rs helper, and lets this package's tests and
//! examples find libtorch at run time.
fn main() {
    let models = [
        "examples/vgg16_bn.vgg",
        "examples/hrank_vgg16_pruned.vgg",
        "tests/models/variants.vgg",
    ];
    if let Err(e) = vggdsl::Builder::new().compile(&models) {
        eprintln!("{e}");
        std::process::exit(1);
    }
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
}
