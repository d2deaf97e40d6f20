// The libtorch operators vggdsl needs that tch's bindings lack (their Rust side is ops.rs):
// - `Tensor::add(other, alpha)` and `add_(other, alpha)`: tch drops `alpha`; PyTorch's SGD relies
//   on it, and `a + alpha * b` in two ops rounds differently from the one fused `add` kernel;
// - setting a gradient to undefined, as PyTorch's `zero_grad()` (set_to_none) does;
// - oneDNN's convolution with a fused ReLU (`mkldnn::_convolution_pointwise`), the kernel
//   torch.compile emits for conv + ReLU on the CPU. It is registered in libtorch's dispatcher
//   under the `mkldnn` namespace, outside the aten operators that tch binds;
// - max pooling 2×2, stride 2, with PyTorch's result, indices and gradient, 5–6× faster than
//   aten's kernel on wide contiguous NCHW maps (aten's loops over each window with
//   general-purpose index arithmetic);
// - where a tensor's bytes lie, oneDNN's opaque tensors (prepacked weights) included: libtorch
//   refuses them `data_ptr()`, but registers `mkldnn::data_ptr` and `mkldnn::_nbytes`.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/max_pool2d.h>
#include <ATen/ops/max_pool2d_with_indices_backward.h>
#include <torch/csrc/autograd/custom_function.h>

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

// An operator of libtorch's dispatcher; throws (caught by the caller) where it is not registered,
// as oneDNN's are not in a libtorch built without oneDNN.
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

// Max pooling 2×2, stride 2, of `planes` H×W planes of `x` into `y`, with the flat index of each
// maximum within its plane in `indices`. A window is scanned row by row and a value replaces the
// maximum if it is greater or NaN, as aten's kernel does: the same values, the same indices (the
// first maximum; the last NaN), so the same gradient. Branch-free, so that the compiler
// vectorises the inner loop.
template <typename T>
[[gnu::always_inline]] inline void max_pool2x2(const T* x, T* y, int64_t* indices, int64_t planes,
                                               int64_t h, int64_t w) {
  const int64_t oh = h / 2, ow = w / 2;
  for (int64_t p = 0; p < planes; ++p) {
    for (int64_t i = 0; i < oh; ++i) {
      const T* r0 = x + p * h * w + 2 * i * w;
      const T* r1 = r0 + w;
      T* out = y + (p * oh + i) * ow;
      int64_t* index = indices + (p * oh + i) * ow;
      const int64_t top = 2 * i * w;
#pragma omp simd
      for (int64_t j = 0; j < ow; ++j) {
        T max = r0[2 * j];
        int64_t best = top + 2 * j;
        const T candidates[3] = {r0[2 * j + 1], r1[2 * j], r1[2 * j + 1]};
        const int64_t positions[3] = {top + 2 * j + 1, top + w + 2 * j, top + w + 2 * j + 1};
        for (int k = 0; k < 3; ++k) {
          const bool take = candidates[k] > max || candidates[k] != candidates[k];
          max = take ? candidates[k] : max;
          best = take ? positions[k] : best;
        }
        out[j] = max;
        index[j] = best;
      }
    }
  }
}

// One build per vector width, picked when the library loads (x86-64 with glibc's ifunc; elsewhere
// the baseline build).
#if defined(__x86_64__) && defined(__GLIBC__)
#define VGGDSL_VECTOR_CLONES [[gnu::target_clones("avx512f", "avx2", "default")]]
#else
#define VGGDSL_VECTOR_CLONES
#endif

VGGDSL_VECTOR_CLONES void max_pool2x2_f32(
    const float* x, float* y, int64_t* indices, int64_t planes, int64_t h, int64_t w) {
  max_pool2x2(x, y, indices, planes, h, w);
}

VGGDSL_VECTOR_CLONES void max_pool2x2_f64(
    const double* x, double* y, int64_t* indices, int64_t planes, int64_t h, int64_t w) {
  max_pool2x2(x, y, indices, planes, h, w);
}

