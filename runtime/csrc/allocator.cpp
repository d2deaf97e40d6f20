// libtorch's CPU allocator from the first time vggdsl's memory policy needs one of its own
// (memory.rs; oneDNN's buffers come from it too): while an inference model builds its weights, so
// that they lie in huge pages from end to end, and while it runs a pass, so that the pass's large
// activations come from the model's arena, reused pass after pass. Otherwise it hands every call
// to the allocator it replaced. It stays in place once put there: oneDNN frees its raw
// allocations through the deleter of the allocator in place at the time, which must then still
// know every block it gave.
#include <c10/core/CPUAllocator.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

#ifdef __linux__
#include <sys/mman.h>
#endif

namespace {
// The bytes a block of `n` takes: whole huge pages from a huge page on (the default allocator
// aligns to 64 bytes, so a 9 MiB weight held partial huge pages at both ends, which no advice
// can make huge).
size_t block_len(size_t n, size_t huge_page) {
  return n >= huge_page ? (n + huge_page - 1) / huge_page * huge_page : std::max<size_t>(n, 1);
}

// A block of `len` bytes (`block_len`): one of a huge page or more starts on a huge-page boundary
// and is advised to be huge. Every block is freed by `free`.
void* new_block(size_t len, size_t huge_page) {
  const bool large = len >= huge_page;
  void* p = nullptr;
  if (posix_memalign(&p, large ? huge_page : 64, len) != 0) {
    throw std::bad_alloc();
  }
#ifdef __linux__
  if (large) {  // its pages are touched first by the caller, and come as huge pages then
    madvise(p, len, MADV_HUGEPAGE);
  }
#endif
  return p;
}

// A free block of an arena, and the pass that last took it.
struct Free {
  void* p;
  uint64_t pass;
};

// The free blocks an inference model's passes left, by length: a block no pass took since the
// last one ended is given back, so an arena holds what one pass of the last batch size used.
struct Arena {
  size_t huge_page;
  std::multimap<size_t, Free> free;
  uint64_t pass = 0;
  int depth = 0;
  size_t held = 0;   // bytes of its blocks, free or in use
  size_t fresh = 0;  // bytes it ever took from `malloc`
  bool owned = true;

  // Frees the free blocks that `keep` rejects.
  template <typename Keep>
  void give_back(Keep keep) {
    for (auto it = free.begin(); it != free.end();) {
      if (keep(it->second)) {
        ++it;
      } else {
        held -= it->first;
        std::free(it->second.p);
        it = free.erase(it);
      }
    }
  }
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
// `free` if its model is gone); others fall through to `free`.
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
        try {
          block.arena->free.emplace(block.len, Free{p, block.pass});
          return;
        } catch (const std::bad_alloc&) {  // no room to keep it: given back instead
          block.arena->held -= block.len;
        }
      }
    }
  }
  std::free(p);
}

// Blocks from this size on come from an arena during a pass: activations of batches, which
// glibc maps afresh (and the kernel faults in and zeroes) on each pass from 32 MiB on, or
// after it trims its heap below that.
constexpr size_t kArenaFrom = 2 << 20;

// A free block of `arena` that holds `n` bytes with at most a quarter of its length to spare,
// or a new one.
void* take(const std::shared_ptr<Arena>& arena, size_t n) {
  const size_t len = block_len(n, arena->huge_page);
  const std::lock_guard<std::mutex> guard(arena_lock);
  void* p = nullptr;
  size_t taken = len;
  if (auto it = arena->free.lower_bound(len); it != arena->free.end() && it->first <= len + len / 4) {
    taken = it->first;
    p = it->second.p;
    arena->free.erase(it);
  } else {
    p = new_block(len, arena->huge_page);
    arena->held += len;
    arena->fresh += len;
  }
  lent[p] = Lent{arena, taken, arena->pass};
  return p;
}

// Per thread: how deep in `vggdsl_whole_huge_pages_begin`, and the arenas of the passes it runs,
// innermost last (owned here too: a pass left open must not outlive its arena).
thread_local int huge_page_depth = 0;
thread_local std::vector<std::shared_ptr<Arena>> passes;

