"""The windowed aggregation (Kafka Streams' ``KStreamWindowAggregate``): time windows, emit changes or final.

Each window of a key is one row of the window store, keyed by the window
start (8 bytes big-endian) then the key's bytes, so that the store's order is
time order: the windows that close as stream time advances are one range
scan, and the expired ones one range deletion (:meth:`delete_range`), never
a scan of every key. A row is an aggregation row (:mod:`streamlet.state.row`)
with the replay mark of the last record applied, so a record processed again
after a crash changes no window twice.

* **late records** — a record whose window has ``end + grace <= stream time``
  is dropped for that window (counted in ``ctx.late_records``, logged);
* **emit changes** (default) — each update goes on as ``(Windowed(key, start,
  end), (new, old))``, stamped with the window's largest record time;
* **emit final** — nothing goes on until stream time reaches ``end + grace``;
  then each window once, in window-start then key order, stamped with its
  largest record time. How far windows were emitted is a row of the store
  (:data:`EMITTED`), written with the commit that follows the emission: the
  commit sends changelog records only after every output is acknowledged
  (:mod:`streamlet.runtime.checkpoint`), so a window is never marked emitted
  without having been. A crash between the two repeats the windows emitted
  since the last commit (at-least-once; exactly-once removes that).
* **expiry** — every ``max(retention / 2, 60 s)`` of stream time, the windows
  that started before ``stream time - retention`` are deleted.
"""

from __future__ import annotations

import logging
import struct
from typing import Any

from streamlet.record import Windowed
from streamlet.state.row import STATE, row_timestamp
from streamlet.topology.aggregate import forward_at
from streamlet.topology.aggregation import check_state
from streamlet.topology.chain import Forward, fan_out
from streamlet.topology.compilation import Compilation
from streamlet.topology.context import TaskContext
from streamlet.topology.graph import Node
from streamlet.state.builder import layer_of
from streamlet.state.caching import MISSING, CachingStore
from streamlet.topology.origin import input_message
from streamlet.topology.timestamps import with_timestamp
from streamlet.topology.window_step import WindowStep

log = logging.getLogger("streamlet.windows")

_START = struct.Struct(">q")
#: the row holding how far windows were emitted (emit final); sorts after every window row
EMITTED = b"\xff\xffemitted"
#: the row holding the latest window start a row was written for; sorts after every window row
NEWEST = b"\xff\xffnewest"
#: windows never start before 0, so every window row sorts at or after this
FIRST = _START.pack(0)


def late_record(ctx: TaskContext, store: str, ts: int, start: int, end: int, observed: int, grace: int,
                whole: bool = True) -> None:
    """Count (``late_records_dropped``) and log, now and then, a record dropped because its window closed;
    ``whole``: it was too late for every window it falls in (then ``ctx.on_late`` may dead-letter it)."""
    ctx.late_records += 1
    n = ctx.late_records
    if ctx.metrics is not None:
        ctx.metrics.inc("late_records_dropped", store=store, partition=ctx.partition)
    if whole and ctx.on_late is not None:
        ctx.on_late(ctx.msg, f"late record for store {store!r}: timestamp {ts}, window [{start}, {end}) closed "
                             f"at stream time {observed} (grace {grace} ms)")
    if n == 1 or n % 1000 == 0:
        m = ctx.msg
        log.warning("%s: dropped a late record (%d so far in task %s): %s[%d]@%d, timestamp %d, window "
                    "[%d, %d) closed at stream time %d (grace %d ms)", store, n, ctx.task_id, m.topic(),
                    m.partition(), m.offset(), ts, start, end, observed, grace)


def window_key(start: int, key: bytes) -> bytes:
    """A window row's store key: the start, then the record key's bytes."""
    return _START.pack(start) + key


def split_window_key(kb: bytes) -> tuple[int, bytes]:
    """``(start, key bytes)`` of a window row's store key."""
    return _START.unpack_from(kb)[0], kb[8:]


