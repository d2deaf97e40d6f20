// The libtorch operators vggdsl needs that tch's bindings lack (their Rust side is ops.rs):
// - PyTorch's SGD step for one parameter (`torch.optim.SGD`'s single-tensor path, bit for bit) in
//   one pass over its memory; tch's `add` drops the `alpha` that step's ops rely on anyway;
// - BatchNorm in train mode with aten's numbers and faster statistics;
// - setting a gradient to undefined, as PyTorch's `zero_grad()` (set_to_none) does;
// - oneDNN's convolution with a fused ReLU (`mkldnn::_convolution_pointwise`), the kernel
//   torch.compile emits for conv + ReLU on the CPU. It is registered in libtorch's dispatcher
//   under the `mkldnn` namespace, outside the aten operators that tch binds;
// - max pooling 2×2, stride 2, alone or after a ReLU, with PyTorch's results and gradients, many
//   times faster than aten's kernel on wide contiguous NCHW maps (aten's loops over each window
//   with general-purpose index arithmetic);
// - a 3×3 conv + ReLU in Winograd's F(2×2, 3×3) form, which neither aten nor the oneDNN build
//   inside libtorch offers: 1.3–1.4× oneDNN's direct kernel on the seed's 4×4 maps at batch 64;
// - where a tensor's bytes lie, oneDNN's opaque tensors (prepacked weights) included: libtorch
//   refuses them `data_ptr()`, but registers `mkldnn::data_ptr` and `mkldnn::_nbytes`;
// - for a while, a CPU allocator (oneDNN's buffers come from it too) that starts large blocks on
//   a huge-page boundary and rounds them to whole huge pages, so that weights can lie in huge
//   pages from end to end (memory.rs).
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/Version.h>
#include <ATen/ops/batch_norm.h>
#include <ATen/ops/bmm.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/max_pool2d.h>
#include <ATen/ops/max_pool2d_with_indices.h>
#include <ATen/ops/max_pool2d_with_indices_backward.h>
#include <ATen/ops/native_batch_norm_backward.h>
#include <ATen/ops/relu.h>
#include <ATen/ops/threshold_backward.h>
#include <c10/core/CPUAllocator.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#ifdef __linux__
#include <sys/mman.h>
#endif

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

