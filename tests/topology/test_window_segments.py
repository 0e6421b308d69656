"""Session and sliding windows in their segmented store: what the store holds after expiry, restarts
that neither emit a window twice nor lose one, and no read of the whole store (expiry by range
deletion over whole segments, emit final from the time range that closed)."""

from __future__ import annotations

import random
from typing import Any

import pytest

import streamlet as sl
from streamlet.state import InMemoryStore, RocksDBStore, StoreBuilder
from streamlet.state.builder import bottom_of
from streamlet.state.caching import CachingStore
from streamlet.state.row import STATE
from streamlet.testing import TestDriver
from streamlet.topology.join_buffer import segment_interval
from streamlet.topology.window_segments import (CLOSING, EMITTED, NEWEST, ROW, closing_key, row_key, split_closing_key,
                                                split_row_key)

MINUTE = 60_000


class CountingStore(InMemoryStore):
    """An in-memory bottom store that records its range reads and range deletions."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.ranges: list[tuple[bytes | None, bytes | None]] = []
        self.deleted: list[tuple[bytes, bytes]] = []

    def items(self, start: bytes | None = None, end: bytes | None = None) -> Any:
        self.ranges.append((start, end))
        return super().items(start, end)

    def delete_range(self, start: bytes, end: bytes) -> None:
        self.deleted.append((start, end))
        super().delete_range(start, end)

    def close(self) -> None:
        pass  # kept for the next driver: a state directory that outlives the process


class Driver(TestDriver):
    """A TestDriver whose stores sit on ``bottoms`` (kept across drivers, like a state directory), and
    whose input log continues ``log`` (so offsets go on after a restart)."""

    __test__ = False

    def __init__(self, app: sl.App, bottoms: dict[tuple[str, int], CountingStore],
                 log: dict[str, Any] | None = None) -> None:
        self.bottoms = bottoms
        super().__init__(app)
        if log is not None:
            self.log = {t: {p: list(rs) for p, rs in parts.items()} for t, parts in log.items()}

    def _open_store(self, spec: Any, partition: int) -> Any:
        bottom = self.bottoms.setdefault((spec.name, partition), CountingStore(spec.name))
        return StoreBuilder.for_spec(spec, partition).build(bottom)

    def commit(self) -> None:
        """What a commit does to every store: stage the changes, write them and the range deletions."""
        for task in self.tasks.tasks.values():
            for store in task.ctx.stores.values():
                store.prepare_commit()
                store.commit()


def app_of(windows: Any, final: bool) -> sl.App:
    app = sl.App("seg")
    grouped = app.stream("in").group_by_key().windowed_by(windows)
    if final:
        grouped = grouped.emit_final()
    grouped.aggregate(n=sl.agg.count(), total=sl.agg.sum("v"), name="w").to_stream().to("out")
    return app


def windows_of(kind: str) -> Any:
    return sl.Session(10_000, grace=5_000) if kind == "session" else sl.Sliding(10_000, grace=5_000)


def records(n: int, seed: int, start: int = 0) -> list[tuple[str, int, int]]:
    """``n`` records of 12 keys, time going forward by 0.1 to 8 s, now and then a little out of order."""
    rnd = random.Random(seed)
    out, ts = [], start
    for i in range(n):
        ts += rnd.choice([100, 500, 2_000, 8_000])
        late = rnd.randint(0, 6_000) if rnd.random() < 0.1 else 0
        out.append((f"k{rnd.randrange(12)}", max(ts - late, 0), i))
    return out


def send(d: TestDriver, recs: list[tuple[str, int, int]]) -> None:
    for key, ts, v in recs:
        d.send("in", key, {"v": v}, timestamp=ts)


def outputs(d: TestDriver) -> list[tuple[Any, Any, int]]:
    return [(r.key, r.value, r.timestamp) for r in d.read_records("out")]


def bottom(bottoms: dict[tuple[str, int], CountingStore]) -> CountingStore:
    return bottoms[("w", 0)]


def window_times(store: InMemoryStore, kind: str) -> tuple[list[int], list[int], list[int]]:
    """What the store holds: the segments of its rows, the times of its windows, and of its time index."""
    segments, times, index = [], [], []
    for key, raw in store.items():
        if key.startswith(ROW):
            segments.append(split_row_key(key)[0])
            row = store_value(raw)
            times.extend(w[1] if kind == "session" else w[0] for w in row[STATE])
        elif key.startswith(CLOSING):
            index.append(split_closing_key(key)[0])
    return segments, times, index


def store_value(raw: bytes) -> Any:
    from streamlet.state.row import aggregate_serde
    return aggregate_serde().deserialize(raw)


@pytest.mark.parametrize("final", [False, True], ids=["changes", "final"])
@pytest.mark.parametrize("kind", ["session", "sliding"])
def test_windows_past_the_retention_leave_the_store_by_whole_segments(kind: str, final: bool) -> None:
    windows = windows_of(kind)
    interval = segment_interval(windows.retention)
    assert interval == MINUTE  # Kafka Streams' smallest segment: max(retention / 2, 60 s)
    bottoms: dict[tuple[str, int], CountingStore] = {}
    with Driver(app_of(windows, final), bottoms) as d:
        first = records(12, seed=1)                       # about half a minute
        send(d, first)
        d.commit()
        segments, times, _ = window_times(bottom(bottoms), kind)
        assert 0 in segments and min(times) < MINUTE      # the first minute's windows are there
        send(d, records(300, seed=2, start=first[-1][1]))  # ten more minutes
        d.commit()
        now = d.stream_time("in")
        store = bottom(bottoms)
        segments, times, index = window_times(store, kind)
        # a segment goes when all its windows are expired (time <= stream time - retention) — and, with
        # emit final, emitted; nothing older than the segment before the retention is left
        cut = now - windows.retention + 1
        if final:
            close = store_value(store.get(EMITTED))[0]
            cut = min(cut, close - (0 if kind == "session" else windows.max_difference))
        live = cut // interval
        assert segments and min(segments) == live and max(segments) == now // interval
        assert min(times) >= live * interval and max(times) <= now + 1
        assert len(set(segments)) <= 2
        if final:
            assert index and min(index) >= live * interval
        else:
            assert index == []                            # no time index without emit final
        # each expiry was one range deletion of rows and one of the time index, at segment bounds
        assert store.deleted == [(row_key(0, b""), row_key(s, b"")) if i % 2 == 0 else
                                 (closing_key(0, b""), closing_key(s * interval, b""))
                                 for s in range(1, live + 1) for i in range(2)]
        # the view answers the live windows only
        # the view answers the live windows only, by the latest window time written (the store's time)
        newest = store_value(store.get(NEWEST))[0]
        view = list(d.store("w"))
        assert view and all((w.end if kind == "session" else w.start) > newest - windows.retention for w in view)


@pytest.mark.parametrize("kind", ["session", "sliding"])
def test_no_step_reads_the_whole_store(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Expiry and emit final read no range of rows: a scan of the store (or of the cache) fails here."""

    def scan(*args: Any) -> Any:
        raise AssertionError("a windowed step scanned its store")

    monkeypatch.setattr(CachingStore, "scan", scan)
    monkeypatch.setattr(CachingStore, "items", scan)
    bottoms: dict[tuple[str, int], CountingStore] = {}
    with Driver(app_of(windows_of(kind), final=True), bottoms) as d:
        for i, recs in enumerate([records(200, seed=3), records(200, seed=4, start=1_000_000)]):
            send(d, recs)
            d.commit()
        assert d.read_records("out") and bottom(bottoms).deleted
        assert bottom(bottoms).ranges == []  # not one range read of the store


