"""Read-only view of one store across the tasks of this process (local interactive queries)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Iterator

from streamlet.record import Windowed
from streamlet.topology.graph import StoreSpec
from streamlet.state.row import STATE
from streamlet.state.snapshot import copy_while_written
from streamlet.topology.join_buffer import segment_interval
from streamlet.topology.window_segments import NEWEST, ROW, ROW_END, row_key, split_row_key
from streamlet.topology.window_aggregate import EMITTED, FIRST, split_window_key, window_key


class StoreView(Mapping):
    """``view[key]``, ``get``, ``items()``, ``len()`` over the partitions this process owns.

    Values are what users see: a table's value, an aggregation's row.
    Reads go through each task's write cache, so uncommitted updates show;
    they use the cache's reader methods (``peek``, snapshot ``items``), which
    never change the cache the record loop is using on its own thread, and
    read copies of what that thread changes in place
    (:mod:`streamlet.state.snapshot`).
    """

    def __init__(self, spec: StoreSpec, tasks: Any) -> None:
        self.spec = spec
        self._tasks = tasks
        self._kser = spec.key_serde.serialize
        self._kde = spec.key_serde.deserialize
        self._present = spec.present or (lambda v: v)

    def _caches(self) -> list[Any]:
        name, tasks = self.spec.name, self._tasks.tasks
        return [t.ctx.stores[name] for t in copy_while_written(lambda: list(tasks.values()))
                if name in t.ctx.stores]

    def __getitem__(self, key: Any) -> Any:
        kb = self._kser(key)
        for cache in self._caches():
            value = cache.peek(kb)
            if value is not None:
                return self._present(value)
        raise KeyError(key)

    def __iter__(self) -> Iterator[Any]:
        for cache in self._caches():
            for kb, _ in cache.items():
                yield self._kde(kb)

    def items(self) -> Iterator[tuple[Any, Any]]:  # type: ignore[override]
        for cache in self._caches():
            for kb, value in cache.items():
                yield self._kde(kb), self._present(value)

    def __len__(self) -> int:
        return sum(1 for _ in self.__iter__())

    def __repr__(self) -> str:
        return f"<StoreView {self.spec.name}: {len(self)} keys>"


class WindowStoreView(StoreView):
    """A window store's view (Kafka Streams' ``ReadOnlyWindowStore``): keys are ``sl.Windowed``.

        view.fetch("u1", 0, 3_600_000)     # [(Windowed("u1", 0, 60000), 3), ...] oldest first
        view[sl.Windowed("u1", 0, 60000)]  # one window
    """

    def __init__(self, spec: StoreSpec, tasks: Any) -> None:
        super().__init__(spec, tasks)
        self._size = spec.windows.size

    def _windowed(self, kb: bytes) -> Windowed:
        start, key = split_window_key(kb)
        return Windowed(self._kde(key), start, start + self._size)

    def __getitem__(self, key: Any) -> Any:
        if not isinstance(key, Windowed):
            raise KeyError(f"{key!r}: a window store's keys are sl.Windowed(key, start, end); "
                           "fetch(key, time_from, time_to) gives a key's windows")
        kb = window_key(key.start, self._kser(key.key))
        for cache in self._caches():
            value = cache.peek(kb)
            if value is not None:
                return self._present(value)
        raise KeyError(key)

    def fetch(self, key: Any, time_from: int = 0, time_to: int | None = None) -> list[tuple[Windowed, Any]]:
        """The windows of ``key`` that start in ``[time_from, time_to]``, oldest first."""
        kb = self._kser(key)
        hi = window_key(time_to + 1, b"") if time_to is not None else EMITTED
        out = []
        for cache in self._caches():
            for wk, value in cache.items(window_key(max(time_from, 0), b""), hi):
                if wk[8:] == kb:
                    out.append((self._windowed(wk), self._present(value)))
        return sorted(out, key=lambda item: item[0].start)

    def __iter__(self) -> Iterator[Any]:
        for key, _ in self.items():
            yield key

    def items(self) -> Iterator[tuple[Any, Any]]:  # type: ignore[override]
        for cache in self._caches():
            for kb, value in cache.items(FIRST, EMITTED):
                yield self._windowed(kb), self._present(value)


class SessionStoreView(StoreView):
    """A session store's view (Kafka Streams' ``ReadOnlySessionStore``): keys are ``sl.Windowed``.

        view.fetch("u1")                     # [(Windowed("u1", 1000, 4200), 7), ...] oldest first
        view.fetch("u1", 5000, 9000)         # the sessions ending at 5000 or later, starting by 9000

    Reads only the segments of the store that can hold what is asked (sessions by the segment of
    their end, :mod:`streamlet.topology.window_segments`); windows past the retention (of the
    latest time written to the store) are left out.
    """

    #: index of a window's time (what it is segmented by: a session's end) in its list
    _TIME = 1

    def _interval(self) -> int:
        return segment_interval(self.spec.windows.retention)

    def _entry(self, key: Any, w: list[Any]) -> tuple[Windowed, Any]:
        """A session ``[start, end, state]`` as (window, value)."""
        return Windowed(key, w[0], w[1]), self._present([None, w[2]])

    def _windows(self, cache: Any, kb: bytes, lo: int, hi: int | None) -> list[list[Any]]:
        """The windows of key ``kb`` in ``cache`` whose time is in ``[lo, hi]`` (None: no bound), live
        ones only: one read per segment."""
        newest = cache.peek(NEWEST)
        if newest is None:
            return []
        newest, iv = newest[0], self._interval()
        lo = max(lo, newest - self.spec.windows.retention + 1, 0)
        hi = newest if hi is None else min(hi, newest)
        out = []
        for segment in range(lo // iv, hi // iv + 1) if hi >= lo else ():
            row = cache.peek(row_key(segment, kb))
            if row is not None:  # the task's thread changes a row's list in place: read a copy
                out.extend(w for w in copy_while_written(lambda: list(row[STATE])) if lo <= w[self._TIME] <= hi)
        return out

    def fetch(self, key: Any, earliest_end: int = 0, latest_start: int | None = None) -> list[tuple[Windowed, Any]]:
        """The sessions of ``key`` that end at ``earliest_end`` or later and start at ``latest_start`` or
        earlier (Kafka Streams' ``findSessions``), oldest first."""
        kb = self._kser(key)
        found = [w for cache in self._caches() for w in self._windows(cache, kb, earliest_end, None)
                 if latest_start is None or w[0] <= latest_start]
        return [self._entry(key, w) for w in sorted(found, key=lambda w: w[0])]

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, Windowed):
            for w, value in self.fetch(key.key, key.end, key.start):
                if w == key:
                    return value
        raise KeyError(key)

    def __iter__(self) -> Iterator[Any]:
        for key, _ in self.items():
            yield key

    def items(self) -> Iterator[tuple[Any, Any]]:  # type: ignore[override]
        retention = self.spec.windows.retention
        for cache in self._caches():
            newest = cache.peek(NEWEST)
            if newest is None:
                continue
            floor = newest[0] - retention
            for rk, row in cache.items(ROW, ROW_END):
                key = self._kde(split_row_key(rk)[1])
                for w in copy_while_written(lambda: list(row[STATE])):  # changed in place by the task
                    if w[self._TIME] > floor:
                        yield self._entry(key, w)


