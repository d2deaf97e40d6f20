// oneDNN's operators that libtorch registers in its dispatcher under the `mkldnn` namespace,
// outside the aten operators tch binds: the convolution with a fused ReLU
// (`mkldnn::_convolution_pointwise`, the kernel torch.compile emits for conv + ReLU on the CPU),
// and where an opaque tensor's bytes lie (a prepacked weight, which `data_ptr()` refuses).
#include "common.h"

#include <ATen/core/dispatch/Dispatcher.h>

#include <optional>
#include <string_view>

namespace {
using ConvPointwise = at::Tensor(const at::Tensor&, const at::Tensor&,
                                 const std::optional<at::Tensor>&, c10::IntArrayRef,
                                 c10::IntArrayRef, c10::IntArrayRef, int64_t, std::string_view,
                                 c10::List<std::optional<c10::Scalar>>,
                                 std::optional<std::string_view>);

// An operator of libtorch's dispatcher; throws (caught by the entry point's guard) where it is not
// registered, as oneDNN's are not in a libtorch built without oneDNN.
template <typename Signature>
c10::TypedOperatorHandle<Signature> find_op(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<Signature>();
}

// Looked up once.
const c10::TypedOperatorHandle<ConvPointwise>& conv_pointwise() {
  static const auto op = find_op<ConvPointwise>("mkldnn::_convolution_pointwise");
  return op;
}

// `mkldnn::data_ptr` and `mkldnn::_nbytes`.
using OpaqueBytes = int64_t(const at::Tensor&);
}  // namespace

extern "C" {

// `relu(conv2d(x, weight, bias))` in one oneDNN kernel, square stride and padding, no dilation or
// groups. `weight` is dense or prepacked by `mkldnn_reorder_conv2d_weight` (then the output is
// channels-last). A new tensor, or null on failure (see vggdsl_last_error).
at::Tensor* vggdsl_conv2d_relu(const at::Tensor* x, const at::Tensor* weight,
                               const at::Tensor* bias, int64_t stride, int64_t padding) {
  return vggdsl::guarded<at::Tensor*>(nullptr, [&] {
    const int64_t strides[] = {stride, stride};
    const int64_t paddings[] = {padding, padding};
    const int64_t dilations[] = {1, 1};
    return new at::Tensor(conv_pointwise().call(*x, *weight, *bias, paddings, strides, dilations,
                                                1, "relu", c10::List<std::optional<c10::Scalar>>(),
                                                std::nullopt));
  });
}

// Whether `vggdsl_conv2d_relu` can run: this libtorch registers the oneDNN operator.
bool vggdsl_has_conv2d_relu() {
  return vggdsl::guarded(false, [] {
    conv_pointwise();
    return true;
  });
}

// The address and length of the bytes that hold `t`'s elements: its whole storage for a strided
// tensor, oneDNN's buffer for an opaque one. False on failure (see vggdsl_last_error).
bool vggdsl_data_bytes(const at::Tensor* t, void** data, size_t* len) {
  return vggdsl::guarded(false, [&] {
    if (t->is_mkldnn()) {
      static const auto data_ptr = find_op<OpaqueBytes>("mkldnn::data_ptr");
      static const auto nbytes = find_op<OpaqueBytes>("mkldnn::_nbytes");
      *data = reinterpret_cast<void*>(data_ptr.call(*t));
      *len = static_cast<size_t>(nbytes.call(*t));
    } else {
      TORCH_CHECK(t->device().is_cpu(), "the tensor is not in host memory");
      *data = const_cast<void*>(t->storage().data());
      *len = t->storage().nbytes();
    }
    return true;
  });
}
}
