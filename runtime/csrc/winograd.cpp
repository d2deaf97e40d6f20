// A 3×3 conv + ReLU in Winograd's F(2×2, 3×3) form, for inference: 16 multiplications per 2×2
// block of outputs and channel pair where a direct conv does 36. Neither aten nor the oneDNN
// inside libtorch offers it.
#include "common.h"

#include <ATen/core/grad_mode.h>
#include <ATen/ops/bmm.h>
#include <ATen/ops/constant_pad_nd.h>
#include <ATen/ops/empty.h>

#include <vector>

namespace {

// Winograd's F(2×2, 3×3) (Lavin and Gray, 2016) for a 3×3 conv with stride 1 and padding 1 on
// maps of even size: each 2×2 block of outputs comes from the 4×4 input tile around it as
// Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A, so the 36 multiplications per block and channel pair of the direct
// conv become 16, and for all tiles at once they are 16 matrix products over the channels. The
// transforms only add and subtract (G's ½ is applied to the weights, once). Activations are
// channels-last, so both transforms run along contiguous channels. Layouts: V, stored [p][ξ][c]
// and multiplied as [ξ][p][c], for the 16 entries ξ of tile p (image-major, then row, then
// column) and input channel c; U[ξ][c][k]; M = V·U is M[ξ][p][k]. Both transforms split the
// tiles over libtorch's threads (`at::parallel_for`): threads of our own were no faster, as
// libtorch's workers still spin after the products.

// V of tiles [begin, end) from the channels-last input x[n][h][w][c], zero-padded by one; `v`
// holds the tiles from `first` on.
[[gnu::always_inline]] inline void winograd_input(const float* x, float* v, int64_t first,
                                                  int64_t begin, int64_t end, int64_t c, int64_t h,
                                                  int64_t w) {
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
[[gnu::always_inline]] inline void winograd_output(const float* m, const float* bias, float* y,
                                                   int64_t first, int64_t tiles, int64_t begin,
                                                   int64_t end, int64_t k, int64_t h, int64_t w) {
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

VGGDSL_ISA_BUILDS(winograd_input_f32,
                  (const float* x, float* v, int64_t first, int64_t begin, int64_t end, int64_t c,
                   int64_t h, int64_t w),
                  (x, v, first, begin, end, c, h, w), winograd_input)

VGGDSL_ISA_BUILDS(winograd_output_f32,
                  (const float* m, const float* bias, float* y, int64_t first, int64_t tiles,
                   int64_t begin, int64_t end, int64_t k, int64_t h, int64_t w),
                  (m, bias, y, first, tiles, begin, end, k, h, w), winograd_output)

// The products for few tiles, with the sums in registers and U read once, in the order it is
// stored: MKL's GEMM packs U afresh on every call, which costs more than products of a few rows,
// and a batch of one reads U from memory (the rest of a pass has pushed it out of the caches), so
// the products go as fast as U streams in. U is kept in panels (`winograd_panels`): for each ξ,
// the outputs in groups of `width`, each group's rows for all input channels one after another,
// so that the whole of U is one sequential read that the hardware prefetchers follow, helped by
// software prefetches a few rows ahead. A panel row is two vector registers of the build that
// runs (32 floats with AVX-512, 16 with AVX2, 8 with SSE2), and kRows tiles × one row of sums fill
// eight registers, which leaves AVX2's sixteen room for the operands. For the block of kRows tiles
// from `p0` (the last tile repeated where fewer remain) and the panel of ξ whose first output is
// `k0`, M[ξ][p][k] = Σ_c V[p][ξ][c]·U[ξ][c][k] for the panel's outputs below `k`. `kFma` in the
// builds whose CPUs fuse multiply-adds: Winograd's form rounds unlike the conv anyway.
constexpr int64_t kRows = 4;

// How far ahead of the row being multiplied the products prefetch U.
constexpr int64_t kPrefetchBytes = 1024;

template <int64_t kWidth, bool kFma>
[[gnu::always_inline]] inline void products_block(const float* v, const float* panel, float* m,
                                                  int64_t xi, int64_t tiles, int64_t p0,
                                                  int64_t c, int64_t k, int64_t k0) {
  float acc[kRows][kWidth] = {};
  const float* rows[kRows];
  for (int64_t r = 0; r < kRows; ++r) {
    rows[r] = v + (std::min(p0 + r, tiles - 1) * 16 + xi) * c;
  }
  for (int64_t ch = 0; ch < c; ++ch) {
    const float* weights = panel + ch * kWidth;
    for (int64_t line = 0; line < kWidth * int64_t{sizeof(float)}; line += 64) {
      __builtin_prefetch(reinterpret_cast<const char*>(weights) + kPrefetchBytes + line);
    }
    for (int64_t r = 0; r < kRows; ++r) {
      vggdsl::multiply_add_row<kWidth, kFma>(acc[r], rows[r][ch], weights);
    }
  }
  const int64_t n = std::min(kWidth, k - k0);
  for (int64_t r = 0; r < kRows && p0 + r < tiles; ++r) {
    std::copy_n(acc[r], n, m + (xi * tiles + p0 + r) * k + k0);
  }
}

// Blocks [begin, end) of M for `tiles` tiles, ordered by ξ, then panels, then tiles: the blocks
// of one panel follow each other, so that U is read from memory once, in order, whatever the
// number of tiles.
template <int64_t kWidth, bool kFma>
[[gnu::always_inline]] inline void panel_products(const float* v, const float* u, float* m,
                                                  int64_t tiles, int64_t c, int64_t k,
                                                  int64_t begin, int64_t end) {
  const int64_t tile_blocks = (tiles + kRows - 1) / kRows, panels = (k + kWidth - 1) / kWidth;
  for (int64_t b = begin; b < end; ++b) {
    const int64_t panel = b / tile_blocks;  // ξ · panels + the panel of ξ
    const int64_t xi = panel / panels, k0 = panel % panels * kWidth;
    products_block<kWidth, kFma>(v, u + panel * c * kWidth, m, xi, tiles, b % tile_blocks * kRows,
                                 c, k, k0);
  }
}

// The products on panels of `width` outputs (`vggdsl::panel_width` when they were made).
template <bool kFma>
[[gnu::always_inline]] inline void winograd_products(const float* v, const float* u, float* m,
                                                     int64_t tiles, int64_t c, int64_t k,
                                                     int64_t width, int64_t begin, int64_t end) {
  switch (width) {
    case 32:
      return panel_products<32, kFma>(v, u, m, tiles, c, k, begin, end);
    case 16:
      return panel_products<16, kFma>(v, u, m, tiles, c, k, begin, end);
    default:
      return panel_products<8, kFma>(v, u, m, tiles, c, k, begin, end);
  }
}

VGGDSL_FMA_BUILDS(winograd_products_f32,
                  (const float* v, const float* u, float* m, int64_t tiles, int64_t c, int64_t k,
                   int64_t width, int64_t begin, int64_t end),
                  (v, u, m, tiles, c, k, width, begin, end), winograd_products<true>,
                  winograd_products<false>)

// U [16, in, out] in panels, [16, panels, in, width] with zeros past the last output.
at::Tensor winograd_panels(const at::Tensor& u) {
  const at::NoGradGuard no_grad;
  TORCH_CHECK(u.dim() == 3 && u.size(0) == 16 && u.scalar_type() == at::kFloat &&
                  u.device().is_cpu() && u.layout() == at::kStrided,
              "Winograd panels: transformed f32 CPU weights of shape [16, in, out]");
  const int64_t c = u.size(1), k = u.size(2), width = vggdsl::panel_width();
  const int64_t panels = (k + width - 1) / width;
  return at::constant_pad_nd(u, {0, panels * width - k})
      .view({16, c, panels, width})
      .permute({0, 2, 1, 3})
      .contiguous();
}

// The bytes of V, and of M, that one part of a batch works on: a part's V and M stay in the L2
// caches (2 MiB per core on the machines measured) from the transform to the products and on to
// the output transform, and below glibc's 32 MiB limit for reusing freed blocks. Smaller parts
// make the products too small.
constexpr int64_t kWinogradPart = 2 << 20;

// Tiles per thread at the least: a tile's transform moves 16 rows of channels.
constexpr int64_t kWinogradGrain = 16;

at::Tensor winograd_conv_relu(const at::Tensor& x_any, const at::Tensor& u,
                              const at::Tensor& bias, bool in_registers) {
  const at::NoGradGuard no_grad;  // an inference kernel: no graph, whatever requires grad
  TORCH_CHECK(x_any.dim() == 4 && x_any.scalar_type() == at::kFloat && x_any.device().is_cpu() &&
                  x_any.layout() == at::kStrided,
              "Winograd conv: a 4-d f32 CPU input");
  const at::Tensor x = x_any.contiguous(at::MemoryFormat::ChannelsLast);
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  TORCH_CHECK(h % 2 == 0 && w % 2 == 0 && h > 0 && w > 0, "Winograd conv: even map sizes");
  const at::Tensor b = bias.contiguous();
  const int64_t k = b.numel();
  TORCH_CHECK(b.dim() == 1 && b.scalar_type() == at::kFloat && b.device().is_cpu(),
              "Winograd conv: one f32 CPU bias per output");
  TORCH_CHECK(u.scalar_type() == at::kFloat && u.device().is_cpu() && u.is_contiguous(),
              "Winograd conv: contiguous f32 CPU weights");
  const int64_t width = in_registers && u.dim() == 4 ? u.size(3) : 0;
  if (in_registers) {
    TORCH_CHECK(u.dim() == 4 && u.size(0) == 16 && u.size(2) == c &&
                    (width == 8 || width == 16 || width == 32) &&
                    u.size(1) == (k + width - 1) / width,
                "Winograd conv: weights in panels, [16, panels, in, width], one bias per output");
  } else {
    TORCH_CHECK(u.dim() == 3 && u.size(0) == 16 && u.size(1) == c && u.size(2) == k,
                "Winograd conv: transformed weights of shape [16, in, out], one bias per output");
  }
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
    if (in_registers) {
      const int64_t tiles = end - begin;
      const int64_t blocks = 16 * ((tiles + kRows - 1) / kRows) * u.size(1);
      const float* up = u.const_data_ptr<float>();
      float* out = m_part.mutable_data_ptr<float>();
      // A thread's part does 65,536 multiply-adds at the least.
      const int64_t grain =
          std::max<int64_t>(1, 65536 / (std::max<int64_t>(c, 1) * kRows * width));
      at::parallel_for(0, blocks, grain, [&](int64_t from, int64_t to) {
        winograd_products_f32(vp, up, out, tiles, c, k, width, from, to);
      });
    } else {
      at::bmm_out(m_part, v_part.transpose(0, 1), u);
    }
    const float* mp = m_part.const_data_ptr<float>();
    const float* bp = b.const_data_ptr<float>();
    float* yp = y.mutable_data_ptr<float>();
    at::parallel_for(begin, end, kWinogradGrain, [&](int64_t from, int64_t to) {
      winograd_output_f32(mp, bp, yp, begin, end - begin, from, to, k, h, w);
    });
  }
  return y;
}
}  // namespace

extern "C" {

// `relu(conv2d(x, weight, bias, padding=1))` for a 3×3 weight given as `u` = G·weight·Gᵀ of
// shape [16, in, out] (Winograd's F(2×2, 3×3), above), on an f32 map of even size; the products
// by aten's batched GEMM, or `in_registers` (for few tiles, `u` in `vggdsl_winograd_panels`). A new channels-last tensor that
// records no gradient, or null on failure (see vggdsl_last_error).
at::Tensor* vggdsl_winograd_conv_relu(const at::Tensor* x, const at::Tensor* u,
                                      const at::Tensor* bias, bool in_registers) {
  return vggdsl::guarded<at::Tensor*>(nullptr, [&] {
    return new at::Tensor(winograd_conv_relu(*x, *u, *bias, in_registers));
  });
}

// `u` ([16, in, out]) in the panels the products in registers read, for the build that runs: a
// new tensor, or null on failure.
at::Tensor* vggdsl_winograd_panels(const at::Tensor* u) {
  return vggdsl::guarded<at::Tensor*>(nullptr, [&] { return new at::Tensor(winograd_panels(*u)); });
}
}
