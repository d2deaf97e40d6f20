// What every kernel file shares: the guard of the `extern "C"` entry points, the grain of the
// parallel loops, the per-ISA builds and whether aten fuses multiply-adds. In one place so that
// every entry point fails the same way and every kernel splits its work alike.
#pragma once

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>

#include <algorithm>
#include <cstdint>
#include <exception>

namespace vggdsl {

// Keeps `e`'s message for `vggdsl_last_error` (common.cpp).
void remember(const std::exception& e) noexcept;

// Runs the body of an `extern "C"` entry point: its result, or `failed` where it throws, the
// message kept for `vggdsl_last_error`. No C++ exception may unwind into Rust.
template <typename Result, typename Body>
Result guarded(Result failed, Body&& body) noexcept {
  try {
    return body();
  } catch (const std::exception& e) {
    remember(e);
    return failed;
  }
}

// How many items of `size` elements a thread's part of a parallel loop takes at least: about
// aten's 32,768 elements for an elementwise op.
inline int64_t grain(int64_t size) { return std::max<int64_t>(1, 32768 / size); }

// Whether aten's kernels run a build with fused multiply-adds (x86's AVX2 and AVX-512 ones),
// whose roundings the SGD step and train-mode BatchNorm reproduce; elsewhere aten's ops run.
bool aten_fuses_multiply_add();

}  // namespace vggdsl

// One build per vector width, picked when the library loads (x86-64 with glibc's ifunc; elsewhere
// the baseline build).
#if defined(__x86_64__) && defined(__GLIBC__)
// x86-64-v3 is AVX2 with FMA, which the SGD step needs to compute as aten does.
#define VGGDSL_VECTOR_CLONES \
  [[gnu::target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")]]
#else
#define VGGDSL_VECTOR_CLONES
#endif
