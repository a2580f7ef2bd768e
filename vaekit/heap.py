"""Keeping a long loop's resident memory level: windows of whole batches, freed heap
memory handed back, pages of read-only file mappings dropped (encode and evaluate)."""

from __future__ import annotations

import sys

import numpy as np

WINDOW_BYTES = 8 << 20  # images per window: small next to the model's own working memory


def window_rows(images: np.ndarray, batch_size: int) -> int:
    """Rows per window: whole batches, about ``WINDOW_BYTES`` of images."""
    per_image = max(1, int(np.prod(images.shape[1:])) * images.itemsize)
    return max(1, WINDOW_BYTES // (per_image * batch_size)) * batch_size


def trim_heap() -> None:
    """Hand freed heap memory back to the system (glibc ``malloc_trim``). Freed activation
    buffers otherwise stay in the heap and the resident size creeps up with the number of
    batches; trimming once per window keeps it level. A no-op off glibc."""
    import ctypes

    try:
        libc = ctypes.CDLL(None)
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return
    trim(0)


def release_mapped_pages(array: np.ndarray) -> None:
    """Let the kernel drop ``array``'s pages from this process when it is a view of a
    read-only file mapping (``np.load(mmap_mode="r")``, the decode cache); they are read
    again from the page cache if touched. In-memory arrays are left alone. Linux only."""
    import mmap

    base = array
    while isinstance(base, np.ndarray) and base.base is not None:
        base = base.base
    if not isinstance(base, mmap.mmap) or not sys.platform.startswith("linux"):
        return
    if array.flags.writeable or not array.flags.c_contiguous:
        return  # only read-only mappings: dropping a written page of a private map loses it
    import ctypes

    page = mmap.PAGESIZE
    start = -(-array.ctypes.data // page) * page  # whole pages inside the array only
    stop = (array.ctypes.data + array.nbytes) // page * page
    if stop > start:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.madvise(ctypes.c_void_p(start), ctypes.c_size_t(stop - start), 4)  # MADV_DONTNEED
