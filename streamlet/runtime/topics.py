"""Start-up check of the topics a topology reads and writes; creates internal topics."""

from __future__ import annotations

import logging

from streamlet.broker.admin import TopicAdmin
from streamlet.config import Config
from streamlet.errors import ConfigError
from streamlet.topology.graph import Topology

log = logging.getLogger("streamlet.topics")


def internal_partitions(topology: Topology, known: dict[str, int], default: int) -> dict[str, int]:
    """Partition count of every internal topic: explicit, else the max of the sources feeding it."""
    out: dict[str, int] = {}
    for _ in range(len(topology.internal_topics) + 1):  # chains of internal topics settle in order
        for name, topic in topology.internal_topics.items():
            if topic.partitions:
                out[name] = topic.partitions
                continue
            counts = []
            for sink in topology.sinks():
                if sink.params["topic"] != name:
                    continue
                sub = next(g for g in topology.subtopologies() if sink.name in g)
                for n in sub:
                    node = topology.nodes[n]
                    if node.kind == "source":
                        t = node.params["topic"]
                        c = known.get(t) or out.get(t)
                        if c:
                            counts.append(c)
            if topic.source_of and (known.get(topic.source_of) or out.get(topic.source_of)):
                counts.append(known.get(topic.source_of) or out[topic.source_of])
            out[name] = max(counts) if counts else default
    return out


def prepare_topics(topology: Topology, admin: TopicAdmin, config: Config) -> dict[str, int]:
    """Check external topics exist, create internal ones; return topic → partition count."""
    have = admin.partitions()
    external = topology.external_source_topics() + topology.external_sink_topics()
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
            raise ConfigError(
                f"internal topic {name!r} has {have[name]} partitions but this topology needs "
                f"{count} (the partition count of its input); delete it and restart, or reset "
                "the application"
            )
    to_create = {n: c for n, c in wanted.items() if n not in have}
    if to_create:
        configs = {t.name: t.config for t in topology.internal_topics.values()}
        for name, count in to_create.items():
            admin.create({name: count}, configs.get(name) or None)
        log.info("created internal topics %s", to_create)
    if config.on_error == "dead_letter" and config.dead_letter not in have:
        admin.create({config.dead_letter: 1})
    return admin.partitions()