// `max_pool2d(x, 2, 2)` with aten's backward (`max_pool2d_with_indices_backward` on the saved
// indices), for contiguous f32/f64 NCHW tensors.
struct MaxPool2x2 : torch::autograd::Function<MaxPool2x2> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x) {
    const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
    at::Tensor y = at::empty({n, c, h / 2, w / 2}, x.options());
    at::Tensor indices = at::empty({n, c, h / 2, w / 2}, x.options().dtype(at::kLong));
    if (x.scalar_type() == at::kFloat) {
      max_pool2x2_f32(x.const_data_ptr<float>(), y.mutable_data_ptr<float>(),
                      indices.mutable_data_ptr<int64_t>(), n * c, h, w);
    } else {
      max_pool2x2_f64(x.const_data_ptr<double>(), y.mutable_data_ptr<double>(),
                      indices.mutable_data_ptr<int64_t>(), n * c, h, w);
    }
    ctx->save_for_backward({x, indices});
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    return {at::max_pool2d_with_indices_backward(grads[0], saved[0], {2, 2}, {2, 2}, {0, 0},
                                                 {1, 1}, false, saved[1])};
  }
};

// Whether `MaxPool2x2` takes `x`; aten's operator takes the rest. The kernel runs on one thread
// (this shim is not built against libtorch's OpenMP pool) and is measured against aten's on two
// (batch 64, `runtime/tests/pool.rs` checks the results): 2.0 against 12.0 ms on 32×32 maps,
// 1.2 against 6.2 ms on 16×16, a tie from 8×8 down, where its inner loop is too short to
// vectorise. Hence maps 16 wide or more, and up to 8 threads: an extrapolation (aten's kernel
// would need some 10 threads to catch up on 16×16 maps if it scaled perfectly; only 2 were
// measured here).
bool pools_2x2(const at::Tensor& x) {
  return x.defined() && x.layout() == at::kStrided && x.device().is_cpu() && x.dim() == 4 &&
         (x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble) && x.size(2) >= 2 &&
         x.size(3) >= 16 && x.numel() > 0 && x.is_contiguous() && at::get_num_threads() <= 8;
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

// `max_pool2d(x, kernel_size=2, stride=2)`, as a new tensor, or null on failure (see
// vggdsl_last_error).
at::Tensor* vggdsl_max_pool2x2(const at::Tensor* x) {
  try {
    return new at::Tensor(pools_2x2(*x) ? MaxPool2x2::apply(*x) : at::max_pool2d(*x, {2, 2}, {2, 2}));
  } catch (const std::exception& e) {
    remember(e);
    return nullptr;
  }
}

// Whether `vggdsl_max_pool2x2` runs its own kernel on `x` (rather than aten's operator).
bool vggdsl_max_pool2x2_takes(const at::Tensor* x) {
  try {
    return pools_2x2(*x);
  } catch (const std::exception&) {
    return false;
  }
}

// The address and length of the bytes that hold `t`'s elements: its whole storage for a strided
// tensor, oneDNN's buffer for an opaque one. False on failure (see vggdsl_last_error).
bool vggdsl_data_bytes(const at::Tensor* t, void** data, size_t* len) {
  try {
    if (t->is_mkldnn()) {
      static const auto data_ptr = find_op<OpaqueBytes>("mkldnn::data_ptr");
      static const auto nbytes = find_op<OpaqueBytes>("mkldnn::_nbytes");
      *data = reinterpret_cast<void*>(data_ptr.call(*t));
      *len = static_cast<size_t>(nbytes.call(*t));
    } else {
      *data = t->storage().mutable_data();
      *len = t->storage().nbytes();
    }
    return true;
  } catch (const std::exception& e) {
    remember(e);
    return false;
  }
}

const char* vggdsl_last_error() { return last_error; }
}
