// 2×2 max pooling, stride 2, alone or after a ReLU, with aten's values and gradients. aten's
// kernel loops over each window with general-purpose index arithmetic; this one is a branch-free
// vector loop, many times faster on wide contiguous NCHW maps.
#include "common.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/max_pool2d.h>
#include <ATen/ops/max_pool2d_with_indices.h>
#include <ATen/ops/max_pool2d_with_indices_backward.h>
#include <ATen/ops/relu.h>
#include <ATen/ops/threshold_backward.h>
#include <torch/csrc/autograd/custom_function.h>

namespace {
using vggdsl::grain;

// One 2×2 window, its top row at `r0`, its bottom row at `r1` (see `max_pool2x2`).
template <typename T>
[[gnu::always_inline]] inline void max_pool2x2_window(const T* r0, const T* r1, T* out,
                                                      int32_t* at, bool relu) {
  const auto rectified = [relu](T v) { return relu && v < T(0) ? T(0) : v; };
  T max = rectified(r0[0]);
  int32_t best = 0;
  const T candidates[3] = {rectified(r0[1]), rectified(r1[0]), rectified(r1[1])};
  for (int32_t k = 0; k < 3; ++k) {
    const bool take = candidates[k] > max || candidates[k] != candidates[k];
    max = take ? candidates[k] : max;
    best = take ? k + 1 : best;
  }
  *out = max;
  *at = relu && max <= T(0) ? -1 : best;
}

// One row of `ow` 2×2 windows (see `max_pool2x2`); `kOw`, when not 0, is `ow` known at compile
// time: rows of 4 to 7 windows are too short for a vector loop's set-up to pay, unrolled they
// are not.
template <int kOw, typename T>
[[gnu::always_inline]] inline void max_pool2x2_row(const T* r0, const T* r1, T* out,
                                                   int32_t* at, int64_t ow, bool relu) {
#pragma omp simd
  for (int64_t j = 0; j < (kOw != 0 ? kOw : ow); ++j) {
    max_pool2x2_window(r0 + 2 * j, r1 + 2 * j, out + j, at + j, relu);
  }
}

// The gradient of one row of windows from `max_pool2x2_row`'s positions, into the two input
// rows `r0` and `r1`.
template <int kOw, typename T>
[[gnu::always_inline]] inline void max_pool2x2_backward_row(const T* g, const int32_t* at, T* r0,
                                                            T* r1, int64_t ow) {
  // A loop per input row: GCC 12 vectorises neither when they are one.
  for (const int32_t top : {0, 2}) {
    T* r = top == 0 ? r0 : r1;
#pragma omp simd
    for (int64_t j = 0; j < (kOw != 0 ? kOw : ow); ++j) {
      const T v = T(0) + g[j];
      r[2 * j] = at[j] == top ? v : T(0);
      r[2 * j + 1] = at[j] == top + 1 ? v : T(0);
    }
  }
}

// Calls `rows.template operator()<kOw>()` with `ow` as a constant for rows of 4 to 7 windows
// (VGG's 8×8 maps), 0 for longer rows.
template <typename Rows>
[[gnu::always_inline]] inline void by_row_length(int64_t ow, const Rows& rows) {
  switch (ow) {
    case 4: return rows.template operator()<4>();
    case 5: return rows.template operator()<5>();
    case 6: return rows.template operator()<6>();
    case 7: return rows.template operator()<7>();
    default: return rows.template operator()<0>();
  }
}

// Max pooling 2×2, stride 2, of planes [begin, end) (H×W each) of `x`, or with `relu` of
// relu(x), into `y`, with the position of each maximum within its window (0 top left, 1 top
// right, 2 bottom left, 3 bottom right) in `where`. A window is scanned row by row and a value
// replaces the maximum if it is greater or NaN, as aten's kernel does: the same values, the same
// maxima (the first one; the last NaN), so the same gradient. relu(v) is aten's `v < 0 ? 0 : v`
// (NaN and -0 kept), and a window whose maximum is not positive gets position -1: in PyTorch
// its gradient stops at the ReLU (`threshold_backward` passes it where relu(x) > 0 only).
// Branch-free, so that the compiler vectorises the inner loop.
template <typename T>
[[gnu::always_inline]] inline void max_pool2x2(const T* x, T* y, int32_t* where, int64_t begin,
                                               int64_t end, int64_t h, int64_t w, bool relu) {
  const int64_t oh = h / 2, ow = w / 2;
  if (w == 2 && h % 2 == 0) {
    // Rows of one window are too short for vectors; with an even height each window is 4
    // consecutive values, and the vector loop runs over all of them.
#pragma omp simd
    for (int64_t q = begin * oh; q < end * oh; ++q) {
      max_pool2x2_window(x + 4 * q, x + 4 * q + 2, y + q, where + q, relu);
    }
    return;
  }
  by_row_length(ow, [&]<int kOw>() {
    for (int64_t p = begin; p < end; ++p) {
      for (int64_t i = 0; i < oh; ++i) {
        const T* r0 = x + p * h * w + 2 * i * w;
        max_pool2x2_row<kOw>(r0, r0 + w, y + (p * oh + i) * ow, where + (p * oh + i) * ow, ow,
                             relu);
      }
    }
  });
}

// The input gradient of `max_pool2x2` for planes [begin, end): each window's maximum gets the
// output's gradient, the rest of the window (all of it at position -1, and a last odd row or
// column) zero. aten zeroes the whole gradient and adds each output's gradient at its maximum;
// `0 + g` keeps that sum's result for g = -0.
template <typename T>
[[gnu::always_inline]] inline void max_pool2x2_backward(const T* gy, const int32_t* where, T* gx,
                                                        int64_t begin, int64_t end, int64_t h,
                                                        int64_t w) {
  const int64_t oh = h / 2, ow = w / 2;
  if (w == 2 && h % 2 == 0) {
    // As in `max_pool2x2`: one vector loop over all the windows, 4 consecutive values each.
#pragma omp simd
    for (int64_t q = begin * oh; q < end * oh; ++q) {
      const T v = T(0) + gy[q];
      gx[4 * q] = where[q] == 0 ? v : T(0);
      gx[4 * q + 1] = where[q] == 1 ? v : T(0);
      gx[4 * q + 2] = where[q] == 2 ? v : T(0);
      gx[4 * q + 3] = where[q] == 3 ? v : T(0);
    }
    return;
  }
  by_row_length(ow, [&]<int kOw>() {
    for (int64_t p = begin; p < end; ++p) {
      T* plane = gx + p * h * w;
      for (int64_t i = 0; i < oh; ++i) {
        T* r0 = plane + 2 * i * w;
        T* r1 = r0 + w;
        max_pool2x2_backward_row<kOw>(gy + (p * oh + i) * ow, where + (p * oh + i) * ow, r0, r1,
                                      ow);
        if (w % 2 != 0) {
          r0[w - 1] = r1[w - 1] = T(0);
        }
      }
      if (h % 2 != 0) {
        std::fill(plane + (h - 1) * w, plane + h * w, T(0));
      }
    }
  });
}

VGGDSL_ISA_BUILDS(max_pool2x2_f32,
                  (const float* x, float* y, int32_t* where, int64_t begin, int64_t end, int64_t h,
                   int64_t w, bool relu),
                  (x, y, where, begin, end, h, w, relu), max_pool2x2)

VGGDSL_ISA_BUILDS(max_pool2x2_f64,
                  (const double* x, double* y, int32_t* where, int64_t begin, int64_t end,
                   int64_t h, int64_t w, bool relu),
                  (x, y, where, begin, end, h, w, relu), max_pool2x2)

VGGDSL_ISA_BUILDS(max_pool2x2_backward_f32,
                  (const float* gy, const int32_t* where, float* gx, int64_t begin, int64_t end,
                   int64_t h, int64_t w),
                  (gy, where, gx, begin, end, h, w), max_pool2x2_backward)

VGGDSL_ISA_BUILDS(max_pool2x2_backward_f64,
                  (const double* gy, const int32_t* where, double* gx, int64_t begin,
                   int64_t end, int64_t h, int64_t w),
                  (gy, where, gx, begin, end, h, w), max_pool2x2_backward)

// `max_pool2d(x, 2, 2)`, or with `relu` `max_pool2d(relu(x), 2, 2)`, for contiguous f32/f64
// NCHW tensors, its planes split over libtorch's threads. With `relu` one pass replaces three
// over the full-size map (the in-place ReLU's, and its gradient's two) and x is left as it is.
// The backward pass is the kernel above, or aten's ops where a graph of the gradient is recorded
// (a second derivative): aten's pooling of the saved input finds the same maxima.
struct MaxPool2x2 : torch::autograd::Function<MaxPool2x2> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                            bool relu) {
    const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
    at::Tensor y = at::empty({n, c, h / 2, w / 2}, x.options());
    at::Tensor where = at::empty({n, c, h / 2, w / 2}, x.options().dtype(at::kInt));
    at::parallel_for(0, n * c, grain(h * w), [&](int64_t begin, int64_t end) {
      if (x.scalar_type() == at::kFloat) {
        max_pool2x2_f32(x.const_data_ptr<float>(), y.mutable_data_ptr<float>(),
                        where.mutable_data_ptr<int32_t>(), begin, end, h, w, relu);
      } else {
        max_pool2x2_f64(x.const_data_ptr<double>(), y.mutable_data_ptr<double>(),
                        where.mutable_data_ptr<int32_t>(), begin, end, h, w, relu);
      }
    });
    ctx->save_for_backward({x, where});
    ctx->saved_data["relu"] = relu;
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& x = saved[0];
    const bool relu = ctx->saved_data["relu"].toBool();
    if (at::GradMode::is_enabled()) {
      const at::Tensor r = relu ? at::relu(x) : x;
      const auto [y, indices] = at::max_pool2d_with_indices(r, {2, 2}, {2, 2});
      const at::Tensor gr = at::max_pool2d_with_indices_backward(grads[0], r, {2, 2}, {2, 2},
                                                                 {0, 0}, {1, 1}, false, indices);
      return {relu ? at::threshold_backward(gr, r, 0) : gr, at::Tensor()};
    }
    const at::Tensor gy = grads[0].contiguous();
    const at::Tensor& where = saved[1];
    const int64_t h = x.size(2), w = x.size(3);
    at::Tensor gx = at::empty(x.sizes(), x.options());
    at::parallel_for(0, x.size(0) * x.size(1), grain(h * w), [&](int64_t begin, int64_t end) {
      if (x.scalar_type() == at::kFloat) {
        max_pool2x2_backward_f32(gy.const_data_ptr<float>(), where.const_data_ptr<int32_t>(),
                                 gx.mutable_data_ptr<float>(), begin, end, h, w);
      } else {
        max_pool2x2_backward_f64(gy.const_data_ptr<double>(), where.const_data_ptr<int32_t>(),
                                 gx.mutable_data_ptr<double>(), begin, end, h, w);
      }
    });
    return {gx, at::Tensor()};
  }
};

