"""Start-up check of the topics a topology reads and writes; creates internal topics."""

from __future__ import annotations

import logging

from streamlet.broker.admin import TopicAdmin
from streamlet.config import Config
from streamlet.errors import ConfigError
from streamlet.topology.graph import Topology
from streamlet.topology.kinds import KINDS

log = logging.getLogger("streamlet.topics")


def _owner_group(topology: Topology, topic: str) -> list[str]:
    """The sub-topology that writes an internal topic (repartition sink, or the store's user)."""
    internal = topology.internal_topics[topic]
    groups = topology.subtopologies()
    for group in groups:
        for name in group:
            node = topology.nodes[name]
            if internal.kind == "repartition" and node.kind == "sink" and node.params["topic"] == topic:
                return group
            store = node.params.get("store")
            if internal.kind == "changelog" and store and topology.stores[store].changelog == topic:
                return group
    return []


def internal_partitions(topology: Topology, known: dict[str, int], default: int) -> dict[str, int]:
    """Partition count of every internal topic: explicit, else that of the topic it copies (``source_of``),
    else the max of its sub-topology's sources."""
    out: dict[str, int] = {}
    for _ in range(len(topology.internal_topics) + 1):  # chains of internal topics settle in order
        for name, topic in topology.internal_topics.items():
            if topic.partitions:
                out[name] = topic.partitions
                continue
            if topic.source_of:  # co-partitioned with that topic (a foreign-key join's topics)
                out[name] = known.get(topic.source_of) or out.get(topic.source_of) or default
                continue
            counts = []
            for n in _owner_group(topology, name):
                node = topology.nodes[n]
                if node.kind == "source":
                    t = node.params["topic"]
                    c = known.get(t) or out.get(t)
                    if c:
                        counts.append(c)
            out[name] = max(counts) if counts else default
    return out


def check_copartitioning(topology: Topology, partitions: dict[str, int]) -> None:
    """Sources of a sub-topology that joins or keeps state must have equal partition counts."""
    for group in topology.subtopologies():
        nodes = [topology.nodes[n] for n in group]
        if not any(n.params.get("store") or KINDS[n.kind].joins for n in nodes):
            continue
        counts = {n.params["topic"]: partitions.get(n.params["topic"]) for n in nodes if n.kind == "source"}
        if len(set(counts.values())) > 1:
            raise ConfigError(
                f"topics {counts} are joined / aggregated together but have different partition "
                "counts, so records of one key could land in different tasks. Give them the same "
                "number of partitions, or repartition one side first (stream.repartition(partitions=N))"
            )


def prepare_topics(topology: Topology, admin: TopicAdmin, config: Config) -> dict[str, int]:
    """Check external topics exist, create internal ones; return topic → partition count."""
    have = admin.partitions()
    external = topology.external_source_topics() + topology.global_topics() + topology.external_sink_topics()
    missing = [t for t in dict.fromkeys(external) if t not in have]
    if missing and config.embedded:
        admin.create({t: config.embedded_partitions for t in missing})
        have = admin.partitions()
    elif missing:
        known = sorted(t for t in have if not t.startswith("__"))
        raise ConfigError(
            f"topic(s) {missing} do not exist on {config.brokers}: create them first (e.g. "
            f"`kafka-topics --create --topic {missing[0]} --partitions N`, or "
            f"`streamlet broker --topic {missing[0]}:N`), or fix the name. Existing topics: {known}"
        )
    wanted = internal_partitions(topology, have, config.embedded_partitions)
    for name, count in wanted.items():
        if name in have and have[name] != count:
            kind = topology.internal_topics[name].kind
            raise ConfigError(
                f"{kind} topic {name!r} has {have[name]} partitions but this topology needs {count} "
                "(the partition count of its input). It was probably made by an older version of "
                f"the topology: delete it (and the app's state dir) and restart, or change the "
                "input back"
            )
    to_create = {n: c for n, c in wanted.items() if n not in have}
    if to_create:
        for name, count in to_create.items():
            admin.create({name: count}, topology.internal_topics[name].config or None)
        log.info("created internal topics %s", to_create)
    if config.on_error == "dead_letter" and config.dead_letter not in have:
        admin.create({config.dead_letter: 1})
    partitions = admin.partitions()
    check_copartitioning(topology, partitions)
    return partitions
