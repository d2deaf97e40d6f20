//! Where memory comes from, the whole policy: libtorch's large buffers from the process heap,
//! reused, rather than fresh pages ([`reuse_freed_memory`]); an inference model's weights in huge
//! pages, whole ones ([`in_whole_huge_pages`], with the allocator of `csrc/allocator.cpp`, and
//! [`huge_pages`]); its passes' large activations from an [`Arena`] of its own.
//!
//! libtorch allocates every tensor with `malloc`, and glibc gives a large block a mapping of its
//! own, unmapped on `free`: a training step's activations and gradients would come back every
//! step as fresh pages that the kernel faults in and zeroes one by one. Served from the heap, and
//! the heap not trimmed, they are reused warm (on the main thread, whose arena is the heap;
//! libtorch runs a CPU backward pass on the calling thread). The setting is process-wide and
//! keeps memory freed after a peak for the process's next use, so the library never applies it on
//! its own: the `vggdsl` command does, and a program that trains or runs large batches may.
//!
//! Inference at batch 1 reads every weight once per image, a TLB miss per 4 KiB page: the weights
//! the inference layers keep move to huge pages once, at the cost of a copy and no memory.
//!
//! An inference pass over a large batch allocates its maps anew, layer by layer, and from 32 MiB
//! on glibc maps each afresh (below it, when it has trimmed its heap): the pruned VGG-16 at batch
//! 256 spent a sixth of its pass faulting pages in. An [`Arena`] keeps those blocks for the
//! model's next pass instead, without the process-wide setting.

use tch::Tensor;

// The allocator of `csrc/allocator.cpp`: `begin` puts it in place of libtorch's CPU allocator
// until as many `end` calls, or returns false, and changes nothing, where an allocator of higher
// priority is in place.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
extern "C" {
    fn vggdsl_whole_huge_pages_begin(huge_page: usize) -> bool;
    fn vggdsl_whole_huge_pages_end();
    fn vggdsl_arena_new(huge_page: usize) -> *mut std::ffi::c_void;
    fn vggdsl_arena_free(arena: *mut std::ffi::c_void);
    fn vggdsl_arena_bytes(arena: *mut std::ffi::c_void, held: *mut usize, fresh: *mut usize);
    fn vggdsl_arena_begin(arena: *mut std::ffi::c_void) -> bool;
    fn vggdsl_arena_end(arena: *mut std::ffi::c_void);
}

/// The mmap threshold asked for: every tensor a VGG step allocates fits below it.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: i32 = 1 << 30;

/// The largest mmap threshold glibc before 2.35 accepts.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD_BEFORE_2_35: i32 = 32 << 20;

/// Keeps freed heap memory for reuse and serves allocations below 1 GiB from the heap (glibc's
/// `M_TRIM_THRESHOLD` and `M_MMAP_THRESHOLD`). Returns whether glibc took the 1 GiB threshold:
/// glibc before 2.35 refuses more than 32 MiB, which is then set instead (blocks above it keep
/// their own mappings); always `false` off glibc, where nothing is changed.
pub fn reuse_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only adjusts the allocator's thresholds; any thread may call it.
        unsafe {
            libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
            if libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 {
                return true;
            }
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BEFORE_2_35);
        }
        false
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// The size of a transparent huge page: 2 MiB on x86-64 (and on arm64 with 4 KiB pages), as the
/// kernel reports it.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn huge_page_size() -> usize {
    static SIZE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *SIZE.get_or_init(|| {
        std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(2 << 20)
    })
}

/// Runs `f` with libtorch's CPU allocator (oneDNN's buffers included) starting every block of a
/// huge page or more on a huge-page boundary and rounding it up to whole huge pages, so that
/// [`huge_pages`] covers such a block from end to end: with the default 64-byte alignment a
/// weight's first and last huge pages are partial, and stay small. It is process-wide while `f`
/// runs (libtorch has one CPU allocator; the shim's stays in place, handing every call on to the
/// one it replaced outside such work), so it is for short work such as building an inference
/// model; it costs up to a huge page less one byte per large block.
pub fn in_whole_huge_pages<T>(f: impl FnOnce() -> T) -> T {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        /// Ends the huge pages, also when `f` panics.
        struct Restore;
        impl Drop for Restore {
            fn drop(&mut self) {
                // SAFETY: ends a call that returned true, on its thread: two counters.
                unsafe { vggdsl_whole_huge_pages_end() }
            }
        }
        // SAFETY: puts the allocator in place once and counts a user; `Restore` ends it where it
        // returned true.
        let begun = unsafe { vggdsl_whole_huge_pages_begin(huge_page_size()) };
        let _restore = begun.then_some(Restore);
        f()
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        f()
    }
}

