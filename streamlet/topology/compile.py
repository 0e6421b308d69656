"""Compile a :class:`Topology` into one function per source topic for one task.

Each node becomes a closure that calls its children directly: no graph walk,
no dispatch and no allocation per record (EXAMPLES.md, "compile once").
Values are not copied where the graph branches: user functions must not
mutate a value they receive in place.
"""

from __future__ import annotations

from typing import Any, Callable

from streamlet.errors import TopologyError
from streamlet.serde.base import same_bytes
from streamlet.topology.context import TaskContext
from streamlet.topology.graph import Node, Topology

Forward = Callable[[Any, Any], None]
SourceFn = Callable[[Any], None]
NodeCompiler = Callable[[Node, TaskContext, list[Forward], "Compilation"], Forward]

COMPILERS: dict[str, NodeCompiler] = {}

#: Node kinds that leave the key as it came from the source.
KEY_PRESERVING = {"filter", "map_values", "flat_map_values", "peek", "split", "branch", "merge", "sink",
                  "table_source", "table_filter", "table_map_values", "to_stream", "aggregate",
                  "table_aggregate", "stream_table_join"}


class DeserializationFailure(Exception):
    """Raised by a source when the key or value bytes cannot be deserialized."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


class RunFailure(Exception):
    """Raised by a generated run function (``fn.run``) when processing record ``msg`` failed.

    ``stage`` is ``"deserialize"`` or ``"process"``; ``cause`` the original exception.
    """

    def __init__(self, msg: Any, cause: BaseException, stage: str) -> None:
        super().__init__(str(cause))
        self.msg = msg
        self.cause = cause
        self.stage = stage


def compiler(*kinds: str) -> Callable[[NodeCompiler], NodeCompiler]:
    """Register the compiler of one or more node kinds."""

    def register(fn: NodeCompiler) -> NodeCompiler:
        for kind in kinds:
            COMPILERS[kind] = fn
        return fn

    return register


class Compilation:
    """Compiles the nodes of one sub-topology for one task, each node once."""

    def __init__(self, topology: Topology, ctx: TaskContext) -> None:
        self.topology = topology
        self.ctx = ctx
        self._done: dict[str, Forward] = {}

    def forward_of(self, name: str) -> Forward:
        fn = self._done.get(name)
        if fn is None:
            node = self.topology.nodes[name]
            downs = [self.forward_of(child) for child in self.topology.children[name]]
            make = COMPILERS.get(node.kind)
            if make is None:
                raise TopologyError(f"no compiler for node kind {node.kind!r} ({name})")
            fn = make(node, self.ctx, downs, self)
            self._done[name] = fn
        return fn

    def key_preserved_to(self, name: str) -> bool:
        """True when every path from a source to ``name`` keeps the source key untouched."""
        nodes = self.topology.nodes
        stack, seen = [name], set()
        while stack:
            n = stack.pop()
            if n in seen:
                continue
            seen.add(n)
            node = nodes[n]
            if node.kind == "source":
                continue
            if node.kind not in KEY_PRESERVING:
                return False
            stack.extend(node.parents)
        return True

    def sources_of(self, name: str) -> list[Node]:
        nodes = self.topology.nodes
        out, stack, seen = [], [name], set()
        while stack:
            n = stack.pop()
            if n in seen:
                continue
            seen.add(n)
            if nodes[n].kind == "source":
                out.append(nodes[n])
            stack.extend(nodes[n].parents)
        return out


def fan_out(downs: list[Forward]) -> Forward:
    """One forward that calls every child in order."""
    if not downs:
        return lambda k, v: None
    if len(downs) == 1:
        return downs[0]
    if len(downs) == 2:
        a, b = downs

        def two(k: Any, v: Any) -> None:
            a(k, v)
            b(k, v)

        return two
    children = tuple(downs)

    def many(k: Any, v: Any) -> None:
        for d in children:
            d(k, v)

    return many


def reuses_key_bytes(comp: Compilation, sink: Node) -> bool:
    """True when ``sink`` can write the input key bytes as they came: every path from a source
    keeps the key, and every source reading it has the sink's key serde."""
    serde = sink.params["key_serde"]
    return comp.key_preserved_to(sink.name) and all(
        same_bytes(s.params["key_serde"], serde) for s in comp.sources_of(sink.name)
    )


def writes_repartition(comp: Compilation, sink: Node) -> bool:
    """True when ``sink`` writes a repartition topic (its records carry their origin)."""
    internal = comp.topology.internal_topics.get(sink.params["topic"])
    return internal is not None and internal.kind == "repartition"


def load_compilers() -> None:
    """Import the node compilers now rather than when the first task is compiled (a worker
    calls it before its first assignment: the imports take ~20 ms)."""
    from streamlet.topology import codegen, operators, stateful  # noqa: F401


def compile_task(topology: Topology, ctx: TaskContext, topics: list[str]) -> dict[str, SourceFn]:
    """Source topic → ``fn(message)`` that runs the whole chain for that message.

    The stateless part of each chain is generated as one function
    (:mod:`streamlet.topology.codegen`); other nodes run as their closures.
    """
    from streamlet.topology import codegen, operators, stateful  # noqa: F401  (register the compilers)

    comp = Compilation(topology, ctx)
    out: dict[str, SourceFn] = {}
    for topic in topics:
        node = topology.source_node(topic)
        if codegen.enabled:
            out[topic] = codegen.generate_source(comp, node)
        else:
            out[topic] = comp.forward_of(node.name)  # type: ignore[assignment]
    return out