@pytest.mark.parametrize("kind", ["session", "sliding"])
@pytest.mark.parametrize("crash", [False, True], ids=["restart", "crash"])
def test_a_restarted_task_neither_emits_a_final_window_twice_nor_loses_one(kind: str, crash: bool) -> None:
    """Against one uninterrupted run: the windows emitted before the restart are not emitted again,
    those open at the restart are emitted when they close, with the same aggregates. A crash after
    the last commit repeats the windows emitted since that commit (at-least-once), no others."""
    rnd = random.Random(5)
    recs, ts = [], 0
    for i in range(240):  # in time order across the restart: the restarted task's stream time catches up
        ts += rnd.choice([100, 700, 3_000, 9_000, 14_000])
        recs.append((f"k{rnd.randrange(6)}", ts, i))
    app = app_of(windows_of(kind), final=True)
    with TestDriver(app) as whole:
        send(whole, recs)
        expected = outputs(whole)
    bottoms: dict[tuple[str, int], CountingStore] = {}
    with Driver(app, bottoms) as a:
        send(a, recs[:120])
        a.commit()
        before = outputs(a)
        if crash:
            send(a, recs[120:150])                         # processed, never committed
            repeated = outputs(a)
        log = a.log
    open_at_restart = [k for k, raw in bottom(bottoms).items() if k.startswith(CLOSING)]
    with Driver(app, bottoms, log={"in": log["in"]}) as b:
        bottom(bottoms).ranges.clear()
        if crash:
            b.redeliver("in", from_offset=120)             # what a restart does after the crash
            send(b, recs[150:])
        else:
            send(b, recs[120:])
        after = outputs(b)
        reads = list(bottom(bottoms).ranges)
    assert before and after
    assert before + after == expected
    if crash:
        assert repeated and after[:len(repeated)] == repeated
    else:
        assert len({w for w, _, _ in before + after}) == len(expected)
    # the restarted task read the time index of the windows still open, never the rows of all windows
    assert open_at_restart and reads
    emitted = store_value(bottom(bottoms).get(EMITTED))[0]
    assert all(lo is not None and lo.startswith(CLOSING) and hi is not None and hi.startswith(CLOSING)
               for lo, hi in reads), reads
    assert emitted > 0


