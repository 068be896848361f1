"""Starting a file's writeback early, so that the fsync which makes it durable waits less.

A received data set is written as it arrives, over a few milliseconds; the kernel would write
it to disk only later, all of it inside the fsync that comes once it is complete, while the
sender waits for its response. Asking the kernel (Linux ``sync_file_range`` with
SYNC_FILE_RANGE_WRITE) to start writing each megabyte as soon as it is written lets the disk
work while the rest arrives: the fsync then waits for the last piece and the metadata
(measured here on a 3 MB file: 1.1-1.7 ms down to 0.13-0.19 ms).

It is a hint, never a substitute for the fsync: nothing is promised until that returns, and
the order fsync file -> link -> directory fsync -> database commit is unchanged. Elsewhere
than Linux it does nothing.
"""

from __future__ import annotations

import ctypes
import sys
from functools import cache
from typing import Any

_SYNC_FILE_RANGE_WRITE = 2  # linux/fs.h: start writeback of dirty pages in the range


@cache
def _sync_file_range() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Start writing ``length`` bytes of the file at ``offset`` to disk; do not wait."""
    function = _sync_file_range()
    if function is not None:
        function(fd, offset, length, _SYNC_FILE_RANGE_WRITE)  # a failure only loses the hint
