"""Every processor kind as data: what it does to the key, how often it forwards, what it stores,
and where it is compiled, generated and looked up.

The DSL, the compiler (:mod:`streamlet.topology.compile`), the code generator
(:mod:`streamlet.topology.codegen`) and the table lookups
(:mod:`streamlet.topology.stateful`) read these descriptors instead of keeping
lists of kinds of their own. A new node kind is one :class:`NodeKind` here
plus the functions it names (``"module:function"``, imported when first
used); see docs/architecture.md, "Adding a node kind".

A leaf module: it imports nothing from streamlet.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class NodeKind:
    """One processor kind.

    * ``keeps_key`` — the key leaves the node as it came in (a key-changing
      kind makes a later aggregation or join repartition);
    * ``single_output`` — each record that comes in goes on at most once (a
      ``flat_map`` may forward many);
    * ``key_aware`` — its code generator reports each use of the key, so the
      source need not decode a key no step reads;
    * ``table`` — it forwards table changes ``(new, old)``;
    * ``needs_old`` — it reads the old value of a change; ``passes_changes`` —
      it forwards changes on, so whether old values are needed depends on
      what follows;
    * ``store`` — the parameter that names the state store it owns;
    * ``joins`` — it looks rows of another table up (a join): its sub-topology's input topics
      must have equal partition counts;
    * ``reads_stream_time`` — it reads its task's stream time (windows, for instance): only the
      tasks of a sub-topology with such a node keep it (a ``process`` step given a Processor
      class reads it too: it may schedule stream-time punctuators);
    * ``compile`` — ``"module:function"`` building its closure
      ``(node, ctx, downs, compilation) -> forward(key, value)``;
    * ``generate`` — the same for straight-line code in the generated chain
      (``None``: the generated chain calls the closure);
    * ``lookup`` — for table kinds, the value getter ``get(key) -> value``
      used by joins (Kafka Streams' ``KTableValueGetter``);
    * ``row_lookup`` — the row getter ``get(key) -> (value, timestamp)``: the value with the time
      of the record that set it, for joins whose output takes the later row's time.
    """

    name: str
    compile: str
    generate: str | None = None
    lookup: str | None = None
    row_lookup: str | None = None
    keeps_key: bool = False
    single_output: bool = False
    key_aware: bool = False
    table: bool = False
    needs_old: bool = False
    passes_changes: bool = False
    store: str | None = None
    reads_stream_time: bool = False
    #: it reads another table of its sub-topology: the sources there must be co-partitioned
    joins: bool = False


_OPS = "streamlet.topology.operators"
_GEN = "streamlet.topology.codegen_nodes"
_TAB = "streamlet.topology.stateful"
_GEN_TAB = "streamlet.topology.codegen_stateful"
_AGG = "streamlet.topology.aggregate"
_JOIN = "streamlet.topology.table_join"
_SSJ = "streamlet.topology.stream_join"
_GLOBAL = "streamlet.topology.global_join"
_FK = "streamlet.topology.fk_join"

KINDS: dict[str, NodeKind] = {k.name: k for k in (
    # streams
    NodeKind("source", f"{_OPS}:source", keeps_key=True, single_output=True),
    NodeKind("filter", f"{_OPS}:filter_", f"{_GEN}:filter_", keeps_key=True, single_output=True,
             key_aware=True),
    NodeKind("map", f"{_OPS}:map_", f"{_GEN}:map_", single_output=True, key_aware=True),
    NodeKind("map_values", f"{_OPS}:map_values", f"{_GEN}:map_values", keeps_key=True, single_output=True,
             key_aware=True),
    NodeKind("select_key", f"{_OPS}:select_key", f"{_GEN}:select_key", single_output=True, key_aware=True),
    NodeKind("flat_map", f"{_OPS}:flat_map", f"{_GEN}:flat_map", key_aware=True),
    NodeKind("flat_map_values", f"{_OPS}:flat_map_values", f"{_GEN}:flat_map_values", keeps_key=True,
             key_aware=True),
    NodeKind("peek", f"{_OPS}:peek", f"{_GEN}:peek", keeps_key=True, single_output=True, key_aware=True),
    NodeKind("foreach", f"{_OPS}:peek", f"{_GEN}:peek", key_aware=True),
    NodeKind("process", f"{_OPS}:process"),
    NodeKind("merge", f"{_OPS}:pass_through", keeps_key=True),
    NodeKind("split", f"{_OPS}:split", f"{_GEN}:split", keeps_key=True, single_output=True, key_aware=True),
    NodeKind("branch", f"{_OPS}:pass_through", f"{_GEN}:branch", keeps_key=True, single_output=True,
             key_aware=True),
    NodeKind("sink", f"{_OPS}:sink", f"{_GEN}:sink", keeps_key=True, key_aware=True),
    NodeKind("group_by", f"{_TAB}:group_by", f"{_GEN}:group_by", single_output=True, key_aware=True),
    # tables
    NodeKind("table_source", f"{_TAB}:table_source", lookup=f"{_TAB}:table_source_lookup",
             row_lookup=f"{_TAB}:table_source_row", keeps_key=True,
             table=True, store="store"),
    # a filter reads the old value (a row that passed before and fails now becomes a tombstone)
    NodeKind("table_filter", f"{_TAB}:table_filter", lookup=f"{_TAB}:table_filter_lookup",
             row_lookup=f"{_TAB}:table_filter_row", keeps_key=True,
             table=True, needs_old=True, passes_changes=True),
    NodeKind("table_map_values", f"{_TAB}:table_map_values", lookup=f"{_TAB}:table_map_values_lookup",
             row_lookup=f"{_TAB}:table_map_values_row",
             keeps_key=True, table=True, passes_changes=True),
    NodeKind("to_stream", f"{_TAB}:to_stream", keeps_key=True),
    NodeKind("table_group_by", f"{_TAB}:table_group_by", needs_old=True),
    # aggregations and joins
    NodeKind("aggregate", f"{_AGG}:aggregate", f"{_GEN_TAB}:aggregate", lookup=f"{_AGG}:aggregate_lookup",
             row_lookup=f"{_AGG}:aggregate_lookup_row",
             keeps_key=True, key_aware=True, table=True, store="store"),
    NodeKind("table_aggregate", f"{_AGG}:table_aggregate", lookup=f"{_AGG}:aggregate_lookup",
             row_lookup=f"{_AGG}:aggregate_lookup_row", keeps_key=True,
             table=True, store="store"),
    # its key is the record key with its window (sl.Windowed): not the key that came in
    NodeKind("window_aggregate", "streamlet.topology.window_aggregate:window_aggregate",
             "streamlet.topology.codegen_window:window_aggregate", table=True, store="store",
             reads_stream_time=True),
    NodeKind("sliding_aggregate", "streamlet.topology.sliding_aggregate:sliding_aggregate", table=True,
             store="store", reads_stream_time=True),
    NodeKind("session_aggregate", "streamlet.topology.session_aggregate:session_aggregate", table=True,
             store="store", reads_stream_time=True),
    NodeKind("stream_table_join", f"{_TAB}:stream_table_join", f"{_GEN_TAB}:stream_table_join",
             keeps_key=True, key_aware=True, joins=True),
    NodeKind("table_join", f"{_JOIN}:table_join", keeps_key=True, table=True, passes_changes=True, joins=True),
    # looks a global table up by a key of its own: no co-partitioning (not ``joins``)
    NodeKind("stream_global_join", f"{_GLOBAL}:stream_global_join", f"{_GLOBAL}:generate_stream_global_join",
             keeps_key=True, single_output=True, key_aware=True),
    NodeKind("table_join_merge", f"{_JOIN}:table_join_merge", lookup=f"{_JOIN}:table_join_lookup",
             row_lookup=f"{_JOIN}:table_join_row",
             keeps_key=True, table=True, passes_changes=True),
    # foreign-key table–table join (KIP-213): see fk_join.py
    NodeKind("fk_subscription_send", f"{_FK}:fk_subscription_send", needs_old=True),
    NodeKind("fk_subscription_receive", f"{_FK}:fk_subscription_receive", store="store", joins=True),
    NodeKind("fk_foreign_join", f"{_FK}:fk_foreign_join", store="store"),
    NodeKind("fk_response_join", f"{_FK}:fk_response_join", lookup=f"{_FK}:fk_response_join_lookup",
             row_lookup=f"{_FK}:fk_response_join_row",
             keeps_key=True, table=True, store="store", joins=True),
    # stream–stream windowed joins: one node per side (owning its buffer), then their merge (owning the
    # shared buffer of unmatched records of a left / outer join)
    NodeKind("stream_join", f"{_SSJ}:stream_join", keeps_key=True, store="store", joins=True,
             reads_stream_time=True),
    NodeKind("stream_join_merge", f"{_SSJ}:stream_join_merge", keeps_key=True, store="store"),
)}

_RESOLVED: dict[str, Any] = {}


def kind_of(name: str) -> NodeKind:
    """The descriptor of node kind ``name``; a ``KeyError`` naming the known kinds otherwise."""
    try:
        return KINDS[name]
    except KeyError:
        raise KeyError(f"unknown node kind {name!r}; known: {sorted(KINDS)}") from None


def resolve(ref: str) -> Any:
    """The function a descriptor names (``"package.module:function"``), imported on first use."""
    fn = _RESOLVED.get(ref)
    if fn is None:
        module, _, attr = ref.partition(":")
        fn = _RESOLVED[ref] = getattr(importlib.import_module(module), attr)
    return fn