def test_rows_hold_each_keys_windows_by_segment_of_their_time() -> None:
    """The layout a restore or a reader sees: one row per (segment, key), the windows sorted by start."""
    bottoms: dict[tuple[str, int], CountingStore] = {}

    def rows() -> dict[tuple[int, bytes], list[list[int]]]:
        return {split_row_key(k): [w[:2] for w in store_value(v)[STATE]]
                for k, v in bottom(bottoms).items() if k.startswith(ROW)}

    with Driver(app_of(sl.Session(10_000, grace=0), final=False), bottoms) as d:
        send(d, [("a", 1_000, 1), ("a", 5_000, 2), ("a", 25_000, 3), ("b", 65_000, 4)])
        d.commit()
        assert rows() == {(0, b"a"): [[1_000, 5_000], [25_000, 25_000]], (1, b"b"): [[65_000, 65_000]]}
        assert bottom(bottoms).deleted == []
        send(d, [("a", 130_000, 5)])  # retention 10 s: every window before 120 s is expired
        d.commit()
        assert rows() == {(2, b"a"): [[130_000, 130_000]]}
    assert bottom(bottoms).deleted == [(row_key(0, b""), row_key(2, b"")),
                                       (closing_key(0, b""), closing_key(2 * MINUTE, b""))]


class RocksDBDriver(Driver):
    """A Driver whose stores are RocksDB databases under ``root``, opened again by the next driver."""

    __test__ = False

    def __init__(self, app: sl.App, root: Any, log: dict[str, Any] | None = None) -> None:
        self.root = root
        super().__init__(app, {}, log)

    def _open_store(self, spec: Any, partition: int) -> Any:
        bottom = RocksDBStore(self.root / f"{spec.name}-{partition}", spec.name, "test")
        return StoreBuilder.for_spec(spec, partition).build(bottom)


@pytest.mark.parametrize("kind", ["session", "sliding"])
def test_a_task_restarted_on_its_rocksdb_state_goes_on_where_it_stopped(kind: str, tmp_path: Any) -> None:
    """Close and reopen on RocksDB: expired segments deleted on disk, the emitted mark and the open
    windows read back, every final window once."""
    recs = sorted(records(400, seed=7), key=lambda r: r[1])  # in time order: see the test above
    app = app_of(windows_of(kind), final=True)
    with TestDriver(app) as whole:
        send(whole, recs)
        expected = outputs(whole)
    with RocksDBDriver(app, tmp_path) as a:
        send(a, recs[:250])
        a.commit()
        before = outputs(a)
        log = a.log
    with RocksDBDriver(app, tmp_path, log={"in": log["in"]}) as b:
        send(b, recs[250:])
        b.commit()
        after = outputs(b)
        [task] = b.tasks.tasks.values()
        disk = list(bottom_of(task.ctx.stores["w"]).items())
    assert before and after and before + after == expected
    now = recs[-1][1]
    segments = [split_row_key(k)[0] for k, _ in disk if k.startswith(ROW)]
    index = [split_closing_key(k)[0] for k, _ in disk if k.startswith(CLOSING)]
    # on disk: the segments of the last retention (+ the one it starts in), nothing older
    assert segments and min(segments) >= (now - windows_of(kind).retention) // MINUTE - 1 > 0
    assert index and min(index) >= min(segments) * MINUTE