// One build per vector width, picked when the library loads (x86-64 with glibc's ifunc; elsewhere
// the baseline build).
#if defined(__x86_64__) && defined(__GLIBC__)
// x86-64-v3 is AVX2 with FMA, which `sgd_step` needs to compute as aten does.
#define VGGDSL_VECTOR_CLONES \
  [[gnu::target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")]]
#else
#define VGGDSL_VECTOR_CLONES
#endif

VGGDSL_VECTOR_CLONES void max_pool2x2_f32(const float* x, float* y, int32_t* where,
                                          int64_t begin, int64_t end, int64_t h, int64_t w,
                                          bool relu) {
  max_pool2x2(x, y, where, begin, end, h, w, relu);
}

VGGDSL_VECTOR_CLONES void max_pool2x2_f64(const double* x, double* y, int32_t* where,
                                          int64_t begin, int64_t end, int64_t h, int64_t w,
                                          bool relu) {
  max_pool2x2(x, y, where, begin, end, h, w, relu);
}

VGGDSL_VECTOR_CLONES void max_pool2x2_backward_f32(const float* gy, const int32_t* where,
                                                   float* gx, int64_t begin, int64_t end,
                                                   int64_t h, int64_t w) {
  max_pool2x2_backward(gy, where, gx, begin, end, h, w);
}

VGGDSL_VECTOR_CLONES void max_pool2x2_backward_f64(const double* gy, const int32_t* where,
                                                   double* gx, int64_t begin, int64_t end,
                                                   int64_t h, int64_t w) {
  max_pool2x2_backward(gy, where, gx, begin, end, h, w);
}

// How many items of `size` elements a thread's part of a parallel loop takes at least: about
// aten's 32,768 elements for an elementwise op.
int64_t grain(int64_t size) { return std::max<int64_t>(1, 32768 / size); }

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

// Whether `MaxPool2x2` takes `x`; aten's operator takes the rest. Measured on the seed's maps at
// batch 64, 2 threads, interleaved (forward; backward with a product's): 0.89 against aten's
// 12.2 ms and 1.42 against 2.90 ms on 32×32 maps, 0.38 against 6.2 and 0.73 against 1.22 ms on
// 16×16. Rows of 4 to 7 windows are unrolled (8×8 maps: 0.24 against 3.5 ms after a ReLU, 0.6
// against 1.3 ms backward), maps 2 wide of even height run as one loop over all windows (0.02
// against 0.50 ms; backward 0.17 against 0.15 ms). Maps 4 wide are aten's: neither way paid
// there (1.74 against 1.72 ms).
bool pools_2x2(const at::Tensor& x) {
  return x.defined() && x.layout() == at::kStrided && x.device().is_cpu() && x.dim() == 4 &&
         (x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble) && x.size(2) >= 2 &&
         (x.size(3) >= 8 || (x.size(3) == 2 && x.size(2) % 2 == 0)) && x.numel() > 0 &&
         x.is_contiguous();
}
// Winograd's F(2×2, 3×3) (Lavin and Gray, 2016) for a 3×3 conv with stride 1 and padding 1 on
// maps of even size: each 2×2 block of outputs comes from the 4×4 input tile around it as
// Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A, so the 36 multiplications per block and channel pair of the direct
// conv become 16, and for all tiles at once they are 16 matrix products over the channels. The
// transforms only add and subtract (G's ½ is applied to the weights, once). Activations are
// channels-last, so both transforms run along contiguous channels. Layouts: V, stored [p][ξ][c]
// and multiplied as [ξ][p][c], for the 16 entries ξ of tile p (image-major, then row, then
// column) and input channel c; U[ξ][c][k]; M = V·U is M[ξ][p][k]. Both transforms split the
// tiles over libtorch's threads (`at::parallel_for`, where build.rs found libtorch's OpenMP
// runtime): at 2 threads that took the seed's pass at batch 64 from 1.51× to 1.72× tch's eager
// op sequence. Plain threads of the shim's own had measured no faster: libtorch's workers still
// spin after the products.

// V of tiles [begin, end) from the channels-last input x[n][h][w][c], zero-padded by one; `v`
// holds the tiles from `first` on.
void winograd_input(const float* x, float* v, int64_t first, int64_t begin, int64_t end,
                    int64_t c, int64_t h, int64_t w) {
  const int64_t th = h / 2, tw = w / 2;
  const std::vector<float> zeros(c, 0.0f);
  for (int64_t p = begin; p < end; ++p) {
    const int64_t img = p / (th * tw), ty = p / tw % th, tx = p % tw;
    const float* d[4][4];
    for (int i = 0; i < 4; ++i) {
      for (int j = 0; j < 4; ++j) {
        const int64_t r = 2 * ty - 1 + i, col = 2 * tx - 1 + j;
        d[i][j] = r >= 0 && r < h && col >= 0 && col < w ? x + ((img * h + r) * w + col) * c
                                                         : zeros.data();
      }
    }
    float* out = v + (p - first) * 16 * c;  // V is stored [p][ξ][c], read as [ξ][p][c]
#pragma omp simd
    for (int64_t ch = 0; ch < c; ++ch) {
      float t[4][4];  // Bᵀ d
      for (int j = 0; j < 4; ++j) {
        t[0][j] = d[0][j][ch] - d[2][j][ch];
        t[1][j] = d[1][j][ch] + d[2][j][ch];
        t[2][j] = d[2][j][ch] - d[1][j][ch];
        t[3][j] = d[1][j][ch] - d[3][j][ch];
      }
      for (int i = 0; i < 4; ++i) {  // (Bᵀ d) B
        out[(4 * i + 0) * c + ch] = t[i][0] - t[i][2];
        out[(4 * i + 1) * c + ch] = t[i][1] + t[i][2];
        out[(4 * i + 2) * c + ch] = t[i][2] - t[i][1];
        out[(4 * i + 3) * c + ch] = t[i][1] - t[i][3];
      }
    }
  }
}

// relu(Aᵀ M A + bias) for tiles [begin, end) into the channels-last output y[n][h][w][k]; `m`
// holds the `tiles` tiles from `first` on.
void winograd_output(const float* m, const float* bias, float* y, int64_t first, int64_t tiles,
                     int64_t begin, int64_t end, int64_t k, int64_t h, int64_t w) {
  const int64_t th = h / 2, tw = w / 2;
  const int64_t next = tiles * k;
  for (int64_t p = begin; p < end; ++p) {
    const int64_t img = p / (th * tw), ty = p / tw % th, tx = p % tw;
    const float* in = m + (p - first) * k;
    float* y00 = y + ((img * h + 2 * ty) * w + 2 * tx) * k;
    float* y01 = y00 + k;
    float* y10 = y00 + w * k;
    float* y11 = y10 + k;
#pragma omp simd
    for (int64_t ch = 0; ch < k; ++ch) {
      float s[2][4];  // Aᵀ M
      for (int j = 0; j < 4; ++j) {
        const float q0 = in[(0 + j) * next + ch], q1 = in[(4 + j) * next + ch];
        const float q2 = in[(8 + j) * next + ch], q3 = in[(12 + j) * next + ch];
        s[0][j] = q0 + q1 + q2;
        s[1][j] = q1 - q2 - q3;
      }
      const float b = bias[ch];
      y00[ch] = std::max(s[0][0] + s[0][1] + s[0][2] + b, 0.0f);
      y01[ch] = std::max(s[0][1] - s[0][2] - s[0][3] + b, 0.0f);
      y10[ch] = std::max(s[1][0] + s[1][1] + s[1][2] + b, 0.0f);
      y11[ch] = std::max(s[1][1] - s[1][2] - s[1][3] + b, 0.0f);
    }
  }
}

VGGDSL_VECTOR_CLONES void winograd_input_f32(const float* x, float* v, int64_t first,
                                             int64_t begin, int64_t end, int64_t c, int64_t h,
                                             int64_t w) {
  winograd_input(x, v, first, begin, end, c, h, w);
}

VGGDSL_VECTOR_CLONES void winograd_output_f32(const float* m, const float* bias, float* y,
                                              int64_t first, int64_t tiles, int64_t begin,
                                              int64_t end, int64_t k, int64_t h, int64_t w) {
  winograd_output(m, bias, y, first, tiles, begin, end, k, h, w);
}

// The bytes of V, and of M, that one part of a batch works on: a part's V and M stay in the
// L2 caches (2 MiB per core here) from the transform to the products and on to the output
// transform. Measured on the whole seed, interleaved, 2 threads: parts of 2 MiB against 16 MiB,
// 1.17× at batch 64, 1.08× at 256 (1 MiB: 1.13×, the products get too small). Unparted, V and M
// at batch 256 were 64 MiB each, past glibc's 32 MiB limit for reusing freed blocks, so they
// came back as fresh pages every pass (190,000 page faults).
constexpr int64_t kWinogradPart = 2 << 20;

// Tiles per thread at the least: a tile's transform moves 16 rows of channels.
constexpr int64_t kWinogradGrain = 16;

at::Tensor winograd_conv_relu(const at::Tensor& x_any, const at::Tensor& u,
                              const at::Tensor& bias) {
  const at::NoGradGuard no_grad;  // an inference kernel: no graph, whatever requires grad
  TORCH_CHECK(x_any.dim() == 4 && x_any.scalar_type() == at::kFloat && x_any.device().is_cpu() &&
                  x_any.layout() == at::kStrided,
              "Winograd conv: a 4-d f32 CPU input");
  const at::Tensor x = x_any.contiguous(at::MemoryFormat::ChannelsLast);
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  TORCH_CHECK(h % 2 == 0 && w % 2 == 0 && h > 0 && w > 0, "Winograd conv: even map sizes");
  TORCH_CHECK(u.dim() == 3 && u.size(0) == 16 && u.size(1) == c && u.is_contiguous() &&
                  u.scalar_type() == at::kFloat && u.device().is_cpu(),
              "Winograd conv: transformed weights of shape [16, in, out]");
  const int64_t k = u.size(2);
  const at::Tensor b = bias.contiguous();
  TORCH_CHECK(b.numel() == k && b.scalar_type() == at::kFloat && b.device().is_cpu(),
              "Winograd conv: one f32 CPU bias per output");
  at::Tensor y = at::empty({n, k, h, w}, x.options().memory_format(at::MemoryFormat::ChannelsLast));
  if (y.numel() == 0) {  // no image, output channel or position; c == 0 runs as the bias alone
    return y;
  }
  const int64_t per_image = (h / 2) * (w / 2);
  const int64_t images = std::clamp<int64_t>(
      kWinogradPart / (16 * per_image * std::max(c, k) * int64_t{sizeof(float)}), 1, n);
  at::Tensor v = at::empty({images * per_image, 16, c}, x.options());
  at::Tensor m = at::empty({16 * images * per_image * k}, x.options());
  for (int64_t first = 0; first < n; first += images) {
    const int64_t begin = first * per_image, end = std::min(first + images, n) * per_image;
    const at::Tensor v_part = v.narrow(0, 0, end - begin);
    const float* xp = x.const_data_ptr<float>();
    float* vp = v_part.mutable_data_ptr<float>();
    at::parallel_for(begin, end, kWinogradGrain, [&](int64_t from, int64_t to) {
      winograd_input_f32(xp, vp, begin, from, to, c, h, w);
    });
    at::Tensor m_part = m.narrow(0, 0, 16 * (end - begin) * k).view({16, end - begin, k});
    at::bmm_out(m_part, v_part.transpose(0, 1), u);
    const float* mp = m_part.const_data_ptr<float>();
    const float* bp = b.const_data_ptr<float>();
    float* yp = y.mutable_data_ptr<float>();
    at::parallel_for(begin, end, kWinogradGrain, [&](int64_t from, int64_t to) {
      winograd_output_f32(mp, bp, yp, begin, end - begin, from, to, k, h, w);
    });
  }
  return y;
}
// Blocks of a huge page or more start on a huge-page boundary, span whole huge pages and are
// advised to be huge; the default allocator aligns to 64 bytes, so a 9 MiB weight held partial
// huge pages at both ends, which no advice can make huge (a third of the seed's weights).
// Smaller blocks are aligned as the default allocator aligns them. All are freed by `free`, so
// oneDNN's raw allocations, which may be freed after the default allocator is back, go to the
// same place either way.
class WholeHugePages final : public c10::Allocator {
 public:
  explicit WholeHugePages(size_t huge_page) : huge_page_(huge_page) {}

  c10::DataPtr allocate(size_t n) override {
    const bool large = n >= huge_page_;
    const size_t align = large ? huge_page_ : 64;
    const size_t len =
        large ? (n + huge_page_ - 1) / huge_page_ * huge_page_ : std::max<size_t>(n, 1);
    void* p = nullptr;
    if (posix_memalign(&p, align, len) != 0) {
      throw std::bad_alloc();
    }
#ifdef __linux__
    if (large) {  // its pages are touched first by the caller, and come as huge pages then
      madvise(p, len, MADV_HUGEPAGE);
    }
#endif
    return {p, p, &std::free, c10::Device(c10::DeviceType::CPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &std::free; }

  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }

 private:
  size_t huge_page_;
};

// How many callers want `WholeHugePages` in place, and the allocator it replaced.
std::mutex whole_huge_pages_lock;
int whole_huge_pages_users = 0;
c10::Allocator* replaced_cpu_allocator = nullptr;
// One parameter's step of PyTorch's `_single_tensor_sgd` in one pass over its memory, where the
// op sequence (grad.add(p, alpha=wd); buf.mul_(m).add_(d_p); d_p.add(buf, alpha=m) for
// nesterov; p.add_(d_p, alpha=-lr)) makes seven: 18.3 ms of the seed's training step at batch
// 64. The numbers are aten's: its `add` with `alpha` is one fused multiply-add in vector and
// scalar code alike (checked against PyTorch, runtime/tests/train.rs), `mul_` rounds the product
// once, and the hyper-parameters are rounded to T as aten rounds its scalars. `momentum` is 0
// (no buffer), 1 (the first step: the buffer starts as d_p) or 2.
template <typename T>
[[gnu::always_inline]] inline void sgd_step(T* p, const T* g, T* buf, int64_t begin, int64_t end,
                                            bool decay, T wd, int momentum, T m, bool nesterov,
                                            T neg_lr) {
#pragma omp simd
  for (int64_t i = begin; i < end; ++i) {
    T d = decay ? std::fma(p[i], wd, g[i]) : g[i];
    if (momentum != 0) {
      T b = d;
      if (momentum == 2) {
        b = buf[i] * m;
        b = b + d;
      }
      buf[i] = b;
      d = nesterov ? std::fma(b, m, d) : b;
    }
    p[i] = std::fma(d, neg_lr, p[i]);
  }
}

VGGDSL_VECTOR_CLONES void sgd_step_f32(float* p, const float* g, float* buf, int64_t begin,
                                       int64_t end, bool decay, float wd, int momentum, float m,
                                       bool nesterov, float neg_lr) {
  sgd_step(p, g, buf, begin, end, decay, wd, momentum, m, nesterov, neg_lr);
}

VGGDSL_VECTOR_CLONES void sgd_step_f64(double* p, const double* g, double* buf, int64_t begin,
                                       int64_t end, bool decay, double wd, int momentum, double m,
                                       bool nesterov, double neg_lr) {
  sgd_step(p, g, buf, begin, end, decay, wd, momentum, m, nesterov, neg_lr);
}

// Whether aten's kernels run a build with fused multiply-adds (x86's AVX2 and AVX-512 ones),
// whose roundings `sgd_step` and `batch_norm_train` reproduce; elsewhere aten's ops run.
bool aten_fuses_multiply_add() {
  static const bool fuses = [] {
    const std::string capability = at::get_cpu_capability();
    return capability == "AVX2" || capability == "AVX512";
  }();
  return fuses;
}

// Whether `sgd_step` can update `param` from `grad` and `buf` (undefined before the first step):
// dense contiguous f32/f64 host tensors of one shape and dtype. Others take aten's ops.
bool fuses_sgd(const at::Tensor& param, const at::Tensor& grad, const at::Tensor& buf) {
  const auto plain = [&](const at::Tensor& t) {
    return t.layout() == at::kStrided && t.device().is_cpu() && t.is_contiguous() &&
           t.scalar_type() == param.scalar_type() && t.sizes() == param.sizes();
  };
  return aten_fuses_multiply_add() &&
         (param.scalar_type() == at::kFloat || param.scalar_type() == at::kDouble) &&
         plain(param) && plain(grad) && (!buf.defined() || plain(buf));
}

// PyTorch's step for one parameter (see `sgd_step`), through aten's ops where `fuses_sgd` refuses.
void sgd(at::Tensor& param, at::Tensor& buf, double lr, double momentum, double weight_decay,
         bool nesterov) {
  const at::Tensor grad = param.grad();
  if (!grad.defined()) {
    return;  // as PyTorch skips a parameter without a gradient
  }
  if (!fuses_sgd(param, grad, buf)) {
    at::Tensor d_p = weight_decay != 0 ? grad.add(param, weight_decay) : grad;
    if (momentum != 0) {
      if (buf.defined()) {
        buf.mul_(momentum).add_(d_p);
      } else {
        buf = d_p.clone().detach();
      }
      d_p = nesterov ? d_p.add(buf, momentum) : buf;
    }
    param.add_(d_p, -lr);
    return;
  }
  const int kind = momentum == 0 ? 0 : buf.defined() ? 2 : 1;
  if (kind == 1) {
    buf = at::empty_like(param, at::MemoryFormat::Contiguous);
  }
  at::parallel_for(0, param.numel(), grain(1), [&](int64_t begin, int64_t end) {
    if (param.scalar_type() == at::kFloat) {
      sgd_step_f32(param.mutable_data_ptr<float>(), grad.const_data_ptr<float>(),
                   kind == 0 ? nullptr : buf.mutable_data_ptr<float>(), begin, end,
                   weight_decay != 0, static_cast<float>(weight_decay), kind,
                   static_cast<float>(momentum), nesterov, static_cast<float>(-lr));
    } else {
      sgd_step_f64(param.mutable_data_ptr<double>(), grad.const_data_ptr<double>(),
                   kind == 0 ? nullptr : buf.mutable_data_ptr<double>(), begin, end,
                   weight_decay != 0, weight_decay, kind, momentum, nesterov, -lr);
    }
  });
  // As aten's in-place ops do, so that autograd sees the parameter changed.
  param.unsafeGetTensorImpl()->bump_version();
  if (kind == 2) {
    buf.unsafeGetTensorImpl()->bump_version();
  }
}
// Per-channel statistics of a contiguous f32 NCHW batch for `channels` [begin, end), as aten's
// `batch_norm_cpu_collect_stats_contiguous_impl` computes them: the sum, then the sum of squared
// deviations, each one sequence of double additions per channel in memory order, the mean
// (sum / N) rounded to float before the deviations. aten runs one channel's chain at a time,
// each addition waiting for the last; here `kChains` channels' chains interleave, so that the
// additions overlap, and every channel's sums are the same bits.
template <int kChains>
[[gnu::always_inline]] inline void channel_stats(const float* x, float* mean, float* var_sum,
                                                 int64_t first, int64_t batch, int64_t channels,
                                                 int64_t plane) {
  const double count = static_cast<double>(batch * plane);
  double sum[kChains] = {};
  for (int64_t n = 0; n < batch; ++n) {
    const float* at = x + (n * channels + first) * plane;
    for (int64_t i = 0; i < plane; ++i) {
      for (int k = 0; k < kChains; ++k) {
        sum[k] += at[k * plane + i];
      }
    }
  }
  float m[kChains];
  for (int k = 0; k < kChains; ++k) {
    m[k] = static_cast<float>(sum[k] / count);
    mean[first + k] = m[k];
  }
  double squares[kChains] = {};
  for (int64_t n = 0; n < batch; ++n) {
    const float* at = x + (n * channels + first) * plane;
    for (int64_t i = 0; i < plane; ++i) {
      for (int k = 0; k < kChains; ++k) {
        const float d = at[k * plane + i] - m[k];
        squares[k] += d * d;
      }
    }
  }
  for (int k = 0; k < kChains; ++k) {
    var_sum[first + k] = static_cast<float>(squares[k]);
  }
}

// `y = x·α + β` per channel for planes [begin, end) (plane p is channel p % channels), one
// rounding each (aten's kernel computes both with fused multiply-adds).
void batch_norm_apply(const float* x, float* y, const float* alpha, const float* beta,
                      int64_t begin, int64_t end, int64_t channels, int64_t plane) {
  for (int64_t p = begin; p < end; ++p) {
    const float a = alpha[p % channels], b = beta[p % channels];
    const float* in = x + p * plane;
    float* out = y + p * plane;
#pragma omp simd
    for (int64_t i = 0; i < plane; ++i) {
      out[i] = std::fma(in[i], a, b);
    }
  }
}

VGGDSL_VECTOR_CLONES void batch_norm_apply_f32(const float* x, float* y, const float* alpha,
                                               const float* beta, int64_t begin, int64_t end,
                                               int64_t channels, int64_t plane) {
  batch_norm_apply(x, y, alpha, beta, begin, end, channels, plane);
}

// Whether `BatchNormTrain` takes a batch: contiguous f32 NCHW maps of more than one pixel (aten
// treats 1×1 maps as channels-last, with other sums) and f32 parameters on the host, where aten's
// kernels fuse multiply-adds; aten's `batch_norm` takes the rest.
bool normalizes(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                const at::Tensor& running_mean, const at::Tensor& running_var) {
  const auto vector = [&](const at::Tensor& t) {
    return t.defined() && t.layout() == at::kStrided && t.device().is_cpu() &&
           t.scalar_type() == at::kFloat && t.dim() == 1 && t.size(0) == x.size(1) &&
           t.is_contiguous();
  };
  return aten_fuses_multiply_add() && x.layout() == at::kStrided && x.device().is_cpu() &&
         x.scalar_type() == at::kFloat && x.dim() == 4 && x.numel() > 0 &&
         x.size(2) * x.size(3) > 1 && x.suggest_memory_format() == at::MemoryFormat::Contiguous &&
         x.is_contiguous() &&
         vector(weight) && vector(bias) && vector(running_mean) && vector(running_var);
}

// `batch_norm(x, weight, bias, running_mean, running_var, training=true)` with aten's numbers
// (outputs, saved statistics, running statistics, gradients). aten collects the statistics as
// one dependent chain of double additions per channel; `channel_stats` runs the same chains side
// by side: the seed's 13 train-mode BatchNorms at batch 64 took 14.3 against aten's 19.4 ms
// (2 threads, interleaved). The backward pass is aten's own (`native_batch_norm_backward`, from
// the same saved statistics).
struct BatchNormTrain : torch::autograd::Function<BatchNormTrain> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                            const at::Tensor& weight, const at::Tensor& bias,
                            at::Tensor running_mean, at::Tensor running_var, double momentum,
                            double eps) {
    const int64_t batch = x.size(0), channels = x.size(1), plane = x.size(2) * x.size(3);
    const int64_t count = batch * plane;
    at::Tensor mean = at::empty({channels}, x.options());
    at::Tensor var_sum = at::empty({channels}, x.options());
    const float* in = x.const_data_ptr<float>();
    float* m = mean.mutable_data_ptr<float>();
    float* v = var_sum.mutable_data_ptr<float>();
    constexpr int kChains = 8;
    const int64_t blocks = (channels + kChains - 1) / kChains;
    at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
      for (int64_t block = begin; block < end; ++block) {
        const int64_t first = block * kChains;
        if (first + kChains <= channels) {
          channel_stats<kChains>(in, m, v, first, batch, channels, plane);
        } else {
          for (int64_t c = first; c < channels; ++c) {
            channel_stats<1>(in, m, v, c, batch, channels, plane);
          }
        }
      }
    });
    // aten's `batch_norm_cpu_update_stats_template` and `..._collect_linear_and_constant_terms`,
    // rounding for rounding (float where it computes in float, double where in double). The
    // mean is also the saved mean the backward pass reads.
    at::Tensor invstd = at::empty({channels}, x.options());
    at::Tensor alpha = at::empty({channels}, x.options());
    at::Tensor beta = at::empty({channels}, x.options());
    float* is = invstd.mutable_data_ptr<float>();
    float* a = alpha.mutable_data_ptr<float>();
    float* be = beta.mutable_data_ptr<float>();
    const float m_ = static_cast<float>(momentum);
    const float* w = weight.const_data_ptr<float>();
    const float* b = bias.const_data_ptr<float>();
    float* rm = running_mean.mutable_data_ptr<float>();
    float* rv = running_var.mutable_data_ptr<float>();
    for (int64_t c = 0; c < channels; ++c) {
      const double var = v[c] / static_cast<float>(count);
      is[c] = static_cast<float>(var != 0 || eps != 0 ? 1 / std::sqrt(var + eps) : 0);
      rm[c] = m_ * m[c] + (1 - m_) * rm[c];
      const double unbiased = v[c] / static_cast<float>(count - 1);
      rv[c] = static_cast<float>(m_ * unbiased + (1 - m_) * rv[c]);
      a[c] = is[c] * w[c];
      be[c] = std::fma(-m[c], a[c], b[c]);
    }
    running_mean.unsafeGetTensorImpl()->bump_version();
    running_var.unsafeGetTensorImpl()->bump_version();
    at::Tensor y = at::empty_like(x);
    float* out = y.mutable_data_ptr<float>();
    at::parallel_for(0, batch * channels, grain(plane), [&](int64_t begin, int64_t end) {
      batch_norm_apply_f32(in, out, a, be, begin, end, channels, plane);
    });
    ctx->save_for_backward({x, weight, mean, invstd});
    ctx->saved_data["eps"] = eps;
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto [gx, gw, gb] = at::native_batch_norm_backward(
        grads[0], saved[0], saved[1], at::Tensor(), at::Tensor(), saved[2], saved[3], true,
        ctx->saved_data["eps"].toDouble(),
        {ctx->needs_input_grad(0), ctx->needs_input_grad(1), ctx->needs_input_grad(2)});
    return {gx, gw, gb, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};
}  // namespace

