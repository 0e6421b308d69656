"""The sliding-window aggregation (Kafka Streams' ``KStreamSlidingWindowAggregate``, KIP-450).

A sliding window ``[start, start + max_difference]`` (both ends inclusive) exists
where its contents change: each record at ``ts`` has its *left* window
``[ts - d, ts]`` and, when a later record falls within ``d`` after it, its
*right* window ``[ts + 1, ts + 1 + d]``. A record updates every existing window
that contains it, creates its left window (from the aggregate of the window
just before it, or from scratch), the right window of the record before it
if that did not exist yet, and its own right window from the aggregate of the
window after it. Records with ``ts < d`` share the window ``[0, d]``. This
follows Kafka Streams step by step, so that outputs — which windows, in which
order, with which aggregates and timestamps — are the same.

Late: a record with ``ts + 1 + d <= stream time - grace``, and an update of
a window whose end is before ``stream time - grace``. Windows live in the segmented store of
:mod:`streamlet.topology.window_segments`, by the segment of their start (``[start, state, max
record time]`` each): a record reads its key's rows of the segments from ``ts - 2 d`` to ``ts + 1``.
Emit final emits a window once ``end < stream time - grace``, in start then key order
(:mod:`streamlet.topology.window_closing`); windows starting at or before ``newest start -
retention`` (retention ``2 d + grace`` by default) are expired, and go with their segment. Replays
are told as for sessions (:mod:`streamlet.topology.session_aggregate`).
"""

from __future__ import annotations

import copy
from typing import Any

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

START, AGG, MAX_TS = 0, 1, 2


