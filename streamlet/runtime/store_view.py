"""Read-only view of one store across the tasks of this process (local interactive queries)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Iterator

from streamlet.topology.graph import StoreSpec


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


class GlobalStoreView(StoreView):
    """The same view over a global table's store: every partition of its topic, in this process."""

    def __init__(self, spec: StoreSpec, caches: dict[str, Any]) -> None:
        super().__init__(spec, None)
        self._global_caches = caches

    def _caches(self) -> list[Any]:
        cache = self._global_caches.get(self.spec.name)
        return [] if cache is None else [cache]
