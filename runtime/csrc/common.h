// What every kernel file shares: the guard of the `extern "C"` entry points, the grain of the
// parallel loops, the per-ISA builds and their dispatch, and whether aten fuses multiply-adds. In one place so that
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
inline int64_t grain(int64_t size) { return std::max<int64_t>(1, 32768 / std::max<int64_t>(1, size)); }

// Whether aten's kernels run a build with fused multiply-adds (x86's AVX2 and AVX-512 ones),
// whose roundings the SGD step and train-mode BatchNorm reproduce; elsewhere aten's ops run.
bool aten_fuses_multiply_add();

// The x86-64 level of the kernels' builds that run: the one matching aten's CPU capability
// (`at::get_cpu_capability()`, which honours ATEN_CPU_CAPABILITY), so that a machine told to run
// aten's AVX2 kernels runs these kernels' AVX2 builds too, as an AVX2-only machine would.
enum class Isa { kBaseline, kAvx2, kAvx512 };
Isa isa();

// The width, in floats, of the weight panels that the kernels with sums in registers read
// (Winograd's products, the direct conv): two vector registers of the build that runs, 32 with
// AVX-512, 16 with AVX2, 8 with SSE2.
int64_t panel_width();

// acc[·] += a · row[·] along one panel row of `kWidth` sums kept in registers, fused where `kFma`.
template <int64_t kWidth, bool kFma>
[[gnu::always_inline]] inline void multiply_add_row(float* acc, float a, const float* row) {
#pragma omp simd
  for (int64_t q = 0; q < kWidth; ++q) {
    if constexpr (kFma) {
      acc[q] = __builtin_fmaf(a, row[q], acc[q]);
    } else {
      acc[q] += a * row[q];
    }
  }
}

}  // namespace vggdsl

// Defines `name params` as a call of `kernel args` built once per vector width (x86-64's v4,
// v3 and baseline levels; elsewhere the baseline alone), running the build of `vggdsl::isa()`.
// `kernel` must be always_inline, so that each build compiles it for its own level.
#define VGGDSL_ISA_BUILDS(name, params, args, kernel) \
  VGGDSL_FMA_BUILDS(name, params, args, kernel, kernel)

// As VGGDSL_ISA_BUILDS, with `fused` in the builds whose CPUs fuse multiply-adds (v4 and v3) and
// `plain` in the baseline one.
#if defined(__x86_64__)
#define VGGDSL_FMA_BUILDS(name, params, args, fused, plain)                   \
  [[gnu::target("arch=x86-64-v4")]] void name##_avx512 params { fused args; } \
  [[gnu::target("arch=x86-64-v3")]] void name##_avx2 params { fused args; }   \
  void name##_baseline params { plain args; }                                 \
  void name params {                                                          \
    switch (vggdsl::isa()) {                                                  \
      case vggdsl::Isa::kAvx512: return name##_avx512 args;                   \
      case vggdsl::Isa::kAvx2: return name##_avx2 args;                       \
      case vggdsl::Isa::kBaseline: return name##_baseline args;               \
    }                                                                         \
  }
#else
#define VGGDSL_FMA_BUILDS(name, params, args, fused, plain) \
  void name params { plain args; }
#endif