// Whole huge pages for every allocation while any thread builds weights; a pass's large blocks
// from its arena on its own thread; otherwise the allocator it replaced.
class Scoped final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t n) override {
    const c10::Device cpu(c10::DeviceType::CPU);
    if (!passes.empty() && passes.back()->owned && huge_page_depth == 0 && n >= kArenaFrom) {
      void* p = take(passes.back(), n);
      return {p, p, &release, cpu};
    }
    if (huge_page_users.load(std::memory_order_relaxed) > 0) {
      const size_t huge = huge_page.load(std::memory_order_relaxed);
      void* p = new_block(block_len(n, huge), huge);
      return {p, p, &release, cpu};
    }
    return replaced->allocate(n);
  }

  // Every block any of these allocators gives is one `release` frees (libtorch's default
  // allocator's blocks are `free`'s).
  c10::DeleterFnPtr raw_deleter() const override { return &release; }

  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }

  c10::Allocator* replaced = nullptr;  // set before `Scoped` is put in place, never after
  std::atomic<size_t> huge_page = 2 << 20;
  std::atomic<int> huge_page_users = 0;
};

Scoped scoped;

// Puts `scoped` in place, once; false if an allocator of higher priority is in place, which is
// then left alone.
bool installed() {
  static const bool ok = [] {
    scoped.replaced = c10::GetCPUAllocator();
    c10::SetCPUAllocator(&scoped, 0);
    return c10::GetCPUAllocator() == &scoped;
  }();
  return ok;
}
}  // namespace

extern "C" {

// Every allocation of every thread in whole huge pages (of `huge_page` bytes) until as many
// `vggdsl_whole_huge_pages_end` calls; false if another allocator of higher priority is in
// place, which is then left alone.
bool vggdsl_whole_huge_pages_begin(size_t huge_page) noexcept {
  if (!installed()) {
    return false;
  }
  scoped.huge_page = huge_page;
  ++scoped.huge_page_users;
  ++huge_page_depth;
  return true;
}

// Ends one `vggdsl_whole_huge_pages_begin` that returned true.
void vggdsl_whole_huge_pages_end() noexcept {
  --huge_page_depth;
  --scoped.huge_page_users;
}

// A new arena, its blocks in huge pages of `huge_page` bytes; freed by `vggdsl_arena_free`.
// Null if there is no memory for it.
std::shared_ptr<Arena>* vggdsl_arena_new(size_t huge_page) noexcept {
  try {
    auto arena = std::make_shared<Arena>();
    arena->huge_page = huge_page;
    return new std::shared_ptr<Arena>(std::move(arena));
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}

// Gives back the arena's free blocks; those still in use go to `free` when they are released.
void vggdsl_arena_free(std::shared_ptr<Arena>* arena) noexcept {
  if (arena == nullptr) {
    return;
  }
  {
    const std::lock_guard<std::mutex> guard(arena_lock);
    (*arena)->owned = false;
    (*arena)->give_back([](const Free&) { return false; });
  }
  delete arena;
}

// Bytes the arena holds (its blocks free or in use), and bytes it ever took from `malloc`.
void vggdsl_arena_bytes(std::shared_ptr<Arena>* arena, size_t* held, size_t* fresh) noexcept {
  *held = 0;
  *fresh = 0;
  if (arena != nullptr) {
    const std::lock_guard<std::mutex> guard(arena_lock);
    *held = (*arena)->held;
    *fresh = (*arena)->fresh;
  }
}

// Starts a pass of the arena on this thread; false (and nothing changed) if another allocator
// of higher priority is in place, or there is no memory to note the pass.
bool vggdsl_arena_begin(std::shared_ptr<Arena>* arena) noexcept {
  if (arena == nullptr || !installed()) {
    return false;
  }
  try {
    passes.push_back(*arena);
  } catch (const std::bad_alloc&) {
    return false;
  }
  const std::lock_guard<std::mutex> guard(arena_lock);
  if ((*arena)->depth++ == 0) {
    ++(*arena)->pass;
  }
  return true;
}

// Ends a pass of the arena that `vggdsl_arena_begin` began on this thread, in whatever order
// passes end; at the end of its outermost pass, gives back the arena's free blocks that it did
// not take.
void vggdsl_arena_end(std::shared_ptr<Arena>* arena) noexcept {
  const auto it = std::find(passes.rbegin(), passes.rend(), *arena);
  if (it == passes.rend()) {
    return;
  }
  passes.erase(std::next(it).base());
  const std::lock_guard<std::mutex> guard(arena_lock);
  Arena& a = **arena;
  if (--a.depth == 0) {
    a.give_back([&](const Free& block) { return block.pass == a.pass; });
  }
}
}
