"""Stream–global-table join (Kafka Streams' ``KStreamGlobalKTableJoin``).

Each stream record looks up the global table's row of ``key_selector(key,
value)`` (default: the record's key) in the process's copy of the whole
table (``ctx.global_stores``): no repartition, no co-partitioning. The output
keeps the stream's key and the record's metadata (its timestamp). Like Kafka
Streams:

* a record without a value is dropped (nothing to join);
* inner join: a ``None`` lookup key or no row drops the record;
* left join: ``joiner(value, None)`` for a ``None`` lookup key or no row.

Later changes of the global table emit nothing. :func:`generate_stream_global_join` writes the
same steps into the generated chain.
"""

from __future__ import annotations

from typing import Any

from streamlet.errors import TopologyError
from streamlet.state.caching import MISSING
from streamlet.topology.chain import Forward, fan_out
from streamlet.topology.compilation import Compilation
from streamlet.topology.context import TaskContext
from streamlet.topology.graph import Node


def stream_global_join(node: Node, ctx: TaskContext, downs: list[Forward], comp: Compilation) -> Forward:
    name = node.params["global_store"]
    spec = comp.topology.global_stores[name]
    cache = ctx.global_stores.get(name)
    if cache is None:
        raise TopologyError(f"global table store {name!r} is not open in this process (task {ctx.task_id})")
    get, kser = cache.get, spec.key_serde.serialize
    selector = node.params.get("key_selector")
    joiner, down, left = node.fn, fan_out(downs), bool(node.params.get("left"))

    def stream_global_join(k: Any, v: Any) -> None:
        if v is None:
            return  # Kafka Streams ignores stream records without a value
        lookup = k if selector is None else selector(k, v)
        row = None if lookup is None else get(kser(lookup))
        if row is not None:
            down(k, joiner(v, row))
        elif left:
            down(k, joiner(v, None))

    return stream_global_join


def generate_stream_global_join(w: Any, node: Node, k: str, v: str, depth: int) -> None:
    """The same steps inline in the generated chain: the cached row read straight from the global
    store cache's dict (a miss asks the cache), then the rest of the chain on the joined value."""
    name = node.params["global_store"]
    cache = w.comp.ctx.global_stores.get(name)
    if cache is None:
        raise TopologyError(f"global table store {name!r} is not open in this process (task {w.comp.ctx.task_id})")
    spec = w.comp.topology.global_stores[name]
    values = w.bind(cache.hot_path()[0], "global_values")
    get, missing = w.bind(cache.get, "global_get"), w.bind(MISSING, "MISSING")
    kser = w.bind(spec.key_serde.serialize, "global_kser")
    selector = node.params.get("key_selector")
    lk, gkb, row, vj = w.var("lk"), w.var("gkb"), w.var("row"), w.var("vj")
    w.key_used(k)
    w.emit(depth, f"if {v} is not None:  # global join {name}")
    d = depth + 1
    w.emit(d, f"{lk} = {k}" if selector is None else f"{lk} = {w.bind(selector, 'key_selector')}({k}, {v})")
    w.emit(d, f"{row} = None")
    w.emit(d, f"if {lk} is not None:")
    w.emit(d + 1, f"{gkb} = {kser}({lk})")
    w.emit(d + 1, f"{row} = {values}.get({gkb}, {missing})")
    w.emit(d + 1, f"if {row} is {missing}:")
    w.emit(d + 2, f"{row} = {get}({gkb})")
    if not node.params.get("left"):
        w.emit(d, f"if {row} is not None:")
        d += 1
    w.emit(d, f"{vj} = {w.bind(node.fn, 'joiner')}({v}, {row})")
    if w.subtree_empty(node.name):
        w.emit(d, "pass")
    w.children(node.name, k, vj, d)