def sliding_aggregate(node: Node, ctx: TaskContext, downs: list[Forward], comp: Compilation) -> Forward:
    """A sliding-window aggregation (``group_by_key().windowed_by(sl.Sliding(...)).count(...)``)."""
    step = WindowStep(node, ctx, downs, comp)
    store, get, put, initial, add, present = step.store, step.get, step.put, step.initial, step.add, step.present
    check, key_bytes, kde, final, want_old, down = (step.check, step.key_bytes, step.kde, step.final,
                                                    step.want_old, step.down)
    sequence, seen, row_of, name = step.sequence, step.seen, step.row_of, step.name
    windows = step.windows
    d, grace, retention = windows.max_difference, windows.grace, windows.retention
    segments = Segments(store, retention)
    interval = segments.interval
    closing = ClosingIndex(store, d) if final else None
    # observed: stream time as this step observes it; segments.newest: the latest window start
    # written — the store's own stream time in Kafka Streams, from which windows starting at or
    # before newest - retention are gone
    at = {"observed": ctx.stream_time, "loaded": False}

    def emit_closed(close: int) -> None:
        """Emit the windows ending before ``close`` not emitted yet, in start, key order."""
        assert closing is not None
        for start, kb in closing.take(close):
            row = get(row_key(start // interval, kb))
            for w in () if row is None else row[STATE]:
                if w[START] == start:
                    if down is not None:
                        forward_at(ctx, down, Windowed(kde(kb), start, start + d), (present(w[AGG]), None),
                                   w[MAX_TS])
                    break

    def sliding_aggregate(k: Any, v: Any) -> None:
        if v is None or k is None:
            return  # null keys and values never reach a windowed aggregate
        if not at["loaded"]:
            at["loaded"] = True
            segments.load()
            if closing is not None:
                closing.load(segments.newest)
        m = ctx.msg
        seq = sequence.next(m)
        ts = m.timestamp()[1]
        observed = at["observed"]
        gone = segments.newest - retention  # windows starting at or before it are expired
        if ts > observed:
            observed = at["observed"] = ts
        close = observed - grace
        kb = key_bytes(k)
        late = ts + 1 + d <= close
        # a late record looks at all its key's rows: one marked with it or later says it is a replay
        rows = segments.rows(kb, gone + 1) if late else segments.rows(kb, max(ts - 2 * d, gone + 1), ts + 1)
        marks = [seen(row, m, seq) for _, _, row in rows]
        if None not in marks:  # else: a replay, applied already
            if late:
                late_record(ctx, name, ts, ts - d, ts, observed, grace)
            else:
                by_start = {w[START]: w for _, _, row in rows for w in row[STATE]}
                wins = [w for w in by_start.values() if w[START] > gone]
                out: list[tuple[list[Any], Any]] = []  # (window, old aggregate) in Kafka Streams' order
                created: list[int] = []

                def update(w: list[Any] | None, start: int, agg: Any, agg_ts: int | None) -> None:
                    """``updateWindowAndForward``: add the record to window ``start`` if it is still open."""
                    if start + d < close:
                        late_record(ctx, name, ts, start, start + d, observed, grace, whole=False)
                        return
                    old = present(agg) if want_old and w is not None else None
                    new_agg = add(agg, k, v, m.offset(), ts)
                    if check:
                        check_state(new_agg)
                    new_ts = ts if agg_ts is None else max(ts, agg_ts)
                    if w is None:
                        w = by_start[start] = [start, new_agg, new_ts]
                        created.append(start)
                    else:
                        w[AGG], w[MAX_TS] = new_agg, new_ts
                    out.append((w, old))

                def create(start: int, agg: Any, agg_ts: int) -> None:
                    """``createCurrentRecordRightWindow``: a copy of another window's aggregate."""
                    w = by_start[start] = [start, copy.deepcopy(agg), agg_ts]
                    created.append(start)
                    out.append((w, None))

                if ts < d:
                    process_early(wins, update, create)
                else:
                    process(wins, update, create)
                if out:
                    write(kb, rows, marks, by_start, [w[START] for w, _ in out], created, observed, m, seq)
                if not final and down is not None:
                    for w, old in out:
                        forward_at(ctx, down, Windowed(k, w[START], w[START] + d), (present(w[AGG]), old),
                                   w[MAX_TS])
        cut = segments.newest - retention + 1  # windows starting before it are expired
        if closing is not None:
            if closing.closes(close):
                emit_closed(close)
            cut = min(cut, closing.emitted - d)  # a window goes only once emitted
        segments.expire(cut)

    def write(kb: bytes, rows: list[Any], marks: list[Any], by_start: dict[int, list[Any]], changed: list[int],
              created: list[int], observed: int, m: Any, seq: int) -> None:
        """Write the rows of the segments of the windows ``changed`` (starts) of key ``kb``."""
        segments.note(max(changed))
        read = {seg: (rk, mark) for (seg, rk, _), mark in zip(rows, marks)}
        for seg in sorted({start // interval for start in changed}):
            rk, mark = read.get(seg) or (row_key(seg, kb), seen(None, m, seq))
            kept = sorted((w for w in by_start.values() if w[START] // interval == seg), key=lambda w: w[START])
            put(rk, row_of(mark, kept, observed))
        if closing is not None:
            for start in created:
                closing.add(start, kb)

    def process(wins: list[list[Any]], update: Any, create: Any) -> None:
        """Kafka Streams' ``processReverse``: the key's windows from the latest start back."""
        m = ctx.msg
        ts = m.timestamp()[1]
        starts: set[int] = set()
        left = right = None
        left_done = right_done = False
        previous = None
        for w in sorted((w for w in wins if max(0, ts - 2 * d) <= w[START] <= ts + 1), key=lambda w: -w[START]):
            start = w[START]
            starts.add(start)
            end = start + d
            if start == ts + 1:
                right_done = True
            elif end > ts:
                if right is None:
                    right = (copy.deepcopy(w[AGG]), w[MAX_TS])
                update(w, start, w[AGG], w[MAX_TS])
            elif end == ts:
                left_done = True
                max_ts = w[MAX_TS]
                update(w, start, w[AGG], max_ts)
                if max_ts >= ts:
                    return
                previous = max_ts
            else:
                left = (copy.deepcopy(w[AGG]), w[MAX_TS])
                previous = w[MAX_TS]
                break
        # createWindows: the previous record's right window, this record's left, then its right
        if previous is not None and previous + 1 not in starts and previous + 1 + d >= ts:
            update(None, previous + 1, initial(), ts)
        if not left_done:
            agg = left[0] if previous is not None and ts - d <= previous and left is not None else initial()
            update(None, ts - d, agg, ts)
        if not right_done and right is not None and right[1] > ts:
            create(ts + 1, right[0], right[1])

    def process_early(wins: list[list[Any]], update: Any, create: Any) -> None:
        """Kafka Streams' ``processEarly``: records before ``d`` share the window ``[0, d]``."""
        ts = ctx.msg.timestamp()[1]
        combined = right = None
        right_done = False
        starts: set[int] = set()
        previous = None
        for w in sorted((w for w in wins if w[START] <= ts + 1), key=lambda w: w[START]):
            start = w[START]
            starts.add(start)
            if start == 0:
                combined = w
                if w[MAX_TS] < ts:
                    previous = w[MAX_TS]
            elif start <= ts:
                right = (copy.deepcopy(w[AGG]), w[MAX_TS])
                update(w, start, w[AGG], w[MAX_TS])
            else:  # start == ts + 1
                right_done = True
        if right is None and combined is not None and combined[MAX_TS] > ts:
            right = (copy.deepcopy(combined[AGG]), combined[MAX_TS])
        if not right_done and right is not None and right[1] > ts:
            create(ts + 1, right[0], right[1])
        if previous is not None and previous + 1 not in starts:
            update(None, previous + 1, initial(), ts)
        if combined is None:
            update(None, 0, initial(), ts)
        else:
            update(combined, 0, combined[AGG], combined[MAX_TS])

    return sliding_aggregate
