"""An LRU cache of patched-tensor sets with a byte budget, counted by real tensor sizes.

Entries stay on the model's device (the GPU when there is one), so a cache hit is a
pointer swap. Each entry remembers which sessions asked for it, so releasing a session
drops the entries no other session still uses.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field

import torch

DEFAULT_BUDGET_BYTES = 1 << 30  # 1 GiB: a few dozen SmolLM2 q/v compositions; set 0 to disable


def tensor_bytes(tensors: dict[str, torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors.values())


@dataclass
class CacheEntry:
    tensors: dict[str, torch.Tensor]
    nbytes: int
    sessions: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class CacheStats:
    hits: int
    misses: int
    entries: int
    bytes: int
    budget: int


class PatchCache:
    def __init__(self, budget_bytes: int = DEFAULT_BUDGET_BYTES) -> None:
        if budget_bytes < 0:
            raise ValueError("the cache budget must be >= 0 bytes")
        self.budget = budget_bytes
        self._entries: OrderedDict[Hashable, CacheEntry] = OrderedDict()
        self._bytes = 0
        self._hits = 0
        self._misses = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable, session: str) -> dict[str, torch.Tensor] | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self._misses += 1
                return None
            self._hits += 1
            entry.sessions.add(session)
            self._entries.move_to_end(key)
            return entry.tensors

    def put(
        self, key: Hashable, tensors: dict[str, torch.Tensor], session: str
    ) -> list[tuple[Hashable, dict[str, torch.Tensor]]]:
        """Store `tensors`, evicting least recently used entries to stay within budget, and
        return the evicted ones (their memory can be reused). A set larger than the whole
        budget is not stored."""
        nbytes = tensor_bytes(tensors)
        evicted: list[tuple[Hashable, dict[str, torch.Tensor]]] = []
        with self._lock:
            if key in self._entries or nbytes > self.budget:
                return evicted
            while self._entries and self._bytes + nbytes > self.budget:
                old_key, entry = self._entries.popitem(last=False)
                self._bytes -= entry.nbytes
                evicted.append((old_key, entry.tensors))
            self._entries[key] = CacheEntry(tensors, nbytes, {session})
            self._bytes += nbytes
        return evicted

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._entries

    def release(self, session: str, heir: str | None = None) -> None:
        """Forget `session` as a user of its entries and drop those no session uses any more;
        with `heir`, that session takes the entries over instead (a scratch copy's sweep
        points stay cached for the session it was copied from)."""
        with self._lock:
            for key in list(self._entries):
                entry = self._entries[key]
                if heir is not None and session in entry.sessions:
                    entry.sessions.add(heir)
                entry.sessions.discard(session)
                if not entry.sessions:
                    del self._entries[key]
                    self._bytes -= entry.nbytes

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(self._hits, self._misses, len(self._entries), self._bytes, self.budget)
