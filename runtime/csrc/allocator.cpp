// A CPU allocator for libtorch (oneDNN's buffers come from it too) that starts large blocks on a
// huge-page boundary and rounds them to whole huge pages, put in place while an inference model
// builds its weights: so that those weights can lie in huge pages from end to end (memory.rs).
#include <c10/core/CPUAllocator.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <new>

#ifdef __linux__
#include <sys/mman.h>
#endif

namespace {
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
}
