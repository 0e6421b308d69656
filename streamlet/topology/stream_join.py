"""Stream–stream windowed joins (Kafka Streams' ``KStreamKStreamJoin``, KIP-633 grace, the KAFKA-10847
fix): each side buffers its records; a record joins the other side's buffered records of its key
within the window; unmatched left (left join) / either side (outer join) results wait in a shared
buffer and are emitted once their window has closed, never eagerly.

A join is three nodes: one per side (``stream_join``) and their merge (``stream_join_merge``, which
owns the shared outer buffer). A record of one side, at time ``ts``, with ``T`` the join's stream time
(the largest timestamp of the records that reached either side, this one included; after a restart it
starts from the task's committed stream time):

1. a null key or value is dropped (a null key with a value, on an outer side, is emitted at once
   joined with ``None``, as Kafka Streams 3.7+ does);
2. if ``ts == T`` (it is not out of order): the unmatched records whose window has closed — a left
   one at ``t`` once ``t + after + grace < T``, a right one once ``t + before + grace < T`` — are
   emitted first, oldest first, each at its own timestamp, joined with ``None``;
3. it joins every buffered record of the other side with the same key within the window (a left
   record at ``ts``: right records in ``[ts - before, ts + after]``), at the larger of both
   timestamps; each match is no longer unmatched;
4. unmatched, on an outer side: emitted at once if its window has already passed (``ts + after < T``),
   else kept in the shared buffer;
5. it is buffered on its side (not if older than that side's latest timestamp − (before + after + grace)).

Buffers: :mod:`streamlet.topology.join_buffer`.
"""

from __future__ import annotations

import logging
from typing import Any

from streamlet.record import RecordMessage
from streamlet.topology.chain import Forward, fan_out
from streamlet.topology.compilation import Compilation
from streamlet.topology.context import TaskContext
from streamlet.topology.graph import Node
from streamlet.topology.join_buffer import LEFT, RIGHT, Marker, OuterBuffer, WindowBuffer
from streamlet.topology.origin import input_message

log = logging.getLogger("streamlet.join")

HOW = ("inner", "left", "outer")


def _buffers(node: Node, ctx: TaskContext, comp: Compilation) -> dict[str, Any]:
    """The buffers of the join of ``node`` in this task, made once for both sides (from the stores,
    which hold what was committed or restored)."""
    p = node.params

    def make() -> dict[str, Any]:
        retention = p["before"] + p["after"] + p["grace"]
        left_de, right_de = p["left_value_serde"].deserialize, p["right_value_serde"].deserialize
        out: dict[str, Any] = {
            "left": WindowBuffer(ctx.stores[p["left_store"]], retention, left_de),
            "right": WindowBuffer(ctx.stores[p["right_store"]], retention, right_de),
            "outer": None,
            # Kafka Streams' shared time tracker: the join's stream time, the largest timestamp of the
            # records that reached either side (one filtered out upstream closes no window), from the
            # task's committed stream time after a restart; and its minTime (None: Long.MAX_VALUE)
            "time": ctx.stream_time,
            "min_time": None,
        }
        if p["outer_store"] is not None:
            out["outer"] = OuterBuffer(ctx.stores[p["outer_store"]], p["key_serde"].deserialize,
                                       {LEFT: left_de, RIGHT: right_de})
        return out

    return comp.shared(("stream_join", p["join"]), make)  # type: ignore[no-any-return]


def stream_join(node: Node, ctx: TaskContext, downs: list[Forward], comp: Compilation) -> Forward:
    """One side of a stream–stream join (see the module for the steps)."""
    p = node.params
    left_side = p["side"] == "left"
    bufs = _buffers(node, ctx, comp)
    this, other, outer = (bufs["left"], bufs["right"], bufs["outer"]) if left_side else (
        bufs["right"], bufs["left"], bufs["outer"])
    this_side, other_side = (LEFT, RIGHT) if left_side else (RIGHT, LEFT)
    before, after, grace = (p["before"], p["after"], p["grace"]) if left_side else (
        p["after"], p["before"], p["grace"])
    # how long after its timestamp a left / right record's window stays open
    left_wait, right_wait = p["after"] + grace, p["before"] + grace
    user_joiner, down = node.fn, fan_out(downs)
    joiner = user_joiner if left_side else (lambda mine, theirs: user_joiner(theirs, mine))
    this_outer = p["how"] == "outer" or (p["how"] == "left" and left_side)
    kser = p["key_serde"].serialize
    same_key_bytes = comp.same_key_bytes(node.name, p["key_serde"])
    vser = p["value_serde"].serialize
    mark = Marker()

    def forward_at(m: Any, kb: bytes | None, ts: int, k: Any, value: Any) -> None:
        ctx.msg = RecordMessage(m.topic(), m.partition(), m.offset(), ts, m.headers(), kb, None,
                                parent=input_message(m))
        try:
            down(k, value)
        finally:
            ctx.msg = m

    def emit_closed(m: Any, now: int) -> None:
        # Kafka Streams' time tracker: look only when its low mark says a window may have closed
        low = bufs["min_time"]
        if low is not None and low + after + grace >= now:
            return
        closed, bufs["min_time"] = outer.take_closed(now - left_wait, now - right_wait)
        for side, (ts, kb, _, k, v) in closed:
            forward_at(m, kb, ts, k, user_joiner(v, None) if side == LEFT else user_joiner(None, v))

    def stream_join(k: Any, v: Any) -> None:
        m = ctx.msg
        ts = m.timestamp()[1]
        if ts < 0:
            return  # no timestamp (Kafka Streams' timestamp extractors never let one through)
        now = bufs["time"]
        if ts > now:
            bufs["time"] = now = ts
        if k is None or v is None:
            if this_outer and k is None and v is not None:
                down(k, joiner(v, None))
            return
        if outer is not None and ts == now:
            emit_closed(m, now)
        kb = m.key() if same_key_bytes else kser(k)
        # Kafka Streams clamps the window at 0 (a negative after can make it reach back to time 0)
        hi = ts + after
        matches = other.fetch(kb, ts - before, hi if hi > 0 else 0)
        for ots, omark, ov in matches:
            if outer is not None:
                outer.remove(other_side, ots, kb, omark)
            if ots > ts:
                forward_at(m, kb, ots, k, joiner(v, ov))
            else:
                down(k, joiner(v, ov))
        vb = vser(v)
        mk = mark(m)
        if not matches and this_outer:
            if (hi if hi > 0 else 0) < now:
                down(k, joiner(v, None))
            else:
                outer.add(this_side, ts, kb, mk, k, v, vb)
                low = bufs["min_time"]
                if low is None or ts < low:
                    bufs["min_time"] = ts
        this.add(kb, ts, mk, v, vb)

    return stream_join


def stream_join_merge(node: Node, ctx: TaskContext, downs: list[Forward], comp: Compilation) -> Forward:
    """The joined stream: both sides' results go on as they come."""
    return fan_out(downs)

