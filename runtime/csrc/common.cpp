// The error message behind `vggdsl_last_error` and aten's build, asked once: the state that
// common.h's helpers share, kept in one translation unit.
#include "common.h"

#include <ATen/Version.h>

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

extern "C" const char* vggdsl_last_error() { return last_error; }
