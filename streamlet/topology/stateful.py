"""Compilers of the table, aggregation and stream–table join node kinds.

Table processors forward changes ``(key, (new, old))``. Each table node also
has a *value getter* ``get(key) -> value | None`` (Kafka Streams'
``KTableValueGetter``), so a join or a lookup reads a derived table without
materializing it again.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Callable

from streamlet.errors import TopologyError
from streamlet.topology.aggregation import check_state
from streamlet.topology.chain import Forward, fan_out
from streamlet.topology.compilation import Compilation
from streamlet.topology.context import TaskContext
from streamlet.topology.graph import Node
from streamlet.topology.kinds import KINDS, resolve
from streamlet.topology.origin import InputSequence, input_message, read_origin

Getter = Callable[[Any], Any]


class TableKeyError(ValueError):
    """A table record without a key."""


def getter_of(comp: Compilation, name: str) -> Getter:
    """The value getter of table node ``name`` (its kind's ``lookup``)."""
    node = comp.topology.nodes[name]
    ref = KINDS[node.kind].lookup
    if ref is None:
        raise TopologyError(f"{name} ({node.kind}) is not a table that can be looked up")
    return resolve(ref)(node, comp.ctx, comp)  # type: ignore[no-any-return]


def needs_old(comp: Compilation, name: str) -> bool:
    """Whether a change's old value is used anywhere downstream of ``name``."""
    topo = comp.topology
    stack = list(topo.children[name])
    while stack:
        child = topo.nodes[stack.pop()]
        kind = KINDS[child.kind]
        if kind.needs_old:
            return True
        if kind.passes_changes:
            stack.extend(topo.children[child.name])
    return False


# -- source tables ------------------------------------------------------------
def table_source(node: Node, ctx: TaskContext, downs: list[Forward], comp: Compilation) -> Forward:
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


def table_source_lookup(node: Node, ctx: TaskContext, comp: Compilation) -> Getter:
    get = ctx.stores[node.params["store"]].get
    kser = node.params["key_serde"].serialize
    return lambda k: get(kser(k))


# -- stateless table operations -----------------------------------------------
def table_filter(node: Node, ctx: TaskContext, downs: list[Forward], comp: Compilation) -> Forward:
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


def table_filter_lookup(node: Node, ctx: TaskContext, comp: Compilation) -> Getter:
    parent = getter_of(comp, node.parents[0])
    pred, negate = node.fn, bool(node.params.get("negate"))

    def get(k: Any) -> Any:
        v = parent(k)
        return v if v is not None and bool(pred(k, v)) != negate else None

    return get


def table_map_values(node: Node, ctx: TaskContext, downs: list[Forward], comp: Compilation) -> Forward:
    fn, down = node.fn, fan_out(downs)

    def table_map_values(k: Any, change: Any) -> None:
        new, old = change
        down(k, (None if new is None else fn(new), None if old is None else fn(old)))

    return table_map_values


def table_map_values_lookup(node: Node, ctx: TaskContext, comp: Compilation) -> Getter:
    parent, fn = getter_of(comp, node.parents[0]), node.fn

    def get(k: Any) -> Any:
        v = parent(k)
        return None if v is None else fn(v)

    return get


def to_stream(node: Node, ctx: TaskContext, downs: list[Forward], comp: Compilation) -> Forward:
    down = fan_out(downs)

    def to_stream(k: Any, change: Any) -> None:
        down(k, change[0])

    return to_stream


def table_group_by(node: Node, ctx: TaskContext, downs: list[Forward], comp: Compilation) -> Forward:
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


def group_by(node: Node, ctx: TaskContext, downs: list[Forward], comp: Compilation) -> Forward:
    fn, down = node.fn, fan_out(downs)

    def group_by(k: Any, v: Any) -> None:
        gk = fn(k, v)
        if gk is not None:  # a None group key drops the record (ksqlDB / Kafka Streams)
            down(gk, v)

    return group_by


# -- aggregations ---------------------------------------------------------------
def _same_key_bytes(node: Node, comp: Compilation) -> bool:
    """Whether the input message's key bytes are the store key (key and key serde unchanged)."""
    return comp.same_key_bytes(node.name, comp.topology.stores[node.params["store"]].key_serde)


def _key_bytes(node: Node, ctx: TaskContext, comp: Compilation) -> Callable[[Any], bytes]:
    if _same_key_bytes(node, comp):
        return lambda k: ctx.msg.key()
    return comp.topology.stores[node.params["store"]].key_serde.serialize  # type: ignore[no-any-return]


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

    repartitioned = comp.reads_repartition(node.name)
    chosen = aggregate_repartitioned if repartitioned else aggregate
    if not table:
        # what codegen_stateful needs to write these steps inline into the generated chain: named
        # aggregators column by column (the Aggregation's own add), any other spec through its add
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
    return _compile_aggregate(node, ctx, downs, comp, table=False)


def table_aggregate(node: Node, ctx: TaskContext, downs: list[Forward], comp: Compilation) -> Forward:
    return _compile_aggregate(node, ctx, downs, comp, table=True)


def aggregate_lookup(node: Node, ctx: TaskContext, comp: Compilation) -> Getter:
    get = ctx.stores[node.params["store"]].get
    kser = comp.topology.stores[node.params["store"]].key_serde.serialize
    present = node.params["spec"].present
    return lambda k: present(get(kser(k)))


# -- stream–table join ------------------------------------------------------------
def stream_table_join(node: Node, ctx: TaskContext, downs: list[Forward], comp: Compilation) -> Forward:
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
