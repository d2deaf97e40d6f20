// A conv + ReLU computed directly on channels-last maps, for convs with few input channels (the
// first layers of a VGG: 3 channels in): Winograd's transforms and oneDNN's or MKL's set-up
// cost more than the few multiplications per output there, and a pass at batch 1 fetches their
// code from memory afresh every time. The weights are kept in panels, like Winograd's products
// in registers (winograd.cpp): for each group of `width` outputs (two vector registers of the
// build that runs), the rows of all taps and input channels one after another.
#include "common.h"

#include <ATen/core/grad_mode.h>
#include <ATen/ops/constant_pad_nd.h>
#include <ATen/ops/empty.h>

#include <limits>
#include <vector>

namespace {

// Output positions computed together, along a row: a panel row is loaded once for all of them,
// and their sums, with the panel's width, fill eight vector registers.
constexpr int64_t kPositions = 4;

// The geometry of one conv call.
struct Shape {
  int64_t c, h, w, k, kh, kw, stride, pad, oh, ow;
};

// Blocks [begin, end) of the output: ordered by panel, then image row, then groups of
// kPositions positions along the row (the last repeated where fewer remain), so that a panel
// stays in the L1 cache while every position is computed.
template <int64_t kWidth, bool kFma>
[[gnu::always_inline]] inline void direct_blocks(const float* x, const float* u, const float* bias,
                                                 const float* zeros, float* y, Shape s,
                                                 int64_t rows, int64_t begin, int64_t end) {
  const int64_t groups = (s.ow + kPositions - 1) / kPositions;
  for (int64_t b = begin; b < end; ++b) {
    const int64_t panel = b / (rows * groups), row = b / groups % rows;
    const int64_t ox0 = b % groups * kPositions, k0 = panel * kWidth;
    const int64_t img = row / s.oh, oy = row % s.oh;
    const float* weights = u + panel * s.kh * s.kw * s.c * kWidth;
    float acc[kPositions][kWidth] = {};
    for (int64_t i = 0; i < s.kh; ++i) {
      const int64_t iy = oy * s.stride - s.pad + i;
      for (int64_t j = 0; j < s.kw; ++j) {
        const float* in[kPositions];
        for (int64_t r = 0; r < kPositions; ++r) {
          const int64_t ix = std::min(ox0 + r, s.ow - 1) * s.stride - s.pad + j;
          in[r] = iy >= 0 && iy < s.h && ix >= 0 && ix < s.w
                      ? x + ((img * s.h + iy) * s.w + ix) * s.c
                      : zeros;
        }
        const float* tap = weights + (i * s.kw + j) * s.c * kWidth;
        for (int64_t ch = 0; ch < s.c; ++ch) {
          const float* row_w = tap + ch * kWidth;
          for (int64_t r = 0; r < kPositions; ++r) {
            vggdsl::multiply_add_row<kWidth, kFma>(acc[r], in[r][ch], row_w);
          }
        }
      }
    }
    const int64_t n = std::min(kWidth, s.k - k0);
    for (int64_t r = 0; r < kPositions && ox0 + r < s.ow; ++r) {
      float* out = y + ((img * s.oh + oy) * s.ow + ox0 + r) * s.k + k0;
      for (int64_t q = 0; q < n; ++q) {
        out[q] = std::max(acc[r][q] + bias[k0 + q], 0.0f);
      }
    }
  }
}

template <bool kFma>
[[gnu::always_inline]] inline void direct(const float* x, const float* u, const float* bias,
                                          const float* zeros, float* y, Shape s, int64_t width,
                                          int64_t rows, int64_t begin, int64_t end) {
  switch (width) {
    case 32:
      return direct_blocks<32, kFma>(x, u, bias, zeros, y, s, rows, begin, end);
    case 16:
      return direct_blocks<16, kFma>(x, u, bias, zeros, y, s, rows, begin, end);
    default:
      return direct_blocks<8, kFma>(x, u, bias, zeros, y, s, rows, begin, end);
  }
}

VGGDSL_FMA_BUILDS(direct_f32,
                  (const float* x, const float* u, const float* bias, const float* zeros,
                   float* y, Shape s, int64_t width, int64_t rows, int64_t begin, int64_t end),
                  (x, u, bias, zeros, y, s, width, rows, begin, end), direct<true>,
                  direct<false>)

// A conv weight [out, in, kh, kw] in panels, [panels, kh, kw, in, width] with zeros past the
// last output.
at::Tensor direct_panels(const at::Tensor& weight) {
  const at::NoGradGuard no_grad;
  TORCH_CHECK(weight.dim() == 4 && weight.scalar_type() == at::kFloat && weight.device().is_cpu() &&
                  weight.layout() == at::kStrided,
              "direct conv panels: an f32 CPU conv weight [out, in, kh, kw]");
  const int64_t k = weight.size(0), width = vggdsl::panel_width();
  const int64_t panels = (k + width - 1) / width;
  return at::constant_pad_nd(weight, {0, 0, 0, 0, 0, 0, 0, panels * width - k})
      .view({panels, width, weight.size(1), weight.size(2), weight.size(3)})
      .permute({0, 3, 4, 2, 1})
      .contiguous();
}

at::Tensor direct_conv_relu(const at::Tensor& x_any, const at::Tensor& u, const at::Tensor& bias,
                            int64_t stride, int64_t pad) {
  const at::NoGradGuard no_grad;  // an inference kernel: no graph, whatever requires grad
  TORCH_CHECK(x_any.dim() == 4 && x_any.scalar_type() == at::kFloat && x_any.device().is_cpu() &&
                  x_any.layout() == at::kStrided,
              "direct conv: a 4-d f32 CPU input");
  const at::Tensor x = x_any.contiguous(at::MemoryFormat::ChannelsLast);
  const at::Tensor b = bias.contiguous();
  TORCH_CHECK(b.dim() == 1 && b.scalar_type() == at::kFloat && b.device().is_cpu(),
              "direct conv: one f32 CPU bias per output");
  TORCH_CHECK(stride >= 1 && pad >= 0, "direct conv: a stride of 1 or more, no negative padding");
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3), k = b.numel();
  TORCH_CHECK(u.dim() == 5 && u.size(3) == c && u.scalar_type() == at::kFloat &&
                  u.device().is_cpu() && u.is_contiguous() &&
                  (u.size(4) == 8 || u.size(4) == 16 || u.size(4) == 32) &&
                  u.size(0) == (k + u.size(4) - 1) / u.size(4),
              "direct conv: weights in panels, [panels, kh, kw, in, width], one bias per output");
  const int64_t kh = u.size(1), kw = u.size(2), width = u.size(4);
  TORCH_CHECK(kh > 0 && kw > 0, "direct conv: a kernel of one tap or more");
  TORCH_CHECK(pad <= (std::numeric_limits<int64_t>::max() - std::max(h, w)) / 2 &&
                  h + 2 * pad >= kh && w + 2 * pad >= kw,
              "direct conv: a map no smaller than the kernel");
  const Shape s{c, h, w, k, kh, kw, stride, pad, (h + 2 * pad - kh) / stride + 1,
                (w + 2 * pad - kw) / stride + 1};
  at::Tensor y =
      at::empty({n, k, s.oh, s.ow}, x.options().memory_format(at::MemoryFormat::ChannelsLast));
  if (y.numel() == 0) {
    return y;
  }
  const std::vector<float> zeros(c, 0.0f);
  const int64_t rows = n * s.oh, groups = (s.ow + kPositions - 1) / kPositions;
  const int64_t blocks = u.size(0) * rows * groups;
  const float* xp = x.const_data_ptr<float>();
  const float* up = u.const_data_ptr<float>();
  const float* bp = b.const_data_ptr<float>();
  float* yp = y.mutable_data_ptr<float>();
  // A thread's part does 65,536 multiply-adds at the least.
  const int64_t part =
      std::max<int64_t>(1, 65536 / std::max<int64_t>(1, kh * kw * c * kPositions * width));
  at::parallel_for(0, blocks, part, [&](int64_t from, int64_t to) {
    direct_f32(xp, up, bp, zeros.data(), yp, s, width, rows, from, to);
  });
  return y;
}
}  // namespace

extern "C" {

// `relu(conv2d(x, weight, bias, stride, padding))` for a weight given in
// `vggdsl_direct_panels`: a new channels-last tensor that records no gradient, or null on
// failure (see vggdsl_last_error).
at::Tensor* vggdsl_direct_conv_relu(const at::Tensor* x, const at::Tensor* u,
                                    const at::Tensor* bias, int64_t stride, int64_t padding) {
  return vggdsl::guarded<at::Tensor*>(nullptr, [&] {
    return new at::Tensor(direct_conv_relu(*x, *u, *bias, stride, padding));
  });
}

// A conv weight [out, in, kh, kw] in the panels the direct conv reads, for the build that runs:
// a new tensor, or null on failure.
at::Tensor* vggdsl_direct_panels(const at::Tensor* weight) {
  return vggdsl::guarded<at::Tensor*>(nullptr,
                                      [&] { return new at::Tensor(direct_panels(*weight)); });
}
}
