"""Memory-saving training's allocator half: freed large blocks go back to the system at once.

Why: glibc's malloc serves a large allocation with its own ``mmap`` and unmaps it when freed, but after
the first such free it raises that threshold to the freed size (up to 32 MB), so later blocks of that size
come from the heap, and a heap whose freed holes sit between live blocks cannot shrink. Training
allocates and frees such blocks all the time: QLoRA de-quantises every weight (17 MB for Qwen2.5-Coder-0.5B's
MLP matrices) in every forward and backward pass, so its process grew about 1 GB above what it held
(bench/results/methods-qwen). A fixed threshold (``mallopt(M_MMAP_THRESHOLD)``, which also stops the
raising) keeps every block of 128 KiB or more out of the heap; the price is a page fault per page of each
new block, hence slower steps, which is why it belongs to the memory-saving mode only.
"""

from __future__ import annotations

import ctypes
import platform

M_MMAP_THRESHOLD = -3  # glibc's malloc.h
THRESHOLD_BYTES = 128 * 1024  # glibc's own starting value


def give_back_freed_blocks() -> bool:
    """Fix malloc's mmap threshold for the rest of this process (glibc only); whether it was set."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    return bool(ctypes.CDLL(None).mallopt(M_MMAP_THRESHOLD, THRESHOLD_BYTES))
