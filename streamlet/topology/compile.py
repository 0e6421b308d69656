"""Compile a :class:`Topology` into one function per source topic for one task.

Each node becomes a closure that calls its children directly (see
:mod:`streamlet.topology.chain`); the node kind's descriptor
(:mod:`streamlet.topology.kinds`) names the function that builds it. The
stateless part of each chain, and the aggregations and joins in it, are
then written out as one generated function (:mod:`streamlet.topology.codegen`).
"""

from __future__ import annotations

from streamlet.topology import codegen
from streamlet.topology.chain import DeserializationFailure, Forward, RunFailure, SourceFn, fan_out
from streamlet.topology.compilation import Compilation, reuses_key_bytes, writes_repartition
from streamlet.topology.context import TaskContext
from streamlet.topology.graph import Topology
from streamlet.topology.kinds import KINDS, resolve

__all__ = ["Compilation", "DeserializationFailure", "Forward", "RunFailure", "SourceFn", "compile_task",
           "fan_out", "load_compilers", "reuses_key_bytes", "writes_repartition"]


def load_compilers() -> None:
    """Import every node kind's compiler and generator now rather than when the first task is
    compiled (a worker calls it before its first assignment: the imports take ~20 ms)."""
    for kind in KINDS.values():
        for ref in (kind.compile, kind.generate, kind.lookup):
            if ref is not None:
                resolve(ref)


def compile_task(topology: Topology, ctx: TaskContext, topics: list[str]) -> dict[str, SourceFn]:
    """Source topic → ``fn(message)`` that runs the whole chain for that message."""
    comp = Compilation(topology, ctx)
    out: dict[str, SourceFn] = {}
    for topic in topics:
        node = topology.source_node(topic)
        if codegen.enabled:
            out[topic] = codegen.generate_source(comp, node)
        else:
            out[topic] = comp.forward_of(node.name)  # type: ignore[assignment]
    return out
