"""Readable renderings of a :class:`Topology`: text (like Kafka Streams' ``describe()``) and Mermaid."""

from __future__ import annotations

from streamlet.topology.graph import Topology


def describe_text(topology: Topology) -> str:
    lines = [f"Topology of {topology.application_id!r}"]
    for i, group in enumerate(topology.subtopologies()):
        lines.append(f"  Sub-topology {i}")
        for name in group:
            node = topology.nodes[name]
            children = topology.children[name]
            arrow = f" --> {', '.join(children)}" if children else ""
            params = node.params
            extra = ""
            if node.kind == "source":
                extra = f" (topic: {params['topic']}, key: {params['key_serde'].name}, value: {params['value_serde'].name})"
            elif node.kind == "sink":
                extra = f" (topic: {params['topic']})"
            elif params.get("store"):
                extra = f" (store: {params['store']})"
            elif params.get("global_store"):
                extra = f" (global store: {params['global_store']})"
            lines.append(f"    {node.kind.capitalize()}: {name}{extra}{arrow}")
    if topology.global_stores:
        # as Kafka Streams' "Global Stores": a source and its store, read whole by every worker
        lines.append("  Global Stores (every partition on every worker; no tasks)")
        for spec in topology.global_stores.values():
            key, value = getattr(spec.key_serde, "name", "?"), getattr(spec.value_serde, "name", "?")
            lines.append(f"    Source: global-source-{spec.changelog} (topic: {spec.changelog}, key: {key}, "
                         f"value: {value}) --> global-table-{spec.name}")
            lines.append(f"    Processor: global-table-{spec.name} (store: {spec.name})")
    if topology.internal_topics:
        lines.append("  Internal topics")
        for t in topology.internal_topics.values():
            lines.append(f"    {t.name} ({t.kind})")
    return "\n".join(lines)


def _mermaid_id(name: str) -> str:
    return "n_" + "".join(c if c.isalnum() else "_" for c in name)


def describe_mermaid(topology: Topology) -> str:
    """A ``flowchart`` users can paste into Markdown (GitHub renders it)."""
    out = ["flowchart LR"]
    topics: dict[str, str] = {}

    def topic_id(topic: str) -> str:
        if topic not in topics:
            topics[topic] = "t_" + "".join(c if c.isalnum() else "_" for c in topic)
        return topics[topic]

    for i, group in enumerate(topology.subtopologies()):
        out.append(f"  subgraph sub{i}[\"sub-topology {i}\"]")
        for name in group:
            node = topology.nodes[name]
            label = node.label().replace('"', "'")
            out.append(f"    {_mermaid_id(name)}[\"{label}\"]")
        out.append("  end")
    if topology.global_stores:
        out.append("  subgraph global[\"global stores\"]")
        for spec in topology.global_stores.values():
            out.append(f"    {_mermaid_id('global-' + spec.name)}[(\"global store: {spec.name}\")]")
        out.append("  end")
    for topic in topology.source_topics() + topology.global_topics() + topology.sink_topics():
        out.append(f"  {topic_id(topic)}[(\"{topic}\")]")
    for name, node in topology.nodes.items():
        for child in topology.children[name]:
            out.append(f"  {_mermaid_id(name)} --> {_mermaid_id(child)}")
        if node.kind == "source":
            out.append(f"  {topic_id(node.params['topic'])} --> {_mermaid_id(name)}")
        elif node.kind == "sink":
            out.append(f"  {_mermaid_id(name)} --> {topic_id(node.params['topic'])}")
        elif node.params.get("global_store"):
            out.append(f"  {_mermaid_id('global-' + node.params['global_store'])} -.-> {_mermaid_id(name)}")
    for spec in topology.global_stores.values():
        out.append(f"  {topic_id(spec.changelog)} --> {_mermaid_id('global-' + spec.name)}")
    return "\n".join(line for i, line in enumerate(out) if line == "  end" or line not in out[:i])