extern "C" {

// One SGD step for `param` from its gradient (`sgd`, above). `buf` is its momentum buffer, or
// null before the first step, when a new buffer is stored in `*new_buf` (momentum ≠ 0). False
// on failure (see vggdsl_last_error).
bool vggdsl_sgd_step(at::Tensor* param, at::Tensor* buf, at::Tensor** new_buf, double lr,
                     double momentum, double weight_decay, bool nesterov) {
  try {
    const at::NoGradGuard no_grad;  // the step itself is not differentiated
    at::Tensor b = buf ? *buf : at::Tensor();
    sgd(*param, b, lr, momentum, weight_decay, nesterov);
    *new_buf = !buf && b.defined() ? new at::Tensor(std::move(b)) : nullptr;
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
    return new at::Tensor(pools_2x2(*x) ? MaxPool2x2::apply(*x, false)
                                        : at::max_pool2d(*x, {2, 2}, {2, 2}));
  } catch (const std::exception& e) {
    remember(e);
    return nullptr;
  }
}

// `max_pool2d(x.relu_(), kernel_size=2, stride=2)`, as a new tensor, or null on failure (see
// vggdsl_last_error). Where the kernel takes `x` it reads relu(x) and leaves `x` unchanged.
at::Tensor* vggdsl_relu_max_pool2x2(at::Tensor* x) {
  try {
    return new at::Tensor(pools_2x2(*x) ? MaxPool2x2::apply(*x, true)
                                        : at::max_pool2d(x->relu_(), {2, 2}, {2, 2}));
  } catch (const std::exception& e) {
    remember(e);
    return nullptr;
  }
}

// `batch_norm(x, weight, bias, running_mean, running_var, training=true, momentum, eps)`, the
// running statistics updated in place, as a new tensor, or null on failure (see
// vggdsl_last_error).
at::Tensor* vggdsl_batch_norm_train(const at::Tensor* x, const at::Tensor* weight,
                                    const at::Tensor* bias, at::Tensor* running_mean,
                                    at::Tensor* running_var, double momentum, double eps) {
  try {
    if (normalizes(*x, *weight, *bias, *running_mean, *running_var)) {
      return new at::Tensor(BatchNormTrain::apply(*x, *weight, *bias, *running_mean,
                                                  *running_var, momentum, eps));
    }
    return new at::Tensor(at::batch_norm(*x, *weight, *bias, *running_mean, *running_var, true,
                                         momentum, eps, false));
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
      TORCH_CHECK(t->device().is_cpu(), "the tensor is not in host memory");
      *data = const_cast<void*>(t->storage().data());
      *len = t->storage().nbytes();
    }
    return true;
  } catch (const std::exception& e) {
    remember(e);
    return false;
  }
}