// Whether `MaxPool2x2` takes `x`; aten's operator takes the rest. The kernel measured faster on
// contiguous f32/f64 NCHW maps 8 or more wide (rows of 4 to 7 windows unrolled) and on maps 2
// wide of even height (one loop over all windows); on maps 4 wide neither way beat aten's.
bool max_pool2x2_takes(const at::Tensor& x) {
  return x.defined() && x.layout() == at::kStrided && x.device().is_cpu() && x.dim() == 4 &&
         (x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble) && x.size(2) >= 2 &&
         (x.size(3) >= 8 || (x.size(3) == 2 && x.size(2) % 2 == 0)) && x.numel() > 0 &&
         x.is_contiguous();
}
}  // namespace

extern "C" {

// `max_pool2d(x, kernel_size=2, stride=2)`, as a new tensor, or null on failure (see
// vggdsl_last_error).
at::Tensor* vggdsl_max_pool2x2(const at::Tensor* x) {
  return vggdsl::guarded<at::Tensor*>(nullptr, [&] {
    return new at::Tensor(max_pool2x2_takes(*x) ? MaxPool2x2::apply(*x, false)
                                                : at::max_pool2d(*x, {2, 2}, {2, 2}));
  });
}

// `max_pool2d(x.relu_(), kernel_size=2, stride=2)`, as a new tensor, or null on failure (see
// vggdsl_last_error). Where the kernel takes `x` it reads relu(x) and leaves `x` unchanged.
at::Tensor* vggdsl_relu_max_pool2x2(at::Tensor* x) {
  return vggdsl::guarded<at::Tensor*>(nullptr, [&] {
    return new at::Tensor(max_pool2x2_takes(*x) ? MaxPool2x2::apply(*x, true)
                                                : at::max_pool2d(x->relu_(), {2, 2}, {2, 2}));
  });
}

// Whether `vggdsl_max_pool2x2` runs its own kernel on `x` (rather than aten's operator).
bool vggdsl_max_pool2x2_takes(const at::Tensor* x) {
  return vggdsl::guarded(false, [&] { return max_pool2x2_takes(*x); });
}
}
