"""Read-only view of one store across the tasks of this process (local interactive queries)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Iterator

from streamlet.record import Windowed
from streamlet.topology.graph import StoreSpec
from streamlet.state.row import STATE
from streamlet.topology.window_rows import ROW as SESSION_ROW
from streamlet.topology.window_rows import ROW_END as SESSION_ROW_END
from streamlet.topology.window_aggregate import EMITTED, FIRST, split_window_key, window_key


class StoreView(Mapping):
    """``view[key]``, ``get``, ``items()``, ``len()`` over the partitions this process owns.

    Values are what users see: a table's value, an aggregation's row.
    Reads go through each task's write cache, so uncommitted updates show;
    they use the cache's reader methods (``peek``, snapshot ``items``), which
    never change the cache the record loop is using on its own thread.
    """

    def __init__(self, spec: StoreSpec, tasks: Any) -> None:
        self.spec = spec
        self._tasks = tasks
        self._kser = spec.key_serde.serialize
        self._kde = spec.key_serde.deserialize
        self._present = spec.present or (lambda v: v)

    def _caches(self) -> list[Any]:
        name = self.spec.name
        return [t.ctx.stores[name] for t in list(self._tasks.tasks.values()) if name in t.ctx.stores]

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
    """

    def _sessions(self, cache: Any, kb: bytes | None = None) -> Iterator[tuple[Windowed, Any]]:
        rows = [(kb, cache.peek(kb))] if kb is not None else cache.items(SESSION_ROW, SESSION_ROW_END)
        for rk, stored in rows:
            if stored is None:
                continue
            key = self._kde(rk[1:])
            for s in stored[STATE]:
                yield self._entry(key, s)

    def _entry(self, key: Any, s: list[Any]) -> tuple[Windowed, Any]:
        """A session row entry ``[start, end, state]`` as (window, value)."""
        return Windowed(key, s[0], s[1]), self._present([None, s[2]])

    def fetch(self, key: Any) -> list[tuple[Windowed, Any]]:
        """The sessions of ``key``, oldest first."""
        kb = SESSION_ROW + self._kser(key)
        return sorted((item for cache in self._caches() for item in self._sessions(cache, kb)),
                      key=lambda item: item[0].start)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, Windowed):
            for w, value in self.fetch(key.key):
                if w == key:
                    return value
        raise KeyError(key)

    def __iter__(self) -> Iterator[Any]:
        for key, _ in self.items():
            yield key

    def items(self) -> Iterator[tuple[Any, Any]]:  # type: ignore[override]
        for cache in self._caches():
            yield from self._sessions(cache)


class SlidingStoreView(SessionStoreView):
    """A sliding-window store's view: ``fetch(key)`` gives the key's windows, oldest first."""

    def _entry(self, key: Any, s: list[Any]) -> tuple[Windowed, Any]:
        """A sliding row entry ``[start, state, max record time]`` as (window, value)."""
        return Windowed(key, s[0], s[0] + self.spec.windows.max_difference), self._present([None, s[1]])


def view_of(spec: StoreSpec, tasks: Any) -> StoreView:
    """The read-only view fitting store ``spec``."""
    if spec.kind == "window":
        return WindowStoreView(spec, tasks)
    if spec.kind == "session":
        return SessionStoreView(spec, tasks)
    if spec.kind == "sliding":
        return SlidingStoreView(spec, tasks)
    return StoreView(spec, tasks)


class GlobalStoreView(StoreView):
    """The same view over a global table's store: every partition of its topic, in this process."""

    def __init__(self, spec: StoreSpec, caches: dict[str, Any]) -> None:
        super().__init__(spec, None)
        self._global_caches = caches

    def _caches(self) -> list[Any]:
        cache = self._global_caches.get(self.spec.name)
        return [] if cache is None else [cache]
