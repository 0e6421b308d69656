"""The session-windowed aggregation (Kafka Streams' ``KStreamSessionWindowAggregate``).

A session of a key is ``[start, end]``, both its records' timestamps (end
inclusive: a one-record session is ``[ts, ts]``). A record at ``ts`` merges
every session of its key with ``end >= ts - gap`` and ``start <= ts + gap``:
their states are merged (the aggregation's ``merge``: ``sl.agg`` aggregators
merge in offset order, by-offset ones by the offsets they keep), the record is
added, and the merged sessions are replaced by one. With emit changes, each
merged-away session goes on as a tombstone, then the new session, each stamped
with its end (Kafka Streams). A record whose merged session has
``end + gap + grace < stream time`` is late and dropped.

The store keeps one row per key: the replay mark and the key's sessions
(``[start, end, state]`` each, few: the open ones and those closed within
the retention), so finding a record's sessions is one read. An in-memory heap
of session ends — rebuilt from the store when the task starts, so bounded by
the sessions the store holds — tells which sessions close (emit final: each
once, in end then key order, when ``end + gap + grace < stream time``) and
which expire (``end < stream time - retention``), without scanning the store.
"""

from __future__ import annotations

from typing import Any

from streamlet.errors import TopologyError
from streamlet.record import Windowed
from streamlet.state.row import STATE
from streamlet.topology.window_rows import ROW
from streamlet.topology.aggregate import forward_at
from streamlet.topology.aggregation import check_state
from streamlet.topology.chain import Forward
from streamlet.topology.compilation import Compilation
from streamlet.topology.context import TaskContext
from streamlet.topology.graph import Node
from streamlet.topology.window_aggregate import late_record
from streamlet.topology.window_rows import WindowRows, WindowStep

START, END, AGG = 0, 1, 2


def session_aggregate(node: Node, ctx: TaskContext, downs: list[Forward], comp: Compilation) -> Forward:
    """A session-windowed aggregation (``group_by_key().windowed_by(sl.Session(...)).count(...)``)."""
    step = WindowStep(node, ctx, downs, comp)
    if step.spec.merge is None:
        raise TopologyError(f"{node.name!r}: {step.spec.no_merge_reason}")
    store, get, put, initial, add, present = step.store, step.get, step.put, step.initial, step.add, step.present
    check, key_bytes, kde, final, want_old, down = (step.check, step.key_bytes, step.kde, step.final,
                                                    step.want_old, step.down)
    sequence, seen, row_of, name, merge = step.sequence, step.seen, step.row_of, step.name, step.spec.merge
    windows = step.windows
    gap, grace, retention = windows.gap, windows.grace, windows.retention
    observed_at = {"observed": ctx.stream_time}

    def forward(k: Any, s: list[Any], change: tuple[Any, Any]) -> None:
        forward_at(ctx, down, Windowed(k, s[START], s[END]), change, s[END])

    rows = WindowRows(store, final, lambda s: (s[START], s[END]),
                      lambda rk, s: forward(kde(rk[1:]), s, (present(s[AGG]), None)))

    def session_aggregate(k: Any, v: Any) -> None:
        if v is None or k is None:
            return  # null keys and values never reach a windowed aggregate
        if rows.ends is None:
            rows.load()
        m = ctx.msg
        seq = sequence.next(m)
        ts = m.timestamp()[1]
        observed = observed_at["observed"]
        gone = observed - retention  # sessions ending at or before it are expired (Kafka Streams' store)
        if ts > observed:
            observed = observed_at["observed"] = ts
        close = observed - gap - grace  # a session ending before it is closed
        rk = ROW + key_bytes(k)
        cur = get(rk)
        mark = seen(cur, m, seq)
        if mark is not None:
            sessions = [] if cur is None else cur[STATE]
            merged = [s for s in sessions if s[END] >= ts - gap and s[START] <= ts + gap and s[END] > gone]
            start = min([ts] + [s[START] for s in merged])
            end = max([ts] + [s[END] for s in merged])
            if end < close:
                late_record(ctx, name, ts, start, end, observed, grace)
            else:
                agg = initial()
                for s in sorted(merged, key=lambda s: s[END]):
                    agg = merge(agg, s[AGG], k)
                agg = add(agg, k, v, m.offset(), ts)
                if check:
                    check_state(agg)
                kept = [s for s in sessions if s not in merged]
                session = [start, end, agg]
                kept.append(session)
                kept.sort(key=lambda s: s[START])
                put(rk, row_of(mark, kept, end))
                rows.add(start, end, rk)
                if not final and down is not None:
                    if start != ts or end != ts:  # a record that merged nothing new replaces its session
                        for s in sorted(merged, key=lambda s: s[END]):
                            forward(k, s, (None, present(s[AGG]) if want_old else None))
                    forward(k, session, (present(agg), None))
        if final and rows.closes(close):
            rows.emit_closed(close)
        expired = observed - retention + 1  # Kafka Streams: a session ending at or before it is gone
        rows.expire(lambda entry: entry[0] < expired)

    return session_aggregate
