// A linear layer (+ ReLU) for a few rows, for inference: each output a dot product along a row
// of the weight as it is stored, the weight read once, in order. aten's `linear` at batch 1 goes
// through MKL, whose code a pass fetches from memory afresh every time (the rest of the pass has
// pushed it out of the caches), and which packs for a product of many rows.
#include "common.h"

#include <ATen/core/grad_mode.h>
#include <ATen/ops/empty.h>

namespace {

// Outputs computed together: each element of a row of `x` is loaded once for all of them.
constexpr int64_t kOutputs = 4;

// Outputs [begin, end) of y = relu?(x·Wᵀ + b) for `rows` rows of `in` features. `kFma` in the
// builds whose CPUs fuse multiply-adds: the sums' order is not aten's anyway.
template <bool kFma>
[[gnu::always_inline]] inline void linear_rows(const float* x, const float* w, const float* b,
                                               float* y, int64_t rows, int64_t in, int64_t out,
                                               bool relu, int64_t begin, int64_t end) {
  const auto madd = [](float a, float b, float acc) {
    if constexpr (kFma) {
      return __builtin_fmaf(a, b, acc);
    } else {
      return acc + a * b;
    }
  };
  for (int64_t o = begin; o < end; o += kOutputs) {
    const int64_t count = std::min(kOutputs, end - o);
    // The last block repeats its last output where fewer remain.
    const float* w0 = w + o * in;
    const float* w1 = w + (o + std::min<int64_t>(1, count - 1)) * in;
    const float* w2 = w + (o + std::min<int64_t>(2, count - 1)) * in;
    const float* w3 = w + (o + std::min<int64_t>(3, count - 1)) * in;
    for (int64_t r = 0; r < rows; ++r) {
      const float* xr = x + r * in;
      float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
      for (int64_t i = 0; i < in; ++i) {
        s0 = madd(xr[i], w0[i], s0);
        s1 = madd(xr[i], w1[i], s1);
        s2 = madd(xr[i], w2[i], s2);
        s3 = madd(xr[i], w3[i], s3);
      }
      const float sums[kOutputs] = {s0, s1, s2, s3};
      for (int64_t j = 0; j < count; ++j) {
        const float v = sums[j] + b[o + j];
        y[r * out + o + j] = relu ? std::max(v, 0.0f) : v;
      }
    }
  }
}

VGGDSL_FMA_BUILDS(linear_rows_f32,
                  (const float* x, const float* w, const float* b, float* y, int64_t rows,
                   int64_t in, int64_t out, bool relu, int64_t begin, int64_t end),
                  (x, w, b, y, rows, in, out, relu, begin, end), linear_rows<true>,
                  linear_rows<false>)

at::Tensor linear_relu(const at::Tensor& x_any, const at::Tensor& weight, const at::Tensor& bias,
                       bool relu) {
  const at::NoGradGuard no_grad;  // an inference kernel: no graph, whatever requires grad
  TORCH_CHECK(x_any.dim() == 2 && x_any.scalar_type() == at::kFloat && x_any.device().is_cpu() &&
                  x_any.layout() == at::kStrided,
              "linear: a 2-d f32 CPU input");
  const at::Tensor x = x_any.contiguous();
  const int64_t rows = x.size(0), in = x.size(1);
  TORCH_CHECK(weight.dim() == 2 && weight.size(1) == in && weight.is_contiguous() &&
                  weight.scalar_type() == at::kFloat && weight.device().is_cpu(),
              "linear: a contiguous f32 CPU weight [out, in] for the input's features");
  const int64_t out = weight.size(0);
  const at::Tensor b = bias.contiguous();
  TORCH_CHECK(b.dim() == 1 && b.numel() == out && b.scalar_type() == at::kFloat &&
                  b.device().is_cpu(),
              "linear: one f32 CPU bias per output");
  at::Tensor y = at::empty({rows, out}, x.options());
  const float* xp = x.const_data_ptr<float>();
  const float* wp = weight.const_data_ptr<float>();
  const float* bp = b.const_data_ptr<float>();
  float* yp = y.mutable_data_ptr<float>();
  // Blocks of outputs; a thread's part multiplies 32,768 pairs at the least.
  const int64_t blocks = (out + kOutputs - 1) / kOutputs;
  const int64_t part = std::max<int64_t>(1, 32768 / std::max<int64_t>(1, kOutputs * in * rows));
  at::parallel_for(0, blocks, part, [&](int64_t from, int64_t to) {
    linear_rows_f32(xp, wp, bp, yp, rows, in, out, relu, from * kOutputs,
                    std::min(to * kOutputs, out));
  });
  return y;
}
}  // namespace

extern "C" {

// `relu?(x·weightᵀ + bias)` for a 2-d f32 input: a new tensor that records no gradient, or null
// on failure (see vggdsl_last_error).
at::Tensor* vggdsl_linear_relu(const at::Tensor* x, const at::Tensor* weight,
                               const at::Tensor* bias, bool relu) {
  return vggdsl::guarded<at::Tensor*>(
      nullptr, [&] { return new at::Tensor(linear_relu(*x, *weight, *bias, relu)); });
}
}
