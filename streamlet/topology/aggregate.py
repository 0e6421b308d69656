"""Compilers of the aggregation node kinds (Kafka Streams' ``KStreamAggregate`` / ``KTableAggregate``).

An aggregation keeps one row per key in its store (:mod:`streamlet.state.row`):
the state the spec folds records into, the replay mark of the last input
record it applied (a replayed record, at or below it, changes nothing; see
:mod:`streamlet.topology.origin`) and the largest record timestamp the
aggregate has seen. Each change is forwarded as ``(new, old)`` stamped with
that timestamp, as Kafka Streams does (a record arriving out of order does
not move an aggregate's time back). The generated chain writes the same
steps inline (:mod:`streamlet.topology.codegen_stateful`) from the ``plan``
the stream compiler attaches.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Callable

from streamlet.errors import TopologyError
from streamlet.state.row import MARK, STATE, aggregate_row, applied, repartitioned_row, row_timestamp
from streamlet.topology.aggregation import check_state
from streamlet.topology.chain import Forward, fan_out
from streamlet.topology.compilation import Compilation
from streamlet.topology.context import TaskContext
from streamlet.topology.graph import Node
from streamlet.topology.origin import InputSequence, input_message, read_origin
from streamlet.topology.stateful import Getter, needs_old
from streamlet.topology.timestamps import with_timestamp


def forward_at(ctx: TaskContext, down: Forward, k: Any, change: Any, ts: int) -> None:
    """``down(k, change)`` as a record stamped ``ts`` (the aggregate's time) rather than the input's."""
    m = ctx.msg
    if m.timestamp()[1] == ts:
        down(k, change)
        return
    ctx.msg = with_timestamp(m, ts)
    try:
        down(k, change)
    finally:
        ctx.msg = m


def _same_key_bytes(node: Node, comp: Compilation) -> bool:
    """Whether the input message's key bytes are the store key (key and key serde unchanged)."""
    return comp.same_key_bytes(node.name, comp.topology.stores[node.params["store"]].key_serde)


def key_bytes_of(node: Node, ctx: TaskContext, comp: Compilation) -> Callable[[Any], bytes]:
    """The store key bytes of a record key: the input's own bytes when the key and its serde are unchanged."""
    if _same_key_bytes(node, comp):
        return lambda k: ctx.msg.key()
    return comp.topology.stores[node.params["store"]].key_serde.serialize  # type: ignore[no-any-return]


def _compile(node: Node, ctx: TaskContext, downs: list[Forward], comp: Compilation, table: bool) -> Forward:
    spec = node.params["spec"]
    cache = ctx.stores[node.params["store"]]
    get, put = cache.get, cache.put
    initial, add, sub, result = spec.initial, spec.add, spec.subtract, spec.result
    check = spec.check_serializable
    present = result or (lambda s: s)
    want_old = needs_old(comp, node.name)
    key_bytes = key_bytes_of(node, ctx, comp)
    down = fan_out(downs)
    if table and sub is None:
        raise TopologyError(f"aggregation {node.name!r} on a table needs a subtractor")
    sequence = InputSequence()

    def fold(state: Any, k: Any, v: Any, offset: int, ts: int) -> Any:
        if table:
            sign, value = v
            if sign == "=":  # a row updated within this group: subtract its old value, add the new
                state = sub(state, k, value[1], offset, ts)
                value = value[0]
            state = (add if sign != "-" else sub)(state, k, value, offset, ts)
        else:
            state = add(state, k, v, offset, ts)
        if check:
            check_state(state)
        return state

    def aggregate(k: Any, v: Any) -> None:
        if v is None or k is None:
            return  # tombstones and key-less records are dropped (ksqlDB / Kafka Streams)
        m = ctx.msg
        seq = sequence.next(m)
        offset, ts = input_message(m).offset(), m.timestamp()[1]
        kb = key_bytes(k)
        cur = get(kb)
        if cur is None:
            state, old, row_ts = initial(), None, ts
        else:
            if applied(cur, offset, seq):
                return  # already applied: a replay after a crash must not count twice
            state, row_ts = cur[STATE], max(ts, row_timestamp(cur))
            old = present(state) if want_old else None
        state = fold(state, k, v, m.offset(), ts)
        put(kb, aggregate_row(offset, state, seq, row_ts))
        if downs:
            forward_at(ctx, down, k, (present(state), old), row_ts)

    def aggregate_repartitioned(k: Any, v: Any) -> None:
        if v is None or k is None:
            return
        m = ctx.msg
        seq = sequence.next(m)
        up_offset, up_seq, up_partition = read_origin(input_message(m))
        mark, ts = [up_offset, up_seq, seq], m.timestamp()[1]
        kb = key_bytes(k)
        cur = get(kb)
        if cur is None:
            marks, state, old, row_ts = {}, initial(), None, ts
        else:
            marks = cur[MARK]
            done = marks.get(up_partition)
            if done is not None and mark <= done:
                return  # the upstream task wrote this record again after a crash
            state, row_ts = cur[STATE], max(ts, row_timestamp(cur))
            old = present(state) if want_old else None
        state = fold(state, k, v, m.offset(), ts)
        marks[up_partition] = mark
        put(kb, repartitioned_row(marks, state, row_ts))
        if downs:
            forward_at(ctx, down, k, (present(state), old), row_ts)

    repartitioned = comp.reads_repartition(node.name)
    chosen = aggregate_repartitioned if repartitioned else aggregate
    if not table:
        # what codegen_stateful needs to write these steps inline into the generated chain: named
        # aggregators column by column (the Aggregation's own add), any other spec through its add;
        # a state check after each add (user aggregators) rules out the in-place column updates
        aggregation = spec.aggregation if not check else None
        values, dirty = cache.hot_path()
        chosen.plan = SimpleNamespace(  # type: ignore[attr-defined]
            values=values, dirty=dirty, get=get, initial=initial, present=present, aggregation=aggregation,
            add=aggregation.add if aggregation is not None else add,
            check=check_state if check else None,
            uses_ts=aggregation.uses_timestamp if aggregation is not None else True,
            same_key=_same_key_bytes(node, comp),
            kser=comp.topology.stores[node.params["store"]].key_serde.serialize,
            want_old=want_old, down=down if downs else None, repartitioned=repartitioned)
    return chosen


def aggregate(node: Node, ctx: TaskContext, downs: list[Forward], comp: Compilation) -> Forward:
    """A stream aggregation (``group_by_key()`` / ``group_by(...)`` then count, reduce, aggregate)."""
    if len(comp.sources_of(node.name)) > 1:
        raise TopologyError(
            f"aggregation {node.name!r} reads several topics: its replay protection compares the "
            "offsets of one partition; repartition the merged stream first (.repartition())"
        )
    return _compile(node, ctx, downs, comp, table=False)


def table_aggregate(node: Node, ctx: TaskContext, downs: list[Forward], comp: Compilation) -> Forward:
    """A table aggregation (``table.group_by(...)`` then count, reduce, aggregate): adds and subtracts."""
    return _compile(node, ctx, downs, comp, table=True)


def aggregate_lookup(node: Node, ctx: TaskContext, comp: Compilation) -> Getter:
    get = ctx.stores[node.params["store"]].get
    kser = comp.topology.stores[node.params["store"]].key_serde.serialize
    present = node.params["spec"].present
    return lambda k: present(get(kser(k)))


def aggregate_lookup_row(node: Node, ctx: TaskContext, comp: Compilation) -> Any:
    """The aggregate of a key with the largest timestamp it has seen (its row getter)."""
    get = ctx.stores[node.params["store"]].get
    kser = comp.topology.stores[node.params["store"]].key_serde.serialize
    present = node.params["spec"].present

    def get_row(k: Any) -> Any:
        cur = get(kser(k))
        if cur is None:
            return None
        v = present(cur)
        return None if v is None else (v, row_timestamp(cur))

    return get_row