/// Backs the huge pages (2 MiB on x86-64) that lie wholly inside the bytes of a CPU tensor `t`
/// with transparent huge pages, now (Linux's `MADV_HUGEPAGE`, then `MADV_COLLAPSE`, from Linux
/// 6.1), and returns how many bytes that covered: 0 where the kernel or the tensor refuses, for
/// other devices, off glibc Linux, or for tensors smaller than a huge page. Unlike glibc's
/// `hugetlb` tunable this touches only these bytes; they are already in memory, so it costs a
/// copy of them, once, and no memory.
pub fn huge_pages(t: &Tensor) -> usize {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // Refused for tensors outside host memory.
        let Ok((data, len)) = crate::ops::data_bytes(t) else {
            return 0;
        };
        let huge = huge_page_size();
        let start = (data as usize).next_multiple_of(huge);
        let end = (data as usize + len) / huge * huge;
        if end <= start {
            return 0;
        }
        let region = start as *mut libc::c_void;
        // SAFETY: the range lies inside the tensor's own allocation, which `t` keeps alive; both
        // advices keep its contents and change only which pages hold them.
        let collapsed = unsafe {
            libc::madvise(region, end - start, libc::MADV_HUGEPAGE) == 0
                && libc::madvise(region, end - start, libc::MADV_COLLAPSE) == 0
        };
        if collapsed {
            end - start
        } else {
            0
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        let _ = t;
        0
    }
}

/// The large blocks (2 MiB and more) that an inference model's passes allocate on their thread,
/// kept for its next pass: a pass of the same batch size takes them back without a page fault.
/// At the end of a pass the blocks it did not take are given back, so an arena holds what one
/// pass of the last batch size used; dropping it gives back its free blocks, and blocks still
/// in use (a map kept from a pass) go back to `malloc` when they drop. Blocks lie in whole huge
/// pages. Other threads, and off glibc Linux every allocation, go on as before.
pub struct Arena {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    raw: *mut std::ffi::c_void,
}

// SAFETY: the C++ arena guards its state with a lock; a pass's thread is the one that began it.
unsafe impl Send for Arena {}
// SAFETY: as above.
unsafe impl Sync for Arena {}

impl Arena {
    pub fn new() -> Arena {
        Arena {
            // SAFETY: returns a new arena (null without memory, which every call then accepts
            // as an arena that takes nothing), freed in `drop`.
            #[cfg(all(target_os = "linux", target_env = "gnu"))]
            raw: unsafe { vggdsl_arena_new(huge_page_size()) },
        }
    }

    /// Begins a pass on this thread, until the guard drops: its allocations of 2 MiB and more
    /// come from the arena. Passes nest (the outermost one gives back what it did not take).
    pub fn pass(&self) -> Pass<'_> {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        {
            // SAFETY: `raw` lives as long as `self`, which the guard borrows; the guard ends the
            // pass on this thread (it is not `Send`) if it began. A pass never ended (a guard
            // forgotten) keeps the arena's blocks for that thread's passes, no longer.
            let begun = unsafe { vggdsl_arena_begin(self.raw) };
            Pass {
                arena: self,
                begun,
                not_send: std::marker::PhantomData,
            }
        }
        #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
        Pass {
            arena: self,
            begun: false,
            not_send: std::marker::PhantomData,
        }
    }

    /// The bytes the arena holds (its blocks, free or in use), and the bytes it ever took from
    /// `malloc`: a pass that reused every block leaves the second figure as it was.
    pub fn bytes(&self) -> (usize, usize) {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        {
            let (mut held, mut fresh) = (0, 0);
            // SAFETY: reads two counters of a live arena under its lock.
            unsafe { vggdsl_arena_bytes(self.raw, &mut held, &mut fresh) };
            (held, fresh)
        }
        #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
        {
            (0, 0)
        }
    }
}

/// A pass of an [`Arena`] on this thread ([`Arena::pass`]); ends when dropped.
#[must_use = "the pass ends when the guard drops"]
pub struct Pass<'a> {
    #[cfg_attr(not(all(target_os = "linux", target_env = "gnu")), allow(dead_code))]
    arena: &'a Arena,
    /// Whether the pass began (it did not where another allocator is in place).
    #[cfg_attr(not(all(target_os = "linux", target_env = "gnu")), allow(dead_code))]
    begun: bool,
    /// A pass belongs to the thread that began it.
    not_send: std::marker::PhantomData<*const ()>,
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        if self.begun {
            // SAFETY: ends the pass `Arena::pass` began, on its thread, whatever passes of other
            // arenas began or ended since.
            unsafe { vggdsl_arena_end(self.arena.raw) }
        }
    }
}

impl Default for Arena {
    fn default() -> Self {
        Arena::new()
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        // SAFETY: frees the arena made in `new`, once; blocks in use outlive it safely.
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        unsafe {
            vggdsl_arena_free(self.raw)
        }
    }
}

impl std::fmt::Debug for Arena {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (held, fresh) = self.bytes();
        f.debug_struct("Arena")
            .field("held", &held)
            .field("fresh", &fresh)
            .finish()
    }
}
