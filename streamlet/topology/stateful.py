"""Compilers of the table, aggregation and stream–table join node kinds.

Table processors forward changes ``(key, (new, old))``. Each table node also
has a *value getter* ``get(key) -> value | None`` (Kafka Streams'
``KTableValueGetter``), so a join or a lookup reads a derived table without
materializing it again.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Callable

from streamlet.agg.aggregation import Aggregation
from streamlet.errors import TopologyError
from streamlet.serde.base import same_bytes
from streamlet.topology.aggregation import check_state
from streamlet.topology.compile import Compilation, Forward, compiler, fan_out
from streamlet.topology.context import TaskContext
from streamlet.topology.graph import Node
from streamlet.topology.origin import InputSequence, input_message, read_origin

Getter = Callable[[Any], Any]
GETTERS: dict[str, Callable[[Node, TaskContext, Compilation], Getter]] = {}

#: table kinds whose consumers need the old value of a change
_NEEDS_OLD = {"table_group_by"}
_PASSES_CHANGES = {"table_filter", "table_map_values"}


class TableKeyError(ValueError):
    """A table record without a key."""


def getter(*kinds: str) -> Callable[[Any], Any]:
    def register(fn: Any) -> Any:
        for kind in kinds:
            GETTERS[kind] = fn
        return fn

    return register


def getter_of(comp: Compilation, name: str) -> Getter:
    node = comp.topology.nodes[name]
    make = GETTERS.get(node.kind)
    if make is None:
        raise TopologyError(f"{name} ({node.kind}) is not a table that can be looked up")
    return make(node, comp.ctx, comp)


def needs_old(comp: Compilation, name: str) -> bool:
    """Whether a change's old value is used anywhere downstream of ``name``."""
    topo = comp.topology
    stack = list(topo.children[name])
    while stack:
        child = topo.nodes[stack.pop()]
        if child.kind in _NEEDS_OLD:
            return True
        if child.kind in _PASSES_CHANGES:
            stack.extend(topo.children[child.name])
    return False


# -- source tables ------------------------------------------------------------
@compiler("table_source")
def _table_source(node: Node, ctx: TaskContext, downs: list[Forward], comp: Compilation) -> Forward:
    cache = ctx.stores[node.params["store"]]
    get, put = cache.get, cache.put
    down = fan_out(downs)
    topic = node.params["topic"]
    next_offset = -1  # records below it are in the store already (read from its checkpoint)

    def table_source(k: Any, v: Any) -> None:
        nonlocal next_offset
        if k is None:
            raise TableKeyError(f"a record of table topic {topic!r} has no key; a table needs one")
        m = ctx.msg
        offset = m.offset()
        if offset < next_offset:
            return  # applied and forwarded before a crash: forwarding it again would differ
        if next_offset < 0:
            next_offset = cache.store.offsets().get(topic, 0)
            if offset < next_offset:
                return
        next_offset = offset + 1
        kb = m.key()
        old = get(kb)
        if v is not None or old is not None:
            put(kb, v)
        down(k, (v, old))  # a tombstone for a key not held is forwarded too, as in Kafka Streams

    return table_source


@getter("table_source")
def _table_source_get(node: Node, ctx: TaskContext, comp: Compilation) -> Getter:
    get = ctx.stores[node.params["store"]].get
    kser = node.params["key_serde"].serialize
    return lambda k: get(kser(k))


# -- stateless table operations -----------------------------------------------
@compiler("table_filter")
def _table_filter(node: Node, ctx: TaskContext, downs: list[Forward], comp: Compilation) -> Forward:
    pred, down, negate = node.fn, fan_out(downs), bool(node.params.get("negate"))

    def keep(k: Any, v: Any) -> Any:
        return v if v is not None and bool(pred(k, v)) != negate else None

    def table_filter(k: Any, change: Any) -> None:
        new, old = change
        new, old = keep(k, new), keep(k, old)
        if new is None and old is None:
            return
        down(k, (new, old))

    return table_filter


@getter("table_filter")
def _table_filter_get(node: Node, ctx: TaskContext, comp: Compilation) -> Getter:
    parent = getter_of(comp, node.parents[0])
    pred, negate = node.fn, bool(node.params.get("negate"))

    def get(k: Any) -> Any:
        v = parent(k)
        return v if v is not None and bool(pred(k, v)) != negate else None

    return get


