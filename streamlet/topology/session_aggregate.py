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

Sessions live in the segmented store of :mod:`streamlet.topology.window_segments`, by the segment
of their end: a record's sessions are one read per live segment from ``ts - gap`` on; sessions
ending at or before ``stream time - retention`` are never merged again, and go with their segment
(one range deletion). With emit final each session goes on once, in end, start, key order, when
``end + gap + grace < stream time`` (:mod:`streamlet.topology.window_closing`).

Replays: a row keeps the mark of the last record that changed it; a record that finds one of its
key's rows around it marked with itself or a later record was applied already (rows change in
input order), and changes nothing.
"""

from __future__ import annotations

from typing import Any

from streamlet.errors import TopologyError
from streamlet.record import Windowed
from streamlet.state.row import STATE
from streamlet.topology.aggregate import forward_at
from streamlet.topology.aggregation import check_state
from streamlet.topology.chain import Forward
from streamlet.topology.compilation import Compilation
from streamlet.topology.context import TaskContext
from streamlet.topology.graph import Node
from streamlet.topology.window_aggregate import late_record
from streamlet.topology.window_closing import ClosingIndex
from streamlet.topology.window_segments import Segments, row_key
from streamlet.topology.window_step import WindowStep

START, END, AGG = 0, 1, 2


def _by_end(s: list[Any]) -> int:
    return s[END]  # type: ignore[no-any-return]


def _by_start(s: list[Any]) -> int:
    return s[START]  # type: ignore[no-any-return]


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
    segments = Segments(store, retention)
    interval = segments.interval
    closing = ClosingIndex(store, 0) if final else None
    # observed: stream time as this step observes it (Kafka Streams' observedStreamTime)
    at = {"observed": ctx.stream_time, "loaded": False}

    def forward(k: Any, s: list[Any], change: tuple[Any, Any]) -> None:
        if down is not None:
            forward_at(ctx, down, Windowed(k, s[START], s[END]), change, s[END])

    def emit_closed(close: int) -> None:
        """Emit the sessions ending before ``close`` not emitted yet, in end, start, key order."""
        assert closing is not None
        out = []
        for end, kb in closing.take(close):
            row = get(row_key(end // interval, kb))
            for s in () if row is None else row[STATE]:
                if s[END] == end:
                    out.append((end, s[START], kb, s))
                    break
        out.sort(key=lambda e: e[:3])
        for _, _, kb, s in out:
            forward(kde(kb), s, (present(s[AGG]), None))

    def load() -> None:
        at["loaded"] = True
        segments.load()
        if closing is not None:
            closing.load(segments.newest)

    def session_aggregate(k: Any, v: Any) -> None:
        if v is None or k is None:
            return  # null keys and values never reach a windowed aggregate
        if not at["loaded"]:
            load()
        m = ctx.msg
        seq = sequence.next(m)
        ts = m.timestamp()[1]
        observed = at["observed"]
        gone = observed - retention  # sessions ending at or before it are expired (Kafka Streams' store)
        if ts > observed:
            observed = at["observed"] = ts
        close = observed - gap - grace  # a session ending before it is closed
        kb = key_bytes(k)
        rows = segments.rows(kb, max(ts - gap, gone + 1))
        marks = [seen(row, m, seq) for _, _, row in rows]
        if None not in marks:  # else: a replay, applied already
            merged = [s for _, _, row in rows for s in row[STATE]
                      if s[END] >= ts - gap and s[START] <= ts + gap and s[END] > gone]
            start = min([ts] + [s[START] for s in merged])
            end = max([ts] + [s[END] for s in merged])
            if end < close:
                late_record(ctx, name, ts, start, end, observed, grace)
            else:
                merged.sort(key=_by_end)
                agg = initial()
                for s in merged:
                    agg = merge(agg, s[AGG], k)
                agg = add(agg, k, v, m.offset(), ts)
                if check:
                    check_state(agg)
                session = [start, end, agg]
                write(kb, rows, marks, merged, session, m, seq)
                if not final:
                    if start != ts or end != ts:  # a record that merged nothing new replaces its session
                        for s in merged:
                            forward(k, s, (None, present(s[AGG]) if want_old else None))
                    forward(k, session, (present(agg), None))
        cut = observed - retention + 1  # Kafka Streams: a session ending at or before it is gone
        if closing is not None:
            if closing.closes(close):
                emit_closed(close)
            cut = min(cut, closing.emitted)  # a session goes only once emitted
        segments.expire(cut)

    def write(kb: bytes, rows: list[Any], marks: list[Any], merged: list[list[Any]], session: list[Any],
              m: Any, seq: int) -> None:
        """Replace the ``merged`` sessions of key ``kb`` (in ``rows``) by ``session``."""
        end = session[END]
        segment = end // interval
        gone_ids = {id(s) for s in merged}
        segments.note(end)
        written = False
        for (seg, rk, row), mark in zip(rows, marks):
            kept = [s for s in row[STATE] if id(s) not in gone_ids]
            if seg == segment:
                kept.append(session)
                kept.sort(key=_by_start)
                written = True
            elif len(kept) == len(row[STATE]):
                continue
            put(rk, row_of(mark, kept, end) if kept else None)
        if not written:
            put(row_key(segment, kb), row_of(seen(None, m, seq), [session], end))
        if closing is not None:
            for s in merged:
                closing.remove(s[END], kb)
            closing.add(end, kb)

    return session_aggregate
