"""Store scans from another thread (``app.store()``, the HTTP side) while the task's thread writes the store.

The record loop takes no lock: the readers copy what they read (``streamlet.state.snapshot``). A writer
thread changes "hot" keys as fast as it can (puts, deletes, commits that write the store below and evict
from a small cache, new keys, a task coming and going); readers scan meanwhile and must never fail and
must always see every "stable" key (written once, before) with its value.
"""

from __future__ import annotations

import json
import random
import threading
from types import SimpleNamespace
from typing import Any, Callable

import pytest

import streamlet as sl
from streamlet.runtime.http_routes import Routes
from streamlet.runtime.store_view import StoreView
from streamlet.state.caching import CachingStore
from streamlet.state.memory import InMemoryStore
from streamlet.state.rocksdb import RocksDBStore
from streamlet.topology.graph import StoreSpec

STABLE = {f"s{i:04d}": i for i in range(300)}
SCANS = 150


def _bottom(kind: str, tmp_path: Any) -> Any:
    return InMemoryStore("counts") if kind == "memory" else RocksDBStore(tmp_path / "db", "counts", "app/0/counts")


def _write_hot_keys(cache: CachingStore, tasks: dict[Any, Any], stop: threading.Event,
                    model: dict[bytes, Any], errors: list[BaseException]) -> None:
    """The task's thread: hot keys put and deleted, a commit (store write + eviction) every 50 changes,
    and another task's store coming and going (a rebalance)."""
    rnd, n = random.Random(7), 0
    other = SimpleNamespace(ctx=SimpleNamespace(stores={"counts": CachingStore(InMemoryStore("other"), sl.serde.json())}))
    try:
        while not stop.is_set():
            for _ in range(50):
                key = b"h%05d" % rnd.randrange(3000)
                value = None if rnd.random() < 0.2 else n
                cache.put(key, value)
                if value is None:
                    model.pop(key, None)
                else:
                    model[key] = value
                cache.get(b"s%04d" % rnd.randrange(300))  # reads of stable keys bring them back into the cache
                n += 1
            cache.flush()
            if n % 1000 == 0:
                tasks[1] = other
            elif n % 1000 == 500:
                tasks.pop(1, None)
    except BaseException as exc:  # reported by the test
        errors.append(exc)


def _scan_while_writing(kind: str, tmp_path: Any, scan: Callable[[StoreView, Routes], dict[str, Any]]) -> None:
    cache = CachingStore(_bottom(kind, tmp_path), sl.serde.json(), max_entries=200)  # evicts all the time
    for key, value in STABLE.items():
        cache.put(key.encode(), value)
    cache.flush()
    tasks: dict[Any, Any] = {0: SimpleNamespace(ctx=SimpleNamespace(stores={"counts": cache}))}
    spec = StoreSpec("counts", "table", sl.serde.string(), sl.serde.json(), "app-counts-changelog")
    view = StoreView(spec, SimpleNamespace(tasks=tasks))
    routes = Routes(lambda: {"ready": True}, lambda name: view, {"counts": spec}, lambda: "", lambda: None)
    stop, model, errors = threading.Event(), {}, []
    writer = threading.Thread(target=_write_hot_keys, args=(cache, tasks, stop, model, errors))
    writer.start()
    try:
        seen = [scan(view, routes) for _ in range(SCANS)]
    finally:
        stop.set()
        writer.join(30)
    assert not errors and not writer.is_alive()
    for rows in seen:
        assert {k: v for k, v in rows.items() if k.startswith("s")} == STABLE
        assert all(k.startswith(("s", "h")) for k in rows)
    # the task's own thread still reads the store right: the readers left nothing stale behind
    assert {k: v for k, v in cache.items() if k.startswith(b"h")} == model
    cache.store.close()


@pytest.mark.parametrize("kind", ["memory", "rocksdb"])
def test_store_view_items_while_the_task_writes(kind: str, tmp_path: Any) -> None:
    _scan_while_writing(kind, tmp_path, lambda view, routes: dict(view.items()))


@pytest.mark.parametrize("kind", ["memory", "rocksdb"])
def test_http_scan_while_the_task_writes(kind: str, tmp_path: Any) -> None:
    def scan(view: StoreView, routes: Routes) -> dict[str, Any]:
        status, _, body = routes("GET", "/stores/counts", {"limit": "100000"})
        assert status == 200
        return {row["key"]: row["value"] for row in json.loads(body)["rows"]}

    _scan_while_writing(kind, tmp_path, scan)


def test_a_reader_never_leaves_the_memory_store_a_stale_key_list() -> None:
    """A reader that sorts the keys while the task adds one must not make later scans miss it."""
    store = InMemoryStore("counts")
    store.write({b"a": b"1"})
    version, stale = store._keys_version, [b"a"]  # what a reader read before the write below
    store.write({b"b": b"2"})
    store._sorted = (version, stale)  # the reader publishes its list after the write
    assert [k for k, _ in store.items()] == [b"a", b"b"]
