"""Compilers of the table and stream–table join node kinds (aggregations: :mod:`.aggregate`).

Table processors forward changes ``(key, (new, old))``. Each table node also
has a *value getter* ``get(key) -> value | None`` (Kafka Streams'
``KTableValueGetter``), so a join or a lookup reads a derived table without
materializing it again, and a *row getter* ``get(key) -> (value, timestamp) |
None`` (Kafka Streams' ``ValueAndTimestamp``) for the table–table joins, which
stamp their output with the later of the two rows' times. A source table's
rows keep the time of the record that set them.
"""

from __future__ import annotations

from typing import Any, Callable

from streamlet.errors import TopologyError
from streamlet.topology.chain import Forward, fan_out
from streamlet.topology.compilation import Compilation
from streamlet.topology.context import TaskContext
from streamlet.topology.graph import Node
from streamlet.topology.kinds import KINDS, resolve

Getter = Callable[[Any], Any]
#: ``get(key) -> (value, timestamp) | None``
RowGetter = Callable[[Any], Any]


class TableKeyError(ValueError):
    """A table record without a key."""


def getter_of(comp: Compilation, name: str) -> Getter:
    """The value getter of table node ``name`` (its kind's ``lookup``)."""
    return _compiled_lookup(comp, name, "lookup")


def row_getter_of(comp: Compilation, name: str) -> RowGetter:
    """The row getter of table node ``name`` (its kind's ``row_lookup``)."""
    return _compiled_lookup(comp, name, "row_lookup")


def _compiled_lookup(comp: Compilation, name: str, which: str) -> Any:
    node = comp.topology.nodes[name]
    ref = getattr(KINDS[node.kind], which)
    if ref is None:
        raise TopologyError(f"{name} ({node.kind}) is not a table that can be looked up")
    return resolve(ref)(node, comp.ctx, comp)


def stored_row_getters(ctx: TaskContext, store: str, key_serde: Any) -> tuple[Getter, RowGetter]:
    """The value and row getters of a table whose store holds timestamped rows."""
    get, kser = ctx.stores[store].get, key_serde.serialize

    def get_value(k: Any) -> Any:
        row = get(kser(k))
        return None if row is None else row[0]

    return get_value, lambda k: get(kser(k))


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
        if v is not None:
            put(kb, (v, m.timestamp()[1]))
            if old is not None:
                old = old[0]
        elif old is not None:
            old = old[0]
            put(kb, None)
        down(k, (v, old))  # a tombstone for a key not held is forwarded too, as in Kafka Streams

    return table_source


def table_source_lookup(node: Node, ctx: TaskContext, comp: Compilation) -> Getter:
    return stored_row_getters(ctx, node.params["store"], node.params["key_serde"])[0]


def table_source_row(node: Node, ctx: TaskContext, comp: Compilation) -> RowGetter:
    return stored_row_getters(ctx, node.params["store"], node.params["key_serde"])[1]


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


def table_filter_row(node: Node, ctx: TaskContext, comp: Compilation) -> RowGetter:
    parent = row_getter_of(comp, node.parents[0])
    pred, negate = node.fn, bool(node.params.get("negate"))

    def get(k: Any) -> Any:
        row = parent(k)
        return row if row is not None and bool(pred(k, row[0])) != negate else None

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


def table_map_values_row(node: Node, ctx: TaskContext, comp: Compilation) -> RowGetter:
    parent, fn = row_getter_of(comp, node.parents[0]), node.fn

    def get(k: Any) -> Any:
        row = parent(k)
        if row is None:
            return None
        v = fn(row[0])
        return None if v is None else (v, row[1])

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
