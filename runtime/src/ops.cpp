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
#include <ATen/ops/bmm.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/max_pool2d.h>
#include <ATen/ops/max_pool2d_with_indices_backward.h>
#include <c10/core/CPUAllocator.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <optional>
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
// (it was measured so, before the shim could use libtorch's OpenMP pool) against aten's on two
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
