"""Stacks the layers of one store, as Kafka Streams' ``StoreBuilder`` does.

    store = (StoreBuilder("counts", value_serde)
             .with_logging("app-counts-changelog", partition, produce)
             .with_caching()
             .with_metrics(metrics, partition)
             .build(RocksDBStore(...)))

gives ``Metered(Caching(ChangeLogging(RocksDB)))``. The runtime builds every
store with :meth:`StoreBuilder.for_spec`; the TestDriver builds a cache over
an in-memory store. Window, session and sliding stores use the same layers
(see :mod:`streamlet.state.store`).
"""

from __future__ import annotations

from typing import Any

from streamlet.state.caching import CachingStore
from streamlet.state.changelogging import ChangeLoggingStore, Produce
from streamlet.state.metered import Counter, MeteredStore
from streamlet.state.row import timestamped_serde
from streamlet.state.store import KeyValueStore

#: keys a cache holds before it evicts clean entries
DEFAULT_CACHE_ENTRIES = 100_000


class StoreBuilder:
    """Which layers go on a bottom store; :meth:`build` stacks them."""

    def __init__(self, name: str, value_serde: Any, *, timestamped: bool = False) -> None:
        self.name = name
        #: a timestamped key-value store holds :class:`~streamlet.state.row.ValueAndTimestamp` rows
        self.value_serde = timestamped_serde(value_serde) if timestamped else value_serde
        self._logging: tuple[str, int, Produce] | None = None
        self._cache_entries: int | None = None
        self._metrics: tuple[Counter, int] | None = None

    @classmethod
    def for_spec(cls, spec: Any, partition: int, produce: Produce | None = None,
                 metrics: Counter | None = None,
                 cache_entries: int = DEFAULT_CACHE_ENTRIES) -> "StoreBuilder":
        """The runtime's stack for a topology's ``StoreSpec``: a cache, change-logging when the app
        writes the changelog (``produce`` given, not a source table, whose changelog is its input),
        metrics when ``metrics`` is given."""
        builder = cls(spec.name, spec.value_serde, timestamped=spec.timestamped)
        builder.with_caching(cache_entries)
        if produce is not None and not spec.source_table:
            builder.with_logging(spec.changelog, partition, produce)
        if metrics is not None:
            builder.with_metrics(metrics, partition)
        return builder

    def with_logging(self, topic: str, partition: int, produce: Produce) -> "StoreBuilder":
        """Send every change to ``topic`` partition ``partition`` through ``produce``."""
        self._logging = (topic, partition, produce)
        return self

    def with_caching(self, max_entries: int = DEFAULT_CACHE_ENTRIES) -> "StoreBuilder":
        """Keep decoded values, up to about ``max_entries`` clean ones."""
        self._cache_entries = max_entries
        return self

    def with_metrics(self, metrics: Counter, partition: int) -> "StoreBuilder":
        """Count commits, changes and cache misses into ``metrics``."""
        self._metrics = (metrics, partition)
        return self

    def build(self, bottom: KeyValueStore) -> Any:
        """The layers over ``bottom``, top first: Metered(Caching(ChangeLogging(bottom)))."""
        store: Any = bottom
        if self._logging is not None:
            store = ChangeLoggingStore(store, *self._logging)
        if self._cache_entries is not None:
            store = CachingStore(store, self.value_serde, self._cache_entries)
        if self._metrics is not None:
            if self._cache_entries is None:
                raise NotImplementedError("the metrics layer counts the cache's commits: add with_caching()")
            store = MeteredStore(store, *self._metrics)
        return store


def layers(store: Any) -> list[Any]:
    """The layers of a built store, top first, down to the bottom."""
    out = [store]
    while (inner := getattr(out[-1], "inner", None)) is not None:
        out.append(inner)
    return out


def bottom_of(store: Any) -> KeyValueStore:
    """The bottom store of a stack (where a restore writes)."""
    return layers(store)[-1]


def layer_of(store: Any, kind: type) -> Any:
    """The layer of type ``kind`` in the stack of ``store``, or ``None``."""
    return next((layer for layer in layers(store) if isinstance(layer, kind)), None)
