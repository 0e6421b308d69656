"""The metrics layer: what a store did, counted once per commit, never per record.

Kafka Streams' ``MeteredKeyValueStore`` times every call; here the record
loop (and the generated aggregation, which writes the cache's dicts itself)
must not pay for one. So this layer hands out the cache's own methods —
``get``, ``put``, ``hot_path``, ``peek``, ``items`` are the layer below's
bound methods, no wrapper call — and counts at each commit instead:

* ``store_flushes`` — commits that staged changes,
* ``store_changes`` — changed keys written (one changelog record each),
* ``store_cache_misses`` — reads that went past the cache to the store,
* ``store_rollbacks`` — commits abandoned back to the last checkpoint,

each labelled ``store`` and ``partition``, into ``metrics.inc(name, amount,
**labels)`` (:class:`streamlet.metrics.Metrics`).
"""

from __future__ import annotations

from typing import Any, Mapping, Protocol


class Counter(Protocol):
    def inc(self, name: str, amount: int = 1, **labels: object) -> None: ...


class MeteredStore:
    """Counts the commits of the caching store below it into ``metrics``."""

    def __init__(self, inner: Any, metrics: Counter, partition: int) -> None:
        self.inner = inner
        self.metrics = metrics
        self.partition = partition
        # the layer below's own bound methods: no call added on the record path
        self.get = inner.get
        self.put = inner.put
        self.hot_path = inner.hot_path
        self.peek = inner.peek
        self.items = inner.items
        self._misses_seen = 0

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def store(self) -> Any:
        """The byte store below the cache (as :attr:`CachingStore.store`)."""
        return self.inner.store

    def _inc(self, name: str, amount: int) -> None:
        if amount:
            self.metrics.inc(name, amount, store=self.inner.name, partition=self.partition)

    def prepare_commit(self) -> int:
        count = self.inner.prepare_commit()
        misses = getattr(self.inner, "misses", 0)
        self._inc("store_cache_misses", misses - self._misses_seen)
        self._misses_seen = misses
        if count:
            self._inc("store_flushes", 1)
            self._inc("store_changes", count)
        return count

    def commit(self, offsets: Mapping[str, int] | None = None) -> None:
        self.inner.commit(offsets)

    def rollback(self) -> None:
        self.inner.rollback()
        self._inc("store_rollbacks", 1)

    def close(self) -> None:
        self.inner.close()

    def __len__(self) -> int:
        return len(self.inner)

    def __getattr__(self, name: str) -> Any:
        # the rest of the cache's interface (clear, flush, take_changes ...): rare calls
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __repr__(self) -> str:
        return f"<MeteredStore {self.inner!r}>"
