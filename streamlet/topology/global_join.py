"""Stream–global-table join (Kafka Streams' ``KStreamGlobalKTableJoin``).

Each stream record looks up the global table's row of ``key_selector(key,
value)`` (default: the record's key) in the process's copy of the whole
table (``ctx.global_stores``): no repartition, no co-partitioning. The output
keeps the stream's key and the record's metadata (its timestamp). Like Kafka
Streams:

* a record without a value is dropped (nothing to join);
* inner join: a ``None`` lookup key or no row drops the record;
* left join: ``joiner(value, None)`` for a ``None`` lookup key or no row.

Later changes of the global table emit nothing.
"""

from __future__ import annotations

from typing import Any

from streamlet.errors import TopologyError
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
