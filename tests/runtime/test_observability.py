"""What the HTTP side's /metrics reads from the running worker's parts, on its own thread."""

from __future__ import annotations

from typing import Any

import streamlet as sl
from streamlet.metrics import Metrics
from streamlet.runtime.observability import _estimated_keys
from streamlet.state import StateDirectory
from streamlet.state.caching import CachingStore
from streamlet.state.metered import MeteredStore


class NoScan:
    """A layer whose ``len()`` would read every key (as the cache's does): must never be called."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def __len__(self) -> int:
        raise AssertionError("the store was scanned to count its keys")


class Bottom:
    def approximate_count(self) -> int:
        return 42


class Top:
    def __init__(self, inner: Any) -> None:
        self.inner = inner


def test_estimated_keys_walks_the_layers_without_scanning_them() -> None:
    """/metrics once tested each layer's truth (``inner or store``), which is ``len()``: a full scan
    of every store under the GIL per scrape, stealing the record loop's time."""
    assert _estimated_keys(Top(NoScan(Bottom()))) == 42
    assert _estimated_keys(Top(None)) is None


def test_estimated_keys_of_a_real_metered_caching_rocksdb_store(tmp_path: Any) -> None:
    directory = StateDirectory(str(tmp_path), "app")
    rocks = directory.open_store(0, "counts")
    try:
        cache = CachingStore(rocks, sl.serde.string())
        for i in range(300):
            cache.put(b"k%03d" % i, "v")
        cache.flush()
        metered = MeteredStore(cache, Metrics(), 0)
        scans = []
        original = CachingStore.__len__
        CachingStore.__len__ = lambda self: scans.append(1) or original(self)  # type: ignore[method-assign]
        try:
            keys = _estimated_keys(metered)
        finally:
            CachingStore.__len__ = original  # type: ignore[method-assign]
        assert keys is not None and 100 <= keys <= 600 and scans == []
    finally:
        rocks.close()
