"""The glibc setting that the `vggdsl` command applies (vggdsl_runtime::memory::reuse_freed_memory),
for the PyTorch side of a benchmark to run under the same: allocations below 1 GiB served from the
heap (glibc >= 2.35; before it, 32 MiB, as the Rust side falls back to), and freed heap memory kept
for reuse.
"""
import ctypes
import sys

FLAG = '--reuse-freed-memory'
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3


def apply_if_asked():
    """Applies the setting if FLAG is among the arguments and removes it from them; returns
    whether it was."""
    if FLAG not in sys.argv:
        return False
    sys.argv.remove(FLAG)
    libc = ctypes.CDLL('libc.so.6')
    libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1)
    if libc.mallopt(M_MMAP_THRESHOLD, 1 << 30) != 1:
        libc.mallopt(M_MMAP_THRESHOLD, 32 << 20)
    return True
