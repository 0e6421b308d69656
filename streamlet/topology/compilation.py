"""What compilers and generators of one task ask about the graph: :class:`Compilation`.

It compiles each node once (the node kind's ``compile`` function, see
:mod:`streamlet.topology.kinds`) and answers where keys come from, which
sources feed a node and whether records reach it at most once each.
"""

from __future__ import annotations

from typing import Any

from streamlet.errors import TopologyError
from streamlet.serde.base import same_bytes
from streamlet.topology.chain import Forward
from streamlet.topology.context import TaskContext
from streamlet.topology.graph import Node, Topology
from streamlet.topology.kinds import KINDS, resolve


class Compilation:
    """Compiles the nodes of one sub-topology for one task, each node once, and answers the
    questions compilers and generators ask about the graph."""

    def __init__(self, topology: Topology, ctx: TaskContext) -> None:
        self.topology = topology
        self.ctx = ctx
        self._done: dict[str, Forward] = {}
        self._shared: dict[Any, Any] = {}

    def forward_of(self, name: str) -> Forward:
        fn = self._done.get(name)
        if fn is None:
            node = self.topology.nodes[name]
            downs = [self.forward_of(child) for child in self.topology.children[name]]
            kind = KINDS.get(node.kind)
            if kind is None:
                raise TopologyError(f"no compiler for node kind {node.kind!r} ({name})")
            fn = resolve(kind.compile)(node, self.ctx, downs, self)
            self._done[name] = fn
        return fn

    def shared(self, key: Any, make: Any) -> Any:
        """State shared by several nodes of this task's chains (both sides of a stream–stream join):
        ``make()`` the first time ``key`` is asked for, the same object afterwards. It lives as long as
        the compiled chains (a task compiled again makes it again, from its stores)."""
        value = self._shared.get(key, self._shared)
        if value is self._shared:
            value = self._shared[key] = make()
        return value

    def upstream(self, name: str) -> list[Node]:
        """``name`` and every node before it, each once."""
        nodes = self.topology.nodes
        out, stack, seen = [], [name], set()
        while stack:
            n = stack.pop()
            if n in seen:
                continue
            seen.add(n)
            out.append(nodes[n])
            stack.extend(nodes[n].parents)
        return out

    def key_preserved_to(self, name: str) -> bool:
        """True when every path from a source to ``name`` keeps the source key untouched."""
        return all(KINDS[n.kind].keeps_key for n in self.upstream(name))

    def single_output_path(self, name: str) -> bool:
        """True when every record reaching ``name`` from its one source came on one path, each input
        record at most once (no ``flat_map``, no ``merge`` on the way)."""
        nodes = self.topology.nodes
        node = nodes[name]
        while node.parents:
            if len(node.parents) != 1:
                return False
            node = nodes[node.parents[0]]
            if not KINDS[node.kind].single_output:
                return False
        return True

    def sources_of(self, name: str) -> list[Node]:
        return [n for n in self.upstream(name) if n.kind == "source"]

    def same_key_bytes(self, name: str, serde: Any) -> bool:
        """True when the input message's key bytes are what ``serde`` would write for the key at
        ``name``: the key is unchanged and every source reading it has a serde writing the same bytes."""
        return self.key_preserved_to(name) and all(
            same_bytes(s.params["key_serde"], serde) for s in self.sources_of(name))

    def reads_repartition(self, name: str) -> bool:
        """True when a source of ``name`` reads a repartition topic (its records carry their origin)."""
        internal = self.topology.internal_topics
        return any(getattr(internal.get(src.params["topic"]), "kind", None) == "repartition"
                   for src in self.sources_of(name))


def reuses_key_bytes(comp: Compilation, sink: Node) -> bool:
    """True when ``sink`` can write the input key bytes as they came."""
    return comp.same_key_bytes(sink.name, sink.params["key_serde"])


def writes_repartition(comp: Compilation, sink: Node) -> bool:
    """True when ``sink`` writes a repartition topic (its records carry their origin)."""
    internal = comp.topology.internal_topics.get(sink.params["topic"])
    return internal is not None and internal.kind == "repartition"