class SlidingStoreView(SessionStoreView):
    """A sliding-window store's view: ``fetch(key, time_from, time_to)`` gives the key's windows that
    start in that range, oldest first (windows by the segment of their start)."""

    _TIME = 0  # a sliding window's start

    def _entry(self, key: Any, w: list[Any]) -> tuple[Windowed, Any]:
        """A sliding window ``[start, state, max record time]`` as (window, value)."""
        return Windowed(key, w[0], w[0] + self.spec.windows.max_difference), self._present([None, w[1]])

    def fetch(self, key: Any, time_from: int = 0, time_to: int | None = None) -> list[tuple[Windowed, Any]]:
        """The windows of ``key`` that start in ``[time_from, time_to]``, oldest first."""
        kb = self._kser(key)
        found = [w for cache in self._caches() for w in self._windows(cache, kb, time_from, time_to)]
        return [self._entry(key, w) for w in sorted(found, key=lambda w: w[0])]

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, Windowed):
            for w, value in self.fetch(key.key, key.start, key.start):
                if w == key:
                    return value
        raise KeyError(key)


def view_of(spec: StoreSpec, tasks: Any) -> StoreView:
    """The read-only view fitting store ``spec``."""
    if spec.kind == "window":
        return WindowStoreView(spec, tasks)
    if spec.kind == "session":
        return SessionStoreView(spec, tasks)
    if spec.kind == "sliding":
        return SlidingStoreView(spec, tasks)
    return StoreView(spec, tasks)


def store_view(topology: Any, name: str, tasks: Any, global_caches: dict[str, Any]) -> StoreView:
    """The read-only view of store ``name`` of a running worker (``app.store``, the HTTP side): a global
    table's over every partition, else over the tasks of this process (``tasks``, not None)."""
    if name in topology.global_stores:
        return GlobalStoreView(topology.global_stores[name], global_caches)
    return view_of(topology.stores[name], tasks)


class GlobalStoreView(StoreView):
    """The same view over a global table's store: every partition of its topic, in this process."""

    def __init__(self, spec: StoreSpec, caches: dict[str, Any]) -> None:
        super().__init__(spec, None)
        self._global_caches = caches

    def _caches(self) -> list[Any]:
        cache = self._global_caches.get(self.spec.name)
        return [] if cache is None else [cache]
