"""Which session / sliding windows close, for emit final, without scanning the store.

A window of time ``t`` (a session's end, a sliding window's start) closes once ``t + shift < close``
(sessions: shift 0, close = stream time - gap - grace; sliding: shift = max_difference, close =
stream time - grace). Each window has a row ``b"t" + time + key bytes`` in the store (its time index,
:mod:`.window_segments`), and :data:`EMITTED` says up to which close windows were emitted, so that a
task that restarts emits neither twice nor never.

Closing windows are found in two places, neither of them a scan of every window:

* windows written before the task started: the time index's rows in ``[emitted, close)``, read from
  the store under the cache at each emission while such windows can be open (times up to the
  newest at start, so for about ``gap + grace`` of stream time after a restart);
* windows written since: a heap of the *open* ones (not emitted, not merged away), so memory is
  bounded by the open windows; it starts empty with the task.

The caller checks each window found against its row (a window merged away since is not there).
"""

from __future__ import annotations

import heapq
from typing import Any

from streamlet.state.builder import layer_of
from streamlet.state.caching import CachingStore
from streamlet.topology.window_segments import EMITTED, closing_key, split_closing_key

#: a window in the index: (time, key bytes)
Entry = tuple[int, bytes]


class ClosingIndex:
    """The time index of one emit-final step's windows in ``store``; :meth:`load` before the first use."""

    def __init__(self, store: Any, shift: int) -> None:
        self.store = store
        self.get, self.put = store.get, store.put
        self.shift = shift
        cache = layer_of(store, CachingStore)
        #: the store under the cache: what was written before the task started, and committed since
        self.below = store if cache is None else cache.inner
        #: the close windows were emitted up to (-1: none)
        self.emitted = -1
        #: open windows written since the task started
        self.live: dict[Entry, None] = {}
        self.heap: list[Entry] = []
        #: windows written before the task started have a time at most this
        self.preload_until = -1
        #: the first time a window written before the task started may have and not be emitted (None: none)
        self.next_preload: int | None = None

    def load(self, newest: int) -> None:
        """Read the emitted mark; ``newest`` is the latest window time in the store."""
        row = self.get(EMITTED)
        self.emitted = -1 if row is None else row[0]
        self.preload_until = newest
        self._seek()

    def _from(self) -> int:
        """The first window time not emitted."""
        return max(self.emitted - self.shift, 0)

    def _seek(self) -> None:
        """After an emission: windows written before the task started may still close from the first
        time not emitted on (a bound, not a read: the next emission reads the time index from there
        to its close, only the windows closing then)."""
        lo = self._from()
        self.next_preload = lo if lo <= self.preload_until else None

    def add(self, time: int, kb: bytes) -> None:
        """A window of ``time`` of key ``kb`` is written (again)."""
        entry = (time, kb)
        if entry not in self.live:
            self.live[entry] = None
            heapq.heappush(self.heap, entry)
            if len(self.heap) > 2 * len(self.live) + 64:  # merged-away entries: drop them
                self.heap = list(self.live)
                heapq.heapify(self.heap)
        self.put(closing_key(time, kb), 1)

    def remove(self, time: int, kb: bytes) -> None:
        """A window of ``time`` of key ``kb`` is gone (merged into another)."""
        self.live.pop((time, kb), None)
        self.put(closing_key(time, kb), None)

    def closes(self, close: int) -> bool:
        """Whether a window may close at ``close`` that was not emitted."""
        bound = close - self.shift
        heap, live = self.heap, self.live
        while heap and heap[0] not in live:
            heapq.heappop(heap)
        return (bool(heap) and heap[0][0] < bound) or (self.next_preload is not None
                                                         and self.next_preload < bound)

    def take(self, close: int) -> list[Entry]:
        """The windows closed at ``close`` and not emitted yet, in (time, key) order, each once; from now
        on they count as emitted (the :data:`EMITTED` row says so)."""
        bound = close - self.shift
        heap, live = self.heap, self.live
        found: set[Entry] = set()
        while heap and heap[0][0] < bound:
            entry = heapq.heappop(heap)
            if entry in live:
                del live[entry]
                found.add(entry)
        if self.next_preload is not None and self.next_preload < bound:
            hi = min(bound, self.preload_until + 1)
            for ck, _ in self.below.items(closing_key(self._from(), b""), closing_key(hi, b"")):
                found.add(split_closing_key(ck))
        self.emitted = close
        self.put(EMITTED, [close])
        self._seek()
        return sorted(found)
