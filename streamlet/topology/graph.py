"""The topology as plain data: nodes, edges, sources, sinks, internal topics.

The DSL builds a :class:`Topology`; ``describe`` prints it; the runtime and
the TestDriver both compile it (``topology.compile``) into per-task chains.
Nothing here talks to Kafka.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from streamlet.errors import TopologyError
from streamlet.serde.context import KEY, VALUE, for_topic
from streamlet.state.row import value_of


@dataclass
class Node:
    """One processor. ``kind`` names the operation (``filter``, ``sink``, ...).

    ``fn`` is the user function; ``params`` holds the rest (topic, serdes,
    predicates, ...). ``parents`` are node names: data flows parent → node.
    """

    name: str
    kind: str
    parents: list[str] = field(default_factory=list)
    fn: Callable[..., Any] | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def label(self) -> str:
        p = self.params
        if self.kind == "source":
            return f"source: {p['topic']}"
        if self.kind == "sink":
            return f"sink: {p['topic']}"
        if self.kind == "branch":
            return f"branch {p['branch_name']}"
        fn = getattr(self.fn, "__name__", None)
        return f"{self.kind}({fn})" if fn and fn != "<lambda>" else self.kind


@dataclass
class InternalTopic:
    """A topic the application owns (repartition, changelog), created with Kafka Streams' settings
    for its kind (:data:`INTERNAL_TOPIC_CONFIG`) under the ones given in ``config``."""

    name: str
    kind: str  # "repartition" | "changelog"
    partitions: int | None = None  # None: same as the sub-topology's sources
    config: dict[str, str] = field(default_factory=dict)
    source_of: str | None = None  # the source topic whose partition count it copies

    def __post_init__(self) -> None:
        self.config = {**INTERNAL_TOPIC_CONFIG.get(self.kind, {}), **self.config}


#: Kafka Streams' internal topic settings (RepartitionTopicConfig, UnwindowedChangelogTopicConfig):
#: a changelog keeps the latest record per key; a repartition topic keeps records until the app has
#: committed past them and deletes them itself (runtime/purge.py), never by time
INTERNAL_TOPIC_CONFIG: dict[str, dict[str, str]] = {
    "repartition": {"cleanup.policy": "delete", "retention.ms": "-1", "segment.bytes": "52428800",
                    "message.timestamp.type": "CreateTime"},
    "changelog": {"cleanup.policy": "compact", "message.timestamp.type": "CreateTime"},
}


#: how much longer than its windows' retention a windowed changelog keeps records (Kafka Streams'
#: ``windowstore.changelog.additional.retention.ms``): time for a restore to read them
WINDOWED_CHANGELOG_EXTRA_MS = 24 * 3600 * 1000


def windowed_changelog(topic: str, retention_ms: int) -> InternalTopic:
    """The changelog of a window store: compacted, and deleted by time once its windows expired
    (Kafka Streams' ``WindowedChangelogTopicConfig``)."""
    return InternalTopic(topic, "changelog", config={
        "cleanup.policy": "compact,delete", "retention.ms": str(retention_ms + WINDOWED_CHANGELOG_EXTRA_MS)})


@dataclass
class StoreSpec:
    """A state store the topology needs: one instance per task (partition).

    ``changelog`` is the topic it is restored from: ``<app>-<name>-changelog``
    for stores the app writes, or the input topic itself for a source table
    (``source_table=True``: nothing extra is written). Keys are the key
    serde's bytes; ``value_serde`` encodes what the store holds. A serde that
    needs a context is kept bound to the changelog topic (``serde.context.for_topic``).
    """

    name: str
    kind: str  # "table" | "aggregate" | "window"
    key_serde: Any
    value_serde: Any
    changelog: str
    source_table: bool = False
    #: turns a stored value into what users see (aggregates keep offsets and states)
    present: Callable[[Any], Any] | None = None
    #: a window store's windows (``kind == "window"``): rows keyed by window start + key bytes
    windows: Any = None
    #: rows are ``(value, timestamp)`` (:class:`~streamlet.state.row.ValueAndTimestamp`): a table
    #: whose joins stamp their output with the later of two rows' times, as Kafka Streams does
    timestamped: bool = False

    def __post_init__(self) -> None:
        # a serde that needs a context is told the changelog topic, as in Kafka Streams
        self.key_serde = for_topic(self.key_serde, self.changelog, KEY)
        self.value_serde = for_topic(self.value_serde, self.changelog, VALUE)
        if self.timestamped and self.present is None:
            self.present = value_of  # users see the value, not its time


class Topology:
    """A directed graph of :class:`Node` objects, built by the DSL."""

    def __init__(self, application_id: str) -> None:
        self.application_id = application_id
        self.nodes: dict[str, Node] = {}
        self.children: dict[str, list[str]] = {}
        self.internal_topics: dict[str, InternalTopic] = {}
        self.stores: dict[str, StoreSpec] = {}
        #: global tables' stores (Kafka Streams' "Global Stores"): every partition of their topic on
        #: every worker, loaded from that topic by the runtime, outside tasks and the consumer group
        self.global_stores: dict[str, StoreSpec] = {}
        self._counter = 0

    # -- building -----------------------------------------------------------
    def add(self, kind: str, parents: list[str] | tuple[str, ...] = (), fn: Any = None,
            name: str | None = None, **params: Any) -> Node:
        self._counter += 1
        node_name = name or f"{kind.upper()}-{self._counter:04d}"
        if node_name in self.nodes:
            raise TopologyError(
                f"two processors are named {node_name!r}; give each stateful step a unique name="
            )
        node = Node(node_name, kind, list(parents), fn, params)
        self.nodes[node_name] = node
        self.children[node_name] = []
        for parent in parents:
            self.children[parent].append(node_name)
        return node

    def add_internal_topic(self, topic: InternalTopic) -> None:
        if topic.name in self.internal_topics:
            raise TopologyError(f"internal topic {topic.name!r} is declared twice; use distinct names")
        self.internal_topics[topic.name] = topic

    def add_store(self, spec: StoreSpec) -> StoreSpec:
        if spec.name in self.stores or spec.name in self.global_stores:
            raise TopologyError(
                f"two state stores are named {spec.name!r}; pass a distinct name= to each "
                "table / aggregation (it names the store and its changelog topic)"
            )
        self.stores[spec.name] = spec
        return spec

    def add_global_store(self, spec: StoreSpec) -> StoreSpec:
        """A global table's store; ``spec.changelog`` is its source topic (``source_table=True``)."""
        if spec.name in self.stores or spec.name in self.global_stores:
            raise TopologyError(
                f"two state stores are named {spec.name!r}; pass a distinct name= to each "
                "table / global table / aggregation"
            )
        self.global_stores[spec.name] = spec
        return spec

    def global_topics(self) -> list[str]:
        """The source topics of the global tables (read whole by every worker, not by tasks)."""
        return [spec.changelog for spec in self.global_stores.values()]

    def stores_of(self, group: list[str]) -> list[StoreSpec]:
        """Stores used by the nodes of one sub-topology."""
        names = {self.nodes[n].params.get("store") for n in group} - {None}
        return [self.stores[s] for s in self.stores if s in names]

    # -- reading ------------------------------------------------------------
    def sources(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.kind == "source"]

    def sinks(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.kind == "sink"]

    def source_topics(self) -> list[str]:
        """Topics read by the application, external and internal, in declaration order."""
        return list(dict.fromkeys(n.params["topic"] for n in self.sources()))

    def external_source_topics(self) -> list[str]:
        return [t for t in self.source_topics() if t not in self.internal_topics]

    def sink_topics(self) -> list[str]:
        return list(dict.fromkeys(n.params["topic"] for n in self.sinks()))

    def external_sink_topics(self) -> list[str]:
        return [t for t in self.sink_topics() if t not in self.internal_topics]

    def source_node(self, topic: str) -> Node:
        for n in self.sources():
            if n.params["topic"] == topic:
                return n
        raise TopologyError(f"no source reads topic {topic!r}; sources: {self.source_topics()}")

    def subtopologies(self) -> list[list[str]]:
        """Connected groups of nodes; topics (sinks → sources) separate them.

        As in Kafka Streams, a task runs one sub-topology for one partition;
        sources in the same group are co-partitioned and share the task.
        """
        links: dict[str, set[str]] = {n: set(self.children[n]) for n in self.nodes}
        for name, node in self.nodes.items():
            for other in list(node.parents) + list(node.params.get("peers", ())):
                links[name].add(other)
                links[other].add(name)
        seen: set[str] = set()
        groups: list[list[str]] = []
        for start in self.nodes:
            if start in seen:
                continue
            group: list[str] = []
            stack = [start]
            while stack:
                name = stack.pop()
                if name in seen:
                    continue
                seen.add(name)
                group.append(name)
                stack.extend(links[name])
            order = {n: i for i, n in enumerate(self.nodes)}
            groups.append(sorted(group, key=order.__getitem__))
        groups.sort(key=lambda g: list(self.nodes).index(g[0]))
        return groups

    def subtopology_of_topic(self) -> dict[str, int]:
        """Source topic → index of the sub-topology that reads it."""
        out: dict[str, int] = {}
        for i, group in enumerate(self.subtopologies()):
            for name in group:
                node = self.nodes[name]
                if node.kind == "source":
                    topic = node.params["topic"]
                    if topic in out and out[topic] != i:
                        raise TopologyError(f"topic {topic!r} is read by two sub-topologies")
                    out[topic] = i
        return out

    def topics_of_subtopology(self) -> dict[int, list[str]]:
        """Sub-topology index → the source topics one of its tasks reads together."""
        out: dict[int, list[str]] = {}
        for topic, sub in self.subtopology_of_topic().items():
            out.setdefault(sub, []).append(topic)
        return out

    def walk(self, start: str) -> Iterator[Node]:
        """Depth-first walk from ``start`` through its descendants (each node once)."""
        seen: set[str] = set()
        stack = [start]
        while stack:
            name = stack.pop()
            if name in seen:
                continue
            seen.add(name)
            yield self.nodes[name]
            stack.extend(reversed(self.children[name]))

    def validate(self) -> None:
        if not self.sources():
            raise TopologyError(
                f"application {self.application_id!r} has no sources: call app.stream(topic) first"
            )
