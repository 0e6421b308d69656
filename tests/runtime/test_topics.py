"""Partition counts of internal topics (runtime/topics.py)."""

from __future__ import annotations

import streamlet as sl
from streamlet.runtime.topics import check_copartitioning, internal_partitions


def test_foreign_key_join_topics_copy_the_partitions_of_the_table_they_are_read_with() -> None:
    """The subscription topic has the right table's partition count, the response topic the left
    table's, each store's changelog that of its tasks; both sub-topologies are co-partitioned."""
    app = sl.App("app")
    orders, customers = app.table("orders"), app.table("customers")
    orders.join(customers, lambda o, c: o, foreign_key=lambda o: o["customer"], name="oc")
    known = {"orders": 3, "customers": 5}
    counts = internal_partitions(app.topology, known, default=1)
    assert counts == {"app-oc-subscription-registration-topic": 5, "app-oc-subscription-response-topic": 3,
                      "app-oc-subscription-store-changelog": 5, "app-oc-changelog": 3}
    check_copartitioning(app.topology, {**known, **counts})  # does not raise
