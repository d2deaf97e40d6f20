// libtorch's CPU allocator while vggdsl's memory policy needs one of its own (memory.rs; oneDNN's
// buffers come from it too): put in place while an inference model builds its weights, so that
// they lie in huge pages from end to end, and while it runs a pass, so that the pass's large
// activations come from the model's arena, reused pass after pass.
#include <c10/core/CPUAllocator.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <unordered_map>

#ifdef __linux__
#include <sys/mman.h>
#endif

namespace {
// A block of `len` bytes: one of a huge page or more starts on a huge-page boundary, spans
// whole huge pages and is advised to be huge (the default allocator aligns to 64 bytes, so a
// 9 MiB weight held partial huge pages at both ends, which no advice can make huge). Every
// block is freed by `free`.
void* huge_page_block(size_t n, size_t huge_page, size_t* len) {
  const bool large = n >= huge_page;
  *len = large ? (n + huge_page - 1) / huge_page * huge_page : std::max<size_t>(n, 1);
  void* p = nullptr;
  if (posix_memalign(&p, large ? huge_page : 64, *len) != 0) {
    throw std::bad_alloc();
  }
#ifdef __linux__
  if (large) {  // its pages are touched first by the caller, and come as huge pages then
    madvise(p, *len, MADV_HUGEPAGE);
  }
#endif
  return p;
}

// The free blocks an inference model's passes left, by size, and the pass each was last taken
// in: a block no pass took since the last one ended is given back, so an arena holds what one
// pass of the last batch size used.
struct Arena {
  size_t huge_page;
  std::multimap<size_t, void*> free;
  std::unordered_map<void*, uint64_t> last_pass;  // of the free blocks
  uint64_t pass = 0;
  int depth = 0;
  size_t held = 0;   // bytes of its blocks, free or in use
  size_t fresh = 0;  // bytes it ever took from `malloc`
  bool owned = true;
};

// An arena's block in use: what gives it back.
struct Lent {
  std::shared_ptr<Arena> arena;
  size_t len;
  uint64_t pass;
};

// One lock for every arena and the blocks lent: a pass takes a few dozen blocks.
std::mutex arena_lock;
std::unordered_map<void*, Lent> lent;

// Frees a block of any of the allocator's kinds: one lent by an arena goes back to it (or to
// `free` if its model is gone); others, and a lent block that oneDNN's raw allocation took and
// `free` already released, fall through to `free`.
void release(void* p) {
  if (p == nullptr) {
    return;
  }
  {
    const std::lock_guard<std::mutex> guard(arena_lock);
    if (auto it = lent.find(p); it != lent.end()) {
      Lent block = std::move(it->second);
      lent.erase(it);
      if (block.arena->owned) {
        block.arena->free.emplace(block.len, p);
        block.arena->last_pass[p] = block.pass;
        return;
      }
    }
  }
  std::free(p);
}

// Blocks from this size on come from an arena during a pass: activations of batches, which
// glibc maps afresh (and the kernel faults in and zeroes) on each pass from 32 MiB on, or
// after it trims its heap below that.
constexpr size_t kArenaFrom = 2 << 20;

// A free block of `arena` that fits `n` bytes with at most a quarter to spare, or a new one.
void* take(const std::shared_ptr<Arena>& arena, size_t n) {
  const std::lock_guard<std::mutex> guard(arena_lock);
  void* p = nullptr;
  size_t len = 0;
  auto it = arena->free.lower_bound(n);
  if (it != arena->free.end() && it->first <= n + n / 4) {
    len = it->first;
    p = it->second;
    arena->free.erase(it);
    arena->last_pass.erase(p);
  } else {
    p = huge_page_block(n, arena->huge_page, &len);
    arena->held += len;
    arena->fresh += len;
  }
  lent[p] = Lent{arena, len, arena->pass};
  return p;
}

// Per thread: how deep in `vggdsl_whole_huge_pages_begin`, and the arena of the pass it runs.
thread_local int huge_page_depth = 0;
thread_local std::shared_ptr<Arena>* current_arena = nullptr;

// Whole huge pages for every allocation while any thread builds weights (a process-wide
// setting before the arenas came, kept so); a pass's large blocks from its arena on its own
// thread; otherwise the allocator it replaced.
class Scoped final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t n) override {
    const c10::Device cpu(c10::DeviceType::CPU);
    if (current_arena != nullptr && huge_page_depth == 0 && n >= kArenaFrom) {
      void* p = take(*current_arena, n);
      return {p, p, &release, cpu};
    }
    if (huge_page_users.load(std::memory_order_relaxed) > 0) {
      size_t len = 0;
      void* p = huge_page_block(n, huge_page.load(std::memory_order_relaxed), &len);
      return {p, p, &release, cpu};
    }
    return replaced.load(std::memory_order_relaxed)->allocate(n);
  }

  // oneDNN's raw allocations are freed by the deleter of the allocator in place when they are:
  // every block any of these allocators gives is one `release` frees.
  c10::DeleterFnPtr raw_deleter() const override { return &release; }

  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }

  // Written under `install_lock`, read by any thread that allocates.
  std::atomic<c10::Allocator*> replaced = nullptr;
  std::atomic<size_t> huge_page = 2 << 20;
  std::atomic<int> huge_page_users = 0;
};

