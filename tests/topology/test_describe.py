"""The topology is data: describe it as text and as a Mermaid diagram."""

from __future__ import annotations

import streamlet as sl


def sample() -> sl.App:
    app = sl.App("shop")
    orders = app.stream("orders")
    orders.filter(lambda k, v: v["amount"] > 100).to("big-orders")
    orders.group_by(lambda k, v: v["user"]).count(name="per-user")
    return app


def test_text_lists_subtopologies_nodes_and_internal_topics() -> None:
    text = sample().describe()
    assert "Sub-topology 0" in text and "Sub-topology 1" in text
    assert "Source: source-orders (topic: orders" in text
    assert "Sink: " in text and "(topic: big-orders)" in text
    assert "shop-per-user-repartition (repartition)" in text
    assert "shop-per-user-changelog (changelog)" in text


def test_mermaid_has_a_node_and_an_edge_for_everything() -> None:
    app = sample()
    text = app.describe("mermaid")
    assert text.startswith("flowchart LR")
    edges = [line for line in text.splitlines() if "-->" in line]
    graph_edges = sum(len(c) for c in app.topology.children.values())
    topic_edges = len(app.topology.sources()) + len(app.topology.sinks())
    assert len(edges) == graph_edges + topic_edges
    assert '[("orders")]' in text


def test_subtopologies_split_at_internal_topics_and_join_through_tables() -> None:
    app = sl.App("j")
    users = app.table("users")
    app.stream("orders").join(users, lambda o, u: o).to("out")
    groups = app.topology.subtopologies()
    assert len(groups) == 1  # the join puts the table in the stream's task
    assert app.topology.subtopology_of_topic() == {"users": 0, "orders": 0}