// `relu(conv2d(x, weight, bias, padding=1))` for a 3×3 weight given as `u` = G·weight·Gᵀ of
// shape [16, in, out] (Winograd's F(2×2, 3×3), above), on an f32 map of even size. A new
// channels-last tensor that records no gradient, or null on failure (see vggdsl_last_error).
at::Tensor* vggdsl_winograd_conv_relu(const at::Tensor* x, const at::Tensor* u,
                                      const at::Tensor* bias) {
  try {
    return new at::Tensor(winograd_conv_relu(*x, *u, *bias));
  } catch (const std::exception& e) {
    remember(e);
    return nullptr;
  }
}

// Puts `WholeHugePages` in place of libtorch's CPU allocator (for every thread: libtorch has one)
// until as many `vggdsl_whole_huge_pages_end` calls; false if another allocator of higher
// priority is in place, which is then left alone.
bool vggdsl_whole_huge_pages_begin(size_t huge_page) {
  static WholeHugePages allocator(huge_page);
  const std::lock_guard<std::mutex> guard(whole_huge_pages_lock);
  if (whole_huge_pages_users == 0) {
    c10::Allocator* current = c10::GetCPUAllocator();
    c10::SetCPUAllocator(&allocator, 0);
    if (c10::GetCPUAllocator() != &allocator) {
      return false;
    }
    replaced_cpu_allocator = current;
  }
  ++whole_huge_pages_users;
  return true;
}

// Ends one `vggdsl_whole_huge_pages_begin` that returned true.
void vggdsl_whole_huge_pages_end() {
  const std::lock_guard<std::mutex> guard(whole_huge_pages_lock);
  if (--whole_huge_pages_users == 0) {
    c10::SetCPUAllocator(replaced_cpu_allocator, 0);
  }
}

const char* vggdsl_last_error() { return last_error; }
}