@compiler("table_map_values")
def _table_map_values(node: Node, ctx: TaskContext, downs: list[Forward], comp: Compilation) -> Forward:
    fn, down = node.fn, fan_out(downs)

    def table_map_values(k: Any, change: Any) -> None:
        new, old = change
        down(k, (None if new is None else fn(new), None if old is None else fn(old)))

    return table_map_values


@getter("table_map_values")
def _table_map_values_get(node: Node, ctx: TaskContext, comp: Compilation) -> Getter:
    parent, fn = getter_of(comp, node.parents[0]), node.fn

    def get(k: Any) -> Any:
        v = parent(k)
        return None if v is None else fn(v)

    return get


@compiler("to_stream")
def _to_stream(node: Node, ctx: TaskContext, downs: list[Forward], comp: Compilation) -> Forward:
    down = fan_out(downs)

    def to_stream(k: Any, change: Any) -> None:
        down(k, change[0])

    return to_stream


@compiler("table_group_by")
def _table_group_by(node: Node, ctx: TaskContext, downs: list[Forward], comp: Compilation) -> Forward:
    fn, down = node.fn, fan_out(downs)

    def table_group_by(k: Any, change: Any) -> None:
        new, old = change
        old_key = None if old is None else fn(k, old)
        new_key = None if new is None else fn(k, new)
        if old_key is not None and old_key == new_key:
            down(new_key, ("=", (new, old)))  # stays in its group: one update, one result (KIP-904)
            return
        if old_key is not None:
            down(old_key, ("-", old))
        if new_key is not None:
            down(new_key, ("+", new))

    return table_group_by


@compiler("group_by")
def _group_by(node: Node, ctx: TaskContext, downs: list[Forward], comp: Compilation) -> Forward:
    fn, down = node.fn, fan_out(downs)

    def group_by(k: Any, v: Any) -> None:
        gk = fn(k, v)
        if gk is not None:  # a None group key drops the record (ksqlDB / Kafka Streams)
            down(gk, v)

    return group_by


# -- aggregations ---------------------------------------------------------------
def _same_key_bytes(node: Node, comp: Compilation) -> bool:
    """Whether the input message's key bytes are the store key (key and key serde unchanged)."""
    spec_key_serde = comp.topology.stores[node.params["store"]].key_serde
    return comp.key_preserved_to(node.name) and all(
        same_bytes(s.params["key_serde"], spec_key_serde) for s in comp.sources_of(node.name))


def _key_bytes(node: Node, ctx: TaskContext, comp: Compilation) -> Callable[[Any], bytes]:
    if _same_key_bytes(node, comp):
        return lambda k: ctx.msg.key()
    return comp.topology.stores[node.params["store"]].key_serde.serialize


def _reads_repartition(comp: Compilation, name: str) -> bool:
    internal = comp.topology.internal_topics
    return any(getattr(internal.get(src.params["topic"]), "kind", None) == "repartition"
               for src in comp.sources_of(name))