Scoped scoped;
std::mutex install_lock;
int users = 0;

// Puts `scoped` in place for one more user; false (and nothing changed) if an allocator of
// higher priority is in place.
bool install() {
  if (users == 0) {
    c10::Allocator* current = c10::GetCPUAllocator();
    c10::SetCPUAllocator(&scoped, 0);
    if (c10::GetCPUAllocator() != &scoped) {
      return false;
    }
    scoped.replaced = current;
  }
  ++users;
  return true;
}

void uninstall() {
  if (--users == 0) {
    c10::SetCPUAllocator(scoped.replaced.load(), 0);
  }
}
}  // namespace

extern "C" {

// Puts the allocator in place, every allocation of every thread in whole huge pages (huge pages
// of `huge_page` bytes), until as many `vggdsl_whole_huge_pages_end` calls; false if another
// allocator of higher priority is in place, which is then left alone.
bool vggdsl_whole_huge_pages_begin(size_t huge_page) {
  const std::lock_guard<std::mutex> guard(install_lock);
  if (!install()) {
    return false;
  }
  scoped.huge_page = huge_page;
  ++scoped.huge_page_users;
  ++huge_page_depth;
  return true;
}

// Ends one `vggdsl_whole_huge_pages_begin` that returned true.
void vggdsl_whole_huge_pages_end() {
  const std::lock_guard<std::mutex> guard(install_lock);
  --huge_page_depth;
  --scoped.huge_page_users;
  uninstall();
}

// A new arena, its blocks in huge pages of `huge_page` bytes; freed by `vggdsl_arena_free`.
std::shared_ptr<Arena>* vggdsl_arena_new(size_t huge_page) {
  auto arena = std::make_shared<Arena>();
  arena->huge_page = huge_page;
  return new std::shared_ptr<Arena>(std::move(arena));
}

// Gives back the arena's free blocks; those still in use go to `free` when they are released.
void vggdsl_arena_free(std::shared_ptr<Arena>* arena) {
  {
    const std::lock_guard<std::mutex> guard(arena_lock);
    (*arena)->owned = false;
    for (const auto& [len, p] : (*arena)->free) {
      std::free(p);
    }
    (*arena)->free.clear();
  }
  delete arena;
}

// Bytes the arena holds (its blocks free or in use), and bytes it ever took from `malloc`.
void vggdsl_arena_bytes(std::shared_ptr<Arena>* arena, size_t* held, size_t* fresh) {
  const std::lock_guard<std::mutex> guard(arena_lock);
  *held = (*arena)->held;
  *fresh = (*arena)->fresh;
}

// Starts a pass on this thread with the arena; returns the arena of the pass it is inside (null
// outside one) for `vggdsl_arena_end`, or false in `*begun` (and changes nothing) if another
// allocator of higher priority is in place.
std::shared_ptr<Arena>* vggdsl_arena_begin(std::shared_ptr<Arena>* arena, bool* begun) {
  {
    const std::lock_guard<std::mutex> guard(install_lock);
    *begun = install();
  }
  if (!*begun) {
    return nullptr;
  }
  {
    const std::lock_guard<std::mutex> guard(arena_lock);
    if ((*arena)->depth++ == 0) {
      ++(*arena)->pass;
    }
  }
  std::shared_ptr<Arena>* outer = current_arena;
  current_arena = arena;
  return outer;
}

// Ends a pass that `vggdsl_arena_begin` began; at the end of its outermost pass, gives back the
// arena's free blocks that it did not take.
void vggdsl_arena_end(std::shared_ptr<Arena>* arena, std::shared_ptr<Arena>* outer) {
  current_arena = outer;
  {
    const std::lock_guard<std::mutex> guard(arena_lock);
    Arena& a = **arena;
    if (--a.depth == 0) {
      for (auto it = a.free.begin(); it != a.free.end();) {
        if (a.last_pass[it->second] < a.pass) {
          a.last_pass.erase(it->second);
          a.held -= it->first;
          std::free(it->second);
          it = a.free.erase(it);
        } else {
          ++it;
        }
      }
    }
  }
  const std::lock_guard<std::mutex> guard(install_lock);
  uninstall();
}
}