def window_aggregate(node: Node, ctx: TaskContext, downs: list[Forward], comp: Compilation) -> Forward:
    """A time-windowed aggregation (``group_by_key().windowed_by(sl.Tumbling(...)).count(...)``)."""
    step = WindowStep(node, ctx, downs, comp)
    store, get, put, initial, add, present = step.store, step.get, step.put, step.initial, step.add, step.present
    check, key_bytes, kde = step.check, step.key_bytes, step.kde
    windows = step.windows
    size, grace, retention = windows.size, windows.grace, windows.retention
    starts = windows.starts
    final, want_old, sequence, name = step.final, step.want_old, step.sequence, step.name
    repartitioned, seen, row_of = step.repartitioned, step.seen, step.row_of
    down = fan_out(downs)
    expire_every = max(retention // 2, 60_000)
    advance = windows.advance
    tumbling = advance == size
    pack = _START.pack
    # Per task, rebuilt after a restart. observed: stream time as this step observes it (Kafka
    # Streams' observedStreamTime), the largest timestamp of the records that reached it — a record
    # filtered out upstream closes no window; after a restart it starts from the task's committed
    # stream time. newest: the latest window start a row was written for (a row of the store, NEWEST):
    # a window starting after it has no row yet, so its record needs no read (None: not known). NEWEST
    # changes before any row of a newer window, so it comes first in the changelog (one partition,
    # an idempotent producer): a restore that has a window's row has a NEWEST at least as new.
    observed = ctx.stream_time
    emitted: int | None = None
    next_close = 0
    next_expiry: int | None = None
    newest: int | None = None
    loaded = False

    def load() -> None:
        nonlocal emitted, next_close, newest, loaded
        loaded = True
        row = get(NEWEST)
        if row is not None:
            newest = row[0]
        elif next(iter(store.items(FIRST, EMITTED)), None) is None:
            newest = -1  # an empty store
        if final:
            row = get(EMITTED)
            emitted = -1 if row is None else row[0]
            next_close = _next_close(emitted)

    def update(start: int, kb: bytes, k: Any, v: Any, m: Any, seq: int, ts: int) -> tuple[Any, Any, int] | None:
        """Apply the record to the window row ``kb``: ``(new, old, row time)``, or None if replayed."""
        nonlocal newest
        if newest is not None and start > newest:
            cur = None  # no row can exist for a window newer than every row written
            newest = start
            put(NEWEST, [start])
        else:
            cur = get(kb)
        mark = seen(cur, m, seq)
        if mark is None:
            return None
        if cur is None:
            agg, old, row_ts = initial(), None, ts
        else:
            agg, row_ts = cur[STATE], max(ts, row_timestamp(cur))
            old = present(agg) if want_old else None
        agg = add(agg, k, v, m.offset(), ts)
        if check:
            check_state(agg)
        put(kb, row_of(mark, agg, row_ts))
        return present(agg), old, row_ts

    def emit_closed(close: int) -> None:
        """Emit every window with ``end <= close`` not emitted yet, then mark them emitted."""
        nonlocal emitted, next_close
        lo = FIRST if emitted is None else pack(max(emitted - size + 1, 0))
        hi = pack(close - size + 1)
        closed = store.scan(lo, hi)
        if closed:
            # one message for every window emitted now, stamped with each window's time in turn
            m = ctx.msg
            out = ctx.msg = with_timestamp(m, 0)
            try:
                for kb, stored in closed:
                    start, raw_key = split_window_key(kb)
                    out._timestamp = row_timestamp(stored)
                    down(Windowed(kde(raw_key), start, start + size), (present(stored[STATE]), None))
            finally:
                ctx.msg = m
        emitted = close
        put(EMITTED, [close])
        next_close = _next_close(close)

    def _next_close(emitted: int) -> int:
        """The end of the first window after those ending at or before ``emitted``."""
        first_start = max(emitted - size + 1, 0)
        first_start = -(-first_start // advance) * advance
        return first_start + size

    def window(start: int, kb: bytes, k: Any, v: Any, m: Any, seq: int, ts: int, close: int) -> None:
        """The record's part in the window starting at ``start``."""
        end = start + size
        if end <= close:
            # dead-lettered with its last window only if that one is late too (then all are)
            late_record(ctx, name, ts, start, end, observed, grace, whole=start + advance > ts)
            return
        changed = update(start, pack(start) + kb, k, v, m, seq, ts)
        if changed is not None and not final and downs:
            new, old, row_ts = changed
            forward_at(ctx, down, Windowed(k, start, end), (new, old), row_ts)

    def closing(close: int) -> None:
        """After each record: emit what closed (emit final), expire old windows now and then."""
        nonlocal next_expiry
        if final and close >= next_close:
            emit_closed(close)
        if next_expiry is None or observed >= next_expiry:
            cutoff = observed - retention + 1  # windows starting before it are gone
            if cutoff > 0:
                store.delete_range(FIRST, pack(cutoff))
            next_expiry = observed + expire_every

    if tumbling and not repartitioned:
        # the common case in one function: the steps of window() and update() inline, the cache's own
        # dicts for reads and writes, the direct row layout [offset, state, seq, timestamp]
        values, dirty = store.hot_path()
        single = comp.single_output_path(node.name)
        # a window that started after the newest one of the store at load has all its rows in the cache
        # while the cache drops nothing: a key it does not hold needs no read
        cache = layer_of(store, CachingStore)
        fresh = {"from": None, "evictions": -1}
        expiry_due = -1  # next_expiry as an int (-1: not set yet, due at the first record)

        def tumbling_record(k: Any, v: Any, kb: bytes, ts: int, m: Any, offset: int, seq: int,
                            stamped: bool) -> None:
            """One record of the tumbling window: ``kb`` its key's bytes, ``ts`` its timestamp, ``m`` its
            message, ``offset`` and ``seq`` its replay mark (the input record's offset, the n-th record
            made from it). ``stamped``: the chain sees ``m`` as ``with_timestamp(m, ts)``; only the rare
            steps that hand a message on (late records, emission, emit changes) make that one."""
            nonlocal observed, newest, expiry_due
            if v is None or k is None:
                return  # null keys and values never reach a windowed aggregate (Kafka Streams)
            if not loaded:
                load()
            if ts > observed:
                observed = ts
            close = observed - grace
            start = ts - ts % size
            if start + size <= close:
                ctx.msg = with_timestamp(m, ts) if stamped else m
                late_record(ctx, name, ts, start, start + size, observed, grace)
            else:
                kb = pack(start) + kb
                if newest is not None and start > newest:
                    cur = None  # no row can exist for a window newer than every row written
                    newest = start
                    put(NEWEST, [start])
                else:
                    cur = values.get(kb, MISSING)
                    if cur is MISSING:
                        first = fresh["from"]
                        if first is None and newest is not None and cache is not None:
                            first = fresh["from"] = newest + 1
                            fresh["evictions"] = cache.evictions
                        if first is not None and start >= first and cache.evictions == fresh["evictions"]:
                            cur = None
                        else:
                            cur = get(kb)
                if cur is None:
                    agg, old, row_ts = initial(), None, ts
                    apply = True
                elif offset < cur[0] or (offset == cur[0] and seq <= cur[2]):
                    apply = False  # applied already: a replay after a crash
                else:
                    agg, row_ts = cur[1], cur[3] if cur[3] > ts else ts
                    old = present(agg) if want_old else None
                    apply = True
                if apply:
                    agg = add(agg, k, v, m.offset(), ts)
                    if check:
                        check_state(agg)
                    values[kb] = [offset, agg, seq, row_ts]
                    dirty[kb] = None
                    if not final and downs:
                        ctx.msg = with_timestamp(m, ts) if stamped else m
                        forward_at(ctx, down, Windowed(k, start, start + size), (present(agg), old), row_ts)
            if (final and close >= next_close) or observed >= expiry_due:
                ctx.msg = with_timestamp(m, ts) if stamped else m
                closing(close)
                expiry_due = next_expiry  # type: ignore[assignment]

        def window_aggregate_tumbling(k: Any, v: Any) -> None:
            m = ctx.msg
            if v is None or k is None:
                return  # null keys and values never reach a windowed aggregate (Kafka Streams)
            tumbling_record(k, v, key_bytes(k), m.timestamp()[1], m, input_message(m).offset(),
                            0 if single else sequence.next(m), False)

        # for generated chains (codegen_window): the record's parts passed directly, no message made for it
        window_aggregate_tumbling.record = tumbling_record  # type: ignore[attr-defined]
        return window_aggregate_tumbling

    def window_aggregate(k: Any, v: Any) -> None:
        nonlocal observed
        if v is None or k is None:
            return  # null keys and values never reach a windowed aggregate (Kafka Streams)
        if not loaded:
            load()
        m = ctx.msg
        seq = sequence.next(m)
        ts = m.timestamp()[1]
        kb = key_bytes(k)
        if ts > observed:
            observed = ts
        close = observed - grace
        if tumbling:
            window(ts - ts % size, kb, k, v, m, seq, ts, close)
        else:
            for start in starts(ts):
                window(start, kb, k, v, m, seq, ts, close)
        closing(close)

    return window_aggregate