def _compile_aggregate(node: Node, ctx: TaskContext, downs: list[Forward], comp: Compilation,
                       table: bool) -> Forward:
    """The aggregation processor; stored rows are ``[mark, state, ...]`` (see :mod:`origin`)."""
    spec = node.params["spec"]
    cache = ctx.stores[node.params["store"]]
    get, put = cache.get, cache.put
    initial, add, sub, result = spec.initial, spec.add, spec.subtract, spec.result
    check = spec.check_serializable
    present = result or (lambda s: s)
    want_old = needs_old(comp, node.name)
    key_bytes = _key_bytes(node, ctx, comp)
    down = fan_out(downs)
    if table and sub is None:
        raise TopologyError(f"aggregation {node.name!r} on a table needs a subtractor")
    sequence = InputSequence()

    def fold(state: Any, k: Any, v: Any, m: Any) -> Any:
        if table:
            sign, value = v
            if sign == "=":  # a row updated within this group: subtract its old value, add the new
                state = sub(state, k, value[1], m.offset(), m.timestamp()[1])
                value = value[0]
            state = (add if sign != "-" else sub)(state, k, value, m.offset(), m.timestamp()[1])
        else:
            state = add(state, k, v, m.offset(), m.timestamp()[1])
        if check:
            check_state(state)
        return state

    def aggregate(k: Any, v: Any) -> None:
        # row: [offset, state, seq] -- the input offset and the n-th record made from it
        if v is None or k is None:
            return  # tombstones and key-less records are dropped (ksqlDB / Kafka Streams)
        m = ctx.msg
        seq = sequence.next(m)
        offset = input_message(m).offset()
        kb = key_bytes(k)
        cur = get(kb)
        if cur is None:
            state, old = initial(), None
        else:
            done = cur[0]
            if offset < done or (offset == done and seq <= cur[2]):
                return  # already applied: a replay after a crash must not count twice
            state = cur[1]
            old = present(state) if want_old else None
        state = fold(state, k, v, m)
        put(kb, [offset, state, seq])
        down(k, (present(state), old))

    def aggregate_repartitioned(k: Any, v: Any) -> None:
        # row: [{upstream partition: [offset, upstream seq, seq]}, state]
        if v is None or k is None:
            return
        m = ctx.msg
        seq = sequence.next(m)
        up_offset, up_seq, up_partition = read_origin(input_message(m))
        mark = [up_offset, up_seq, seq]
        kb = key_bytes(k)
        cur = get(kb)
        if cur is None:
            marks, state, old = {}, initial(), None
        else:
            marks = cur[0]
            done = marks.get(up_partition)
            if done is not None and mark <= done:
                return  # the upstream task wrote this record again after a crash
            state = cur[1]
            old = present(state) if want_old else None
        state = fold(state, k, v, m)
        marks[up_partition] = mark
        put(kb, [marks, state])
        down(k, (present(state), old))

    if _reads_repartition(comp, node.name):
        return aggregate_repartitioned
    aggregation = getattr(spec.initial, "__self__", None)
    if not table and not check and isinstance(aggregation, Aggregation):
        # named aggregators on a stream (the common case): what codegen_stateful needs to write
        # these steps inline into the generated chain, with the Aggregation's own add
        values, dirty = cache.hot_path()
        aggregate.plan = SimpleNamespace(  # type: ignore[attr-defined]
            values=values, dirty=dirty, get=get, initial=initial, add=aggregation.add, aggregation=aggregation,
            uses_ts=aggregation.uses_timestamp, same_key=_same_key_bytes(node, comp),
            kser=comp.topology.stores[node.params["store"]].key_serde.serialize, present=present,
            want_old=want_old, down=down if downs else None)
    return aggregate


@compiler("aggregate")
def _aggregate(node: Node, ctx: TaskContext, downs: list[Forward], comp: Compilation) -> Forward:
    if len(comp.sources_of(node.name)) > 1:
        raise TopologyError(
            f"aggregation {node.name!r} reads several topics: its replay protection compares the "
            "offsets of one partition; repartition the merged stream first (.repartition())"
        )
    return _compile_aggregate(node, ctx, downs, comp, table=False)


@compiler("table_aggregate")
def _table_aggregate(node: Node, ctx: TaskContext, downs: list[Forward], comp: Compilation) -> Forward:
    return _compile_aggregate(node, ctx, downs, comp, table=True)


@getter("aggregate", "table_aggregate")
def _aggregate_get(node: Node, ctx: TaskContext, comp: Compilation) -> Getter:
    get = ctx.stores[node.params["store"]].get
    kser = comp.topology.stores[node.params["store"]].key_serde.serialize
    present = node.params["spec"].present
    return lambda k: present(get(kser(k)))


# -- stream–table join ------------------------------------------------------------
@compiler("stream_table_join")
def _stream_table_join(node: Node, ctx: TaskContext, downs: list[Forward], comp: Compilation) -> Forward:
    lookup = getter_of(comp, node.params["table"])
    joiner, down, left = node.fn, fan_out(downs), bool(node.params.get("left"))

    def stream_table_join(k: Any, v: Any) -> None:
        if v is None:
            return  # Kafka Streams ignores stream records without a value
        if k is None:  # a left join calls the joiner with no row (Kafka Streams KIP-962); a join drops it
            if left:
                down(k, joiner(v, None))
            return
        tv = lookup(k)
        if tv is None:
            if left:
                down(k, joiner(v, None))
            return
        down(k, joiner(v, tv))

    return stream_table_join
