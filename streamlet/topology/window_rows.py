"""Windows kept in one store row per key (sessions, sliding windows), and the index that closes and
expires them without scanning the store.

A row is ``[mark, windows, ...]`` (:mod:`streamlet.state.row`); each window
a list whose start and end the step's ``bounds(window)`` gives. The index is
a heap of ``(end, start, row key)`` entries — rebuilt from the store when the
task starts, so bounded by the windows the store holds — plus, with emit
final, the queue of emitted windows waiting to expire. An entry whose window
has since been merged away or re-bounded matches no window when it comes
up, and is skipped.
"""

from __future__ import annotations

import heapq
from collections import deque
from typing import Any, Callable

from streamlet.errors import TopologyError
from streamlet.state.row import STATE
from streamlet.topology.aggregate import key_bytes_of
from streamlet.topology.chain import fan_out
from streamlet.topology.origin import InputSequence
from streamlet.topology.replay import replay_marks
from streamlet.topology.stateful import needs_old

#: the rows of keys start with it; the emitted-up-to row does not
ROW = b"s"
ROW_END = b"t"
#: the row holding the close time windows were emitted up to (emit final)
EMITTED = b"m:emitted"

Entry = tuple[int, int, bytes]


class WindowRows:
    """The index of one step's per-key window rows in ``store``.

    ``bounds(window) -> (start, end)``; ``emit(key bytes, window)`` forwards a
    closed window (emit final).
    """

    def __init__(self, store: Any, final: bool, bounds: Callable[[list[Any]], tuple[int, int]],
                 emit: Callable[[bytes, list[Any]], None]) -> None:
        self.store = store
        self.final = final
        self.bounds = bounds
        self.emit = emit
        self.ends: list[Entry] | None = None
        self.expiring: deque[Entry] = deque()
        self.emitted = -1
        #: the latest window start indexed
        self.max_start = -1

    def load(self) -> list[Entry]:
        """Index the store's windows (once, at the task's first record)."""
        row = self.store.get(EMITTED)
        self.emitted = -1 if row is None else row[0]
        ends, done = [], []
        for rk, stored in self.store.items(ROW, ROW_END):
            for w in stored[STATE]:
                start, end = self.bounds(w)
                self.max_start = max(self.max_start, start)
                (done if self.final and end < self.emitted else ends).append((end, start, rk))
        heapq.heapify(ends)
        self.expiring.extend(sorted(done))
        self.ends = ends
        return ends

    def add(self, start: int, end: int, rk: bytes) -> None:
        """A window written to row ``rk``."""
        assert self.ends is not None
        heapq.heappush(self.ends, (end, start, rk))
        if start > self.max_start:
            self.max_start = start

    def _find(self, rk: bytes, start: int, end: int) -> tuple[Any, int]:
        stored = self.store.get(rk)
        if stored is not None:
            for i, w in enumerate(stored[STATE]):
                if self.bounds(w) == (start, end):
                    return stored, i
        return None, -1

    def emit_closed(self, close: int) -> None:
        """Emit each window ending before ``close`` once, in end, start, key order; remember how far."""
        ends = self.ends
        assert ends is not None
        emitted, last = self.emitted, None
        while ends and ends[0][0] < close:
            entry = heapq.heappop(ends)
            end, start, rk = entry
            if end < emitted or entry == last:
                continue  # emitted already (an older entry of the same window)
            last = entry
            stored, i = self._find(rk, start, end)
            if stored is not None:
                self.emit(rk, stored[STATE][i])
                self.expiring.append(entry)
        self.emitted = close
        self.store.put(EMITTED, [close])

    def closes(self, close: int) -> bool:
        """Whether a window not emitted yet ends before ``close``."""
        return bool(self.ends) and self.ends[0][0] < close  # type: ignore[index]

    def expire(self, before: Callable[[Entry], bool]) -> None:
        """Delete the windows whose entry ``before(entry)`` says are expired (in index order)."""
        queue: Any = self.expiring if self.final else self.ends
        pop = queue.popleft if self.final else (lambda: heapq.heappop(queue))
        while queue and before(queue[0]):
            end, start, rk = pop()
            stored, i = self._find(rk, start, end)
            if stored is not None:
                del stored[STATE][i]
                self.store.put(rk, stored if stored[STATE] else None)


class WindowStep:
    """What every windowed aggregation step (time, session, sliding) takes from its node and task.

    ``down`` is None when nothing follows; ``want_old`` only with emit changes; ``seen`` / ``row_of``
    are the replay marks of :mod:`streamlet.topology.replay`.
    """

    def __init__(self, node: Any, ctx: Any, downs: list[Any], comp: Any) -> None:
        if len(comp.sources_of(node.name)) > 1:
            raise TopologyError(f"windowed aggregation {node.name!r} reads several topics: repartition the "
                                "merged stream first (.repartition())")
        self.name = node.name
        self.spec, self.windows = node.params["spec"], node.params["windows"]
        self.store = ctx.stores[node.params["store"]]
        self.get, self.put = self.store.get, self.store.put
        spec = self.spec
        self.initial, self.add, self.check = spec.initial, spec.add, spec.check_serializable
        self.present = spec.result or (lambda agg: agg)
        self.key_bytes = key_bytes_of(node, ctx, comp)
        self.kde = comp.topology.stores[node.params["store"]].key_serde.deserialize
        self.final = node.params["emit_final"]
        self.want_old = needs_old(comp, node.name) and not self.final
        self.down = fan_out(downs) if downs else None
        self.sequence = InputSequence()
        self.repartitioned = comp.reads_repartition(node.name)
        self.seen, self.row_of = replay_marks(self.repartitioned)
