"""Memory-saving training's allocator half: freed large blocks go back to the system at once.

Why: glibc's malloc serves a large allocation with its own ``mmap`` and unmaps it when freed, but after
the first such free it raises that threshold to the freed size (up to 32 MB), so later blocks of that size
come from the heap, and a heap whose freed holes sit between live blocks cannot shrink. Training
allocates and frees such blocks all the time: QLoRA de-quantises every weight (17 MB for Qwen2.5-Coder-0.5B's
MLP matrices) in every forward and backward pass, so its process grew about 1 GB above what it held
(bench/results/methods-qwen). A fixed threshold (``mallopt(M_MMAP_THRESHOLD)``, which also stops the
raising) keeps every block of 128 KiB or more out of the heap; the price is a page fault per page of each
new block, hence slower steps, which is why it belongs to the memory-saving mode only, and to training only:
generation afterwards in the same process (a study cell trains, then generates) paid that page-fault price
on de-quantised weights at every decoding step, so the threshold is raised again when training ends: the
default study's QLoRA-4bit MBPP cell then generated in 82 s instead of 184 s (bench/results/study-default.md).
"""

from __future__ import annotations

import ctypes
import platform
from contextlib import contextmanager

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h
THRESHOLD_BYTES = 128 * 1024  # glibc's own starting value
HEAP_THRESHOLD_BYTES = 32 * 1024 * 1024  # the highest value glibc's own raising reaches on 64-bit


def _mmap_threshold(size: int) -> bool:
    """Fix malloc's mmap threshold at ``size`` bytes, and its trim threshold at twice that as glibc's own
    raising does (else a freed block at the heap's top would go back to the system at once); glibc only.
    Whether it was set."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)
    return bool(libc.mallopt(M_MMAP_THRESHOLD, size)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 2 * size))


@contextmanager
def freed_blocks_given_back(active: bool = True):
    """Within the block (when ``active``), freed large blocks go back at once; afterwards large blocks come
    from the heap again, as after glibc's own raising of the threshold. Yields whether the mode is on."""
    changed = active and _mmap_threshold(THRESHOLD_BYTES)
    try:
        yield changed
    finally:
        if changed:
            _mmap_threshold(HEAP_THRESHOLD_BYTES)
