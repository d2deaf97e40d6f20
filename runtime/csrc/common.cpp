// The error message behind `vggdsl_last_error`, aten's build and the kernels' ISA level, asked
// once: the state that common.h's helpers share, kept in one translation unit; and the buffer
// the kernel tuner reads to empty the caches.
#include "common.h"

#include <ATen/Version.h>
#if __has_include(<torch/headeronly/version.h>)
#include <torch/headeronly/version.h>
#endif

#include <ATen/Parallel.h>

#include <atomic>
#include <cstring>
#include <string>
#include <vector>

namespace {
// The message of the last failure on this thread, for the Rust side to report; empty when none.
thread_local char last_error[512];
}  // namespace

void vggdsl::remember(const std::exception& e) noexcept {
  std::strncpy(last_error, e.what(), sizeof(last_error) - 1);
  last_error[sizeof(last_error) - 1] = '\0';
}

bool vggdsl::aten_fuses_multiply_add() {
  static const bool fuses = [] {
    const std::string capability = at::get_cpu_capability();
    return capability == "AVX2" || capability == "AVX512";
  }();
  return fuses;
}

vggdsl::Isa vggdsl::isa() {
  static const Isa level = [] {
    const std::string capability = at::get_cpu_capability();
#if defined(__x86_64__)
    // aten never claims more than the CPU has; the checks keep the builds' own needs explicit
    // (x86-64-v4 adds AVX-512 CD, v3 BMI, F16C and MOVBE to what aten's levels ask for).
    if (capability == "AVX512" && __builtin_cpu_supports("x86-64-v4")) {
      return Isa::kAvx512;
    }
    if ((capability == "AVX512" || capability == "AVX2") && __builtin_cpu_supports("x86-64-v3")) {
      return Isa::kAvx2;
    }
#endif
    return Isa::kBaseline;
  }();
  return level;
}

int64_t vggdsl::panel_width() {
  switch (isa()) {
    case Isa::kAvx512:
      return 32;
    case Isa::kAvx2:
      return 16;
    case Isa::kBaseline:
      break;
  }
  return 8;
}

extern "C" {
const char* vggdsl_last_error() { return last_error; }

// aten's CPU capability ("AVX512", "AVX2", "DEFAULT", …), as ATEN_CPU_CAPABILITY may have set it.
const char* vggdsl_cpu_capability() {
  static const std::string capability = at::get_cpu_capability();
  return capability.c_str();
}

// The version of the libtorch these kernels were built against, "?" where its headers don't say.
const char* vggdsl_torch_version() {
#ifdef TORCH_VERSION
  return TORCH_VERSION;
#else
  return "?";
#endif
}

// The build of the kernels that runs (`vggdsl::isa`): "avx512", "avx2" or "baseline".
const char* vggdsl_kernel_isa() {
  switch (vggdsl::isa()) {
    case vggdsl::Isa::kAvx512: return "avx512";
    case vggdsl::Isa::kAvx2: return "avx2";
    case vggdsl::Isa::kBaseline: break;
  }
  return "baseline";
}

// Reads `bytes` of a buffer kept for it, split over libtorch's threads: every core's caches and
// the shared last-level cache then hold that buffer rather than what they held (the kernel
// tuner's cold runs). Optimised in every build, unlike the Rust side in a debug build, where a
// byte-by-byte read of 64 MiB took longer than the run it precedes. Does nothing without memory.
void vggdsl_evict_caches(size_t bytes) noexcept {
  static std::atomic<unsigned> sink{0};
  try {
    static std::vector<unsigned char> buffer(bytes, 1);
    const int64_t lines = static_cast<int64_t>(buffer.size() / 64);
    at::parallel_for(0, lines, 4096, [&](int64_t begin, int64_t end) {
      unsigned sum = 0;
      for (int64_t i = begin; i < end; ++i) {
        sum += buffer[static_cast<size_t>(i) * 64];
      }
      sink.fetch_add(sum, std::memory_order_relaxed);
    });
  } catch (...) {
  }
}
}
