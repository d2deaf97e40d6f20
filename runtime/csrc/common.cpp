// The error message behind `vggdsl_last_error`, aten's build and the kernels' ISA level, asked
// once: the state that common.h's helpers share, kept in one translation unit.
#include "common.h"

#include <ATen/Version.h>
#if __has_include(<torch/headeronly/version.h>)
#include <torch/headeronly/version.h>
#endif

#include <cstring>
#include <string>

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
}
