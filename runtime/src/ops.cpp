// The libtorch operators vggdsl needs that tch's bindings lack (their Rust side is ops.rs):
// - `Tensor::add(other, alpha)` and `add_(other, alpha)`: tch drops `alpha`; PyTorch's SGD relies
//   on it, and `a + alpha * b` in two ops rounds differently from the one fused `add` kernel;
// - setting a gradient to undefined, as PyTorch's `zero_grad()` (set_to_none) does;
// - oneDNN's convolution with a fused ReLU (`mkldnn::_convolution_pointwise`), the kernel
//   torch.compile emits for conv + ReLU on the CPU. It is registered in libtorch's dispatcher
//   under the `mkldnn` namespace, outside the aten operators that tch binds.
#include <ATen/core/Tensor.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <cstring>
#include <exception>
#include <optional>
#include <string_view>

namespace {
// The message of the last failure, for the Rust side to report; empty when none.
thread_local char last_error[512];

void remember(const std::exception& e) {
  std::strncpy(last_error, e.what(), sizeof(last_error) - 1);
  last_error[sizeof(last_error) - 1] = '\0';
}

using ConvPointwise = at::Tensor(const at::Tensor&, const at::Tensor&,
                                 const std::optional<at::Tensor>&, c10::IntArrayRef,
                                 c10::IntArrayRef, c10::IntArrayRef, int64_t, std::string_view,
                                 c10::List<std::optional<c10::Scalar>>,
                                 std::optional<std::string_view>);

// Looked up once; throws (caught by the caller) where libtorch was built without oneDNN.
const c10::TypedOperatorHandle<ConvPointwise>& conv_pointwise() {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("mkldnn::_convolution_pointwise", "")
                             .typed<ConvPointwise>();
  return op;
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

// `self.grad = None`: the next backward pass stores its gradient instead of adding it to zeros.
void vggdsl_grad_to_none(at::Tensor* self) { self->mutable_grad() = at::Tensor(); }

// `relu(conv2d(x, weight, bias))` in one oneDNN kernel, square stride and padding, no dilation or
// groups. `weight` is dense or prepacked by `mkldnn_reorder_conv2d_weight` (then the output is
// channels-last). A new tensor, or null on failure (see vggdsl_last_error).
at::Tensor* vggdsl_conv2d_relu(const at::Tensor* x, const at::Tensor* weight,
                               const at::Tensor* bias, int64_t stride, int64_t padding) {
  try {
    const int64_t strides[] = {stride, stride};
    const int64_t paddings[] = {padding, padding};
    const int64_t dilations[] = {1, 1};
    return new at::Tensor(conv_pointwise().call(*x, *weight, *bias, paddings, strides, dilations,
                                                1, "relu", c10::List<std::optional<c10::Scalar>>(),
                                                std::nullopt));
  } catch (const std::exception& e) {
    remember(e);
    return nullptr;
  }
}

// Whether `vggdsl_conv2d_relu` can run: this libtorch registers the oneDNN operator.
bool vggdsl_has_conv2d_relu() {
  try {
    conv_pointwise();
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

const char* vggdsl_last_error() { return last_error; }
}
