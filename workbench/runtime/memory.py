"""Process memory: what the server holds, and handing freed memory back to the system.

Freed tensors go back to the C allocator, which on glibc keeps much of it in its arenas:
the process's resident size then only ever grows, and a server that saw a crowd once
keeps its peak for good. `trim` asks glibc to return what is free; elsewhere it does
nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os


def resident_bytes() -> int:
    """The process's resident set size (Linux; 0 where /proc is missing)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


@functools.cache
def _malloc_trim():  # noqa: ANN202 - a ctypes function or None
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS)
        return None


def trim() -> None:
    """Return the allocator's free memory to the system (glibc's malloc_trim)."""
    function = _malloc_trim()
    if function is not None:
        function(0)
