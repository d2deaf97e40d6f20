// `Tensor::add(other, alpha)` and `add_(other, alpha)`, which tch's bindings lack (they drop
// `alpha`). PyTorch's SGD relies on them, and `a + alpha * b` in two ops rounds differently from
// the one fused `add` kernel, so the optimiser calls the real thing through these two functions.
#include <ATen/core/Tensor.h>

#include <cstring>
#include <exception>

namespace {
// The message of the last failure, for the Rust side to report; empty when none.
thread_local char last_error[512];

void remember(const std::exception& e) {
  std::strncpy(last_error, e.what(), sizeof(last_error) - 1);
  last_error[sizeof(last_error) - 1] = '\0';
}
}  // namespace

extern "C" {

// `self.add(other, alpha=alpha)` as a new tensor, or null on failure (see vggdsl_last_error).
at::Tensor* vggdsl_add(const at::Tensor* self, const at::Tensor* other, double alpha) {
  try {
    return new at::Tensor(self->add(*other, alpha));
  } catch (const std::exception& e) {
    remember(e);
    return nullptr;
  }
}

// `self.add_(other, alpha=alpha)`; false on failure (see vggdsl_last_error).
bool vggdsl_add_(at::Tensor* self, const at::Tensor* other, double alpha) {
  try {
    self->add_(*other, alpha);
    return true;
  } catch (const std::exception& e) {
    remember(e);
    return false;
  }
}

const char* vggdsl_last_error() { return last_error; }
}
