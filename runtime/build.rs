//! Builds vggdsl's C++ kernels and the libtorch operators tch lacks (`csrc/`, one file per kernel)
//! with the headers of the libtorch torch-sys links, and lets this crate's tests and examples find
//! libtorch at run time without LD_LIBRARY_PATH.
use std::path::PathBuf;

/// The C++ files, with `csrc/common.h`, which they share.
const SOURCES: [&str; 10] = [
    "csrc/common.cpp",
    "csrc/max_pool.cpp",
    "csrc/batch_norm.cpp",
    "csrc/sgd.cpp",
    "csrc/winograd.cpp",
    "csrc/onednn.cpp",
    "csrc/allocator.cpp",
    "csrc/layout.cpp",
    "csrc/linear.cpp",
    "csrc/direct.cpp",
];

fn main() {
    println!("cargo:rerun-if-changed=csrc");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    let lib = PathBuf::from(
        std::env::var("DEP_TCH_LIBTORCH_LIB").expect("torch-sys reports its libtorch lib folder"),
    );
    // libtorch folders (and the PyPI wheel's torch/) hold lib/ and include/ side by side.
    let include = lib.parent().expect("lib/ has a parent").join("include");
    // libtorch's own OpenMP runtime, where it ships one under the system's name (the PyPI wheel):
    // the kernels' parallel loops (`at::parallel_for`) then run on libtorch's thread pool, the one
    // runtime in the process. Elsewhere they run on the calling thread.
    let openmp = lib.join("libgomp.so.1").exists();
    if openmp {
        println!("cargo:rustc-link-lib=dylib:+verbatim=libgomp.so.1");
    }
    // Line tables only where the profile asks for debug info: full debug info of libtorch's
    // headers doubles the compile time of a file that includes them.
    let line_tables = std::env::var("DEBUG").is_ok_and(|debug| debug == "true");
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .std("c++20")
        .debug(false)
        .flag(if line_tables { "-g1" } else { "-g0" })
        // The kernels are arithmetic: optimised in every profile (tests included), their inner
        // loops vectorised by `#pragma omp simd`.
        .opt_level(3)
        .flag(if openmp { "-fopenmp" } else { "-fopenmp-simd" })
        // A multiply and an add stay two roundings unless the code asks for `fma`, as in aten:
        // the SGD step must round as PyTorch's does.
        .flag("-ffp-contract=off")
        // libtorch's headers as system headers: their warnings are not ours to fix.
        .flag("-isystem")
        .flag(&include)
        // The ABI torch-sys builds its own C++ with (its default, as here, is the new one).
        .define(
            "_GLIBCXX_USE_CXX11_ABI",
            std::env::var("LIBTORCH_CXX11_ABI")
                .unwrap_or_else(|_| "1".into())
                .as_str(),
        )
        .define("GLOG_USE_GLOG_EXPORT", None)
        .files(SOURCES)
        .compile("vggdsl_ops");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
}
