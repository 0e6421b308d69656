"""Foreign-key table–table joins (KTable.join / left_join with foreign_key=, KIP-213) through the TestDriver:
subscriptions and responses go through their internal topics as they would on a broker."""

from __future__ import annotations

from typing import Any

import pytest

import streamlet as sl
from streamlet.errors import TopologyError
from streamlet.testing import TestDriver
from streamlet.topology.fk_wire import combined_key

RESPONSES = "fk-oc-subscription-response-topic"
SUBSCRIPTIONS = "fk-oc-subscription-registration-topic"


def joiner(order: Any, customer: Any) -> dict[str, Any]:
    return {"amount": order["amount"], "tier": None if customer is None else customer["tier"]}


def customer_of(order: dict[str, Any]) -> Any:
    return order.get("customer")


def _app(how: str) -> sl.App:
    app = sl.App("fk")
    orders, customers = app.table("orders"), app.table("customers")
    getattr(orders, how)(customers, joiner, foreign_key=customer_of, name="oc").to_stream().to("out")
    return app


def order(customer: Any, amount: int) -> dict[str, Any]:
    return {"customer": customer, "amount": amount}


#: (topic, key, value) in order; the same timeline for inner and left joins
TIMELINE = [
    ("customers", "c1", {"tier": "gold"}),  # 0 a right row nobody points at
    ("orders", "o1", order("c1", 10)),      # 1 a new left row with a match
    ("orders", "o2", order("c1", 20)),      # 2 a second subscriber of c1
    ("customers", "c1", {"tier": "silver"}),  # 3 a right update: every subscriber, in left key order
    ("orders", "o1", order("c2", 11)),      # 4 the foreign key changes to a key with no row
    ("customers", "c1", {"tier": "bronze"}),  # 5 o1 unsubscribed from c1: only o2
    ("customers", "c2", {"tier": "new"}),   # 6 o1's new foreign key gets a row
    ("orders", "o1", order("c2", 12)),      # 7 a left update, same foreign key
    ("orders", "o1", order(None, 13)),      # 8 the foreign key becomes None
    ("orders", "o1", order(None, 14)),      # 9 still None
    ("orders", "o1", order("c2", 15)),      # 10 back to a key with a row
    ("customers", "c2", None),              # 11 a right row deleted
    ("orders", "o2", None),                 # 12 a left row deleted
    ("orders", "o3", order("c9", 30)),      # 13 a new left row without a match
    ("orders", "o3", None),                 # 14 ... deleted
    ("orders", "o4", order(None, 40)),      # 15 a new left row without a foreign key
]

EXPECTED = {
    "join": [
        [], [("o1", {"amount": 10, "tier": "gold"})], [("o2", {"amount": 20, "tier": "gold"})],
        [("o1", {"amount": 10, "tier": "silver"}), ("o2", {"amount": 20, "tier": "silver"})],
        [("o1", None)],  # the new foreign key has no row: the old result goes
        [("o2", {"amount": 20, "tier": "bronze"})],
        [("o1", {"amount": 11, "tier": "new"})],
        [("o1", {"amount": 12, "tier": "new"})],
        [("o1", None)],  # no foreign key any more: the joined row goes
        [],
        [("o1", {"amount": 15, "tier": "new"})],
        [("o1", None)],
        [("o2", None)],
        [],
        [("o3", None)],  # a deleted left row answers with a tombstone, joined before or not (Kafka Streams)
        [],
    ],
    "left_join": [
        [], [("o1", {"amount": 10, "tier": "gold"})], [("o2", {"amount": 20, "tier": "gold"})],
        [("o1", {"amount": 10, "tier": "silver"}), ("o2", {"amount": 20, "tier": "silver"})],
        [("o1", {"amount": 11, "tier": None})],  # no row for the new foreign key: joined with None
        [("o2", {"amount": 20, "tier": "bronze"})],
        [("o1", {"amount": 11, "tier": "new"})],
        [("o1", {"amount": 12, "tier": "new"})],
        [("o1", {"amount": 13, "tier": None})],  # no foreign key: joined with None
        [("o1", {"amount": 14, "tier": None})],
        [("o1", {"amount": 15, "tier": "new"})],
        [("o1", {"amount": 15, "tier": None})],  # the right row deleted: the left row with None
        [("o2", None)],  # the left row deleted: a tombstone
        [("o3", {"amount": 30, "tier": None})],
        [("o3", None)],
        [("o4", {"amount": 40, "tier": None})],
    ],
}


@pytest.mark.parametrize("how", ["join", "left_join"])
def test_each_change_emits_what_kafka_streams_emits(how: str) -> None:
    with TestDriver(_app(how)) as d:
        for i, ((topic, key, value), expected) in enumerate(zip(TIMELINE, EXPECTED[how], strict=True)):
            d.send(topic, key=key, value=value, timestamp=1000 + i)
            assert d.read("out") == expected, f"step {i}: {topic} {key} -> {value}"


@pytest.mark.parametrize("how", ["join", "left_join"])
def test_the_result_store_holds_the_joined_rows(how: str) -> None:
    with TestDriver(_app(how)) as d:
        for topic, key, value in TIMELINE:
            d.send(topic, key=key, value=value)
        rows = dict(d.store("oc").items())
    if how == "join":
        assert rows == {}
    else:
        assert rows == {"o1": {"amount": 15, "tier": None}, "o4": {"amount": 40, "tier": None}}


def test_subscriptions_follow_the_foreign_key() -> None:
    """The subscription store holds one entry per (foreign key, left key) that is subscribed now."""
    with TestDriver(_app("join")) as d:
        d.send("orders", "o1", order("c1", 1))
        d.send("orders", "o2", order("c1", 2))
        d.send("orders", "o1", order("c2", 1))
        keys = {k for k, _ in d.store("oc-subscription-store").items()}
        assert keys == {combined_key(b"c1", b"o2"), combined_key(b"c2", b"o1")}
        d.send("orders", "o2", None)
        d.send("orders", "o1", order(None, 1))  # inner join: unsubscribes, subscribes to nothing
        assert dict(d.store("oc-subscription-store").items()) == {}


def test_right_update_fans_out_to_every_subscriber() -> None:
    with TestDriver(_app("join"), partitions=3) as d:
        for i in range(50):
            d.send("orders", f"o{i}", order(f"c{i % 2}", i))
        d.send("customers", "c0", {"tier": "a"})
        d.send("customers", "c1", {"tier": "b"})
        assert sorted(d.read("out")) == sorted((f"o{i}", {"amount": i, "tier": "ab"[i % 2]}) for i in range(50))
        d.send("customers", "c1", {"tier": "B"})
        assert sorted(d.read("out")) == sorted((f"o{i}", {"amount": i, "tier": "B"}) for i in range(1, 50, 2))


def test_a_stale_response_is_dropped() -> None:
    """A response sent for an older version of the left row (it arrives late: another partition of the
    subscription topic answered first) must not overwrite the newer result."""
    with TestDriver(_app("left_join")) as d:
        d.send("customers", "c1", {"tier": "gold"})
        d.send("customers", "c2", {"tier": "free"})
        d.send("orders", "o1", order("c1", 10))
        stale = d.log[RESPONSES][0][-1]  # the answer for o1 -> c1
        d.send("orders", "o1", order("c2", 10))
        assert d.read("out")[-1] == ("o1", {"amount": 10, "tier": "free"})
        current = d.log[RESPONSES][0][-1]
        key, value, ts, headers = stale
        d.send_raw(RESPONSES, key, value, ts, headers, partition=0)
        assert d.read("out") == []
        assert d.store("oc")["o1"] == {"amount": 10, "tier": "free"}
        # the current answer written twice (a replay after a crash): the same row again, nothing wrong
        d.send_raw(RESPONSES, current[0], current[1], current[2], current[3], partition=0)
        assert d.read("out") == [("o1", {"amount": 10, "tier": "free"})]


def test_a_response_for_a_deleted_left_row_is_dropped() -> None:
    with TestDriver(_app("join")) as d:
        d.send("customers", "c1", {"tier": "gold"})
        d.send("orders", "o1", order("c1", 10))
        answer = d.log[RESPONSES][0][-1]
        d.send("orders", "o1", None)
        assert d.read("out") == [("o1", {"amount": 10, "tier": "gold"}), ("o1", None)]
        d.send_raw(RESPONSES, answer[0], answer[1], answer[2], answer[3], partition=0)
        assert d.read("out") == []


def test_a_filter_after_the_join_sees_old_values() -> None:
    """The result store gives each change its old value: a filter emits a tombstone only for a row
    that passed before."""
    app = sl.App("fk")
    orders, customers = app.table("orders"), app.table("customers")
    (orders.join(customers, joiner, foreign_key=customer_of, name="oc")
     .filter(lambda k, v: v["tier"] == "gold").to_stream().to("gold"))
    with TestDriver(app) as d:
        d.send("customers", "c1", {"tier": "free"})
        d.send("orders", "o1", order("c1", 1))
        assert d.read("gold") == []
        d.send("customers", "c1", {"tier": "gold"})
        assert d.read("gold") == [("o1", {"amount": 1, "tier": "gold"})]
        d.send("customers", "c1", {"tier": "free"})
        assert d.read("gold") == [("o1", None)]
        d.send("customers", "c1", {"tier": "pro"})
        assert d.read("gold") == []


def test_joins_a_derived_table_and_other_key_serdes() -> None:
    app = sl.App("fk")
    orders = app.table("orders").filter(lambda k, v: v["amount"] > 0)
    customers = app.table("customers", key_serde=sl.serde.long()).map_values(lambda c: c["tier"].upper())
    orders.left_join(customers, lambda o, tier: (o["amount"], tier), foreign_key=lambda o: o["customer"],
                     name="oc").to_stream().to("out")
    with TestDriver(app) as d:
        d.send("orders", "o1", order(7, 5))
        d.send("customers", 7, {"tier": "gold"})
        d.send("orders", "o2", order(7, 0))  # filtered out: never subscribes
        d.send("orders", "o1", order(7, -1))  # leaves the filtered table: a tombstone
        assert d.read("out") == [("o1", [5, None]), ("o1", [5, "GOLD"]), ("o1", None)]


def test_internal_topics_and_stores_are_declared() -> None:
    app = _app("join")
    topics = app.topology.internal_topics
    assert topics[SUBSCRIPTIONS].source_of == "customers"
    assert topics["fk-oc-subscription-response-topic"].source_of == "orders"
    assert {"fk-oc-subscription-store-changelog", "fk-oc-changelog"} <= set(topics)
    assert {"oc", "oc-subscription-store"} <= set(app.topology.stores)


def test_a_foreign_key_join_needs_a_name() -> None:
    app = sl.App("fk")
    orders, customers = app.table("orders"), app.table("customers")
    with pytest.raises(TopologyError, match="name="):
        orders.join(customers, joiner, foreign_key=customer_of)
    with pytest.raises(TypeError, match="foreign_key"):
        orders.join(customers, joiner, foreign_key="customer", name="x")
    with pytest.raises(TypeError):
        orders.outer_join(customers, joiner, foreign_key=customer_of, name="y")  # type: ignore[call-arg]
    orders.join(customers, joiner, foreign_key=customer_of, name="z")
    with pytest.raises(TopologyError, match="'z'"):
        orders.left_join(customers, joiner, foreign_key=customer_of, name="z")


class HeldResponses:
    """Holds back the records of the response topic (a slow partition, answers in flight) until
    :meth:`release` processes them, in the order given."""

    def __init__(self, d: TestDriver) -> None:
        self.routes = d.tasks.routes[RESPONSES]
        self.route = self.routes[0]
        self.held: list[Any] = []
        self.routes[0] = self.held.append

    def release(self, order: list[int] | None = None) -> None:
        self.routes[0] = self.route
        for i in order if order is not None else range(len(self.held)):
            self.route(self.held[i])


def test_answers_overtaken_by_later_changes_still_end_with_the_right_rows() -> None:
    """Answers that arrive after the left row changed again are dropped; the answer to the latest
    version comes last and sets the row, whatever order the others came in."""
    with TestDriver(_app("left_join")) as d:
        d.send("customers", "c1", {"tier": "gold"})
        d.send("customers", "c2", {"tier": "free"})
        held = HeldResponses(d)
        d.send("orders", "o1", order("c1", 1))
        d.send("orders", "o1", order("c2", 2))
        assert len(held.held) == 2 and d.read("out") == []
        held.release([1, 0])  # the answer from c2's partition overtakes the one from c1's
        assert d.read("out") == [("o1", {"amount": 2, "tier": "free"})]
        assert d.store("oc")["o1"] == {"amount": 2, "tier": "free"}


@pytest.mark.parametrize("changes", [
    [order("c2", 2), order("c2", 3)],  # to a key with no row, then updated: the first answer is stale
    [order(None, 2), order(None, 3)],  # the foreign key goes away, then the row changes again
    [order(None, 2), None],  # ... then the row is deleted
])
def test_an_inner_join_deletes_a_joined_row_even_when_the_deleting_answer_comes_too_late(changes: list) -> None:
    """The answer that would delete the joined row comes after the row changed again, and is dropped
    as stale; the answer to the latest change (a quiet one: no right row, nothing to emit) deletes
    the row instead. (Kafka Streams 4.4 sends no answer there and keeps the old joined row.)"""
    with TestDriver(_app("join")) as d:
        d.send("customers", "c1", {"tier": "gold"})
        d.send("orders", "o1", order("c1", 1))
        assert d.read("out") == [("o1", {"amount": 1, "tier": "gold"})]
        held = HeldResponses(d)
        for value in changes:
            d.send("orders", "o1", value)
        held.release()
        assert d.read("out") == [("o1", None)]
        assert d.store("oc").get("o1") is None


@pytest.mark.parametrize("how", ["join", "left_join"])
@pytest.mark.parametrize("topic", [SUBSCRIPTIONS, RESPONSES])
def test_a_replay_of_the_internal_topics_changes_no_final_row(how: str, topic: str) -> None:
    """What a restart after a crash does (at-least-once): subscriptions or answers processed again,
    from the start. Rows may be emitted again; the joined table ends the same."""
    with TestDriver(_app(how)) as d:
        for i, (t, key, value) in enumerate(TIMELINE):
            d.send(t, key=key, value=value, timestamp=1000 + i)
        before = dict(d.store("oc").items())
        subscriptions = dict(d.store("oc-subscription-store").items())
        last = dict(d.read("out"))
        assert d.redeliver(topic, 0) > 5
        assert dict(d.store("oc").items()) == before
        assert dict(d.store("oc-subscription-store").items()) == subscriptions
        again = dict(d.read("out"))
        assert again and all(again[k] == last[k] for k in again)  # the same final row of each key emitted


def test_a_table_joined_with_itself_by_foreign_key() -> None:
    """Employees with their manager's name: left and right are one table (one sub-topology)."""
    app = sl.App("self")
    emps = app.table("employees")
    emps.left_join(emps, lambda e, m: {"name": e["name"], "manager": m and m["name"]},
                   foreign_key=lambda e: e["boss"], name="boss").to_stream().to("out")
    with TestDriver(app, partitions=2) as d:
        d.send("employees", "e1", {"name": "Ann", "boss": None})
        d.send("employees", "e2", {"name": "Bob", "boss": "e1"})
        d.send("employees", "e3", {"name": "Cy", "boss": "e2"})
        d.send("employees", "e1", {"name": "Anne", "boss": None})  # e2 follows: its manager renamed
        assert dict(d.store("boss").items()) == {"e1": {"name": "Anne", "manager": None},
                                                 "e2": {"name": "Bob", "manager": "Anne"},
                                                 "e3": {"name": "Cy", "manager": "Bob"}}
        assert d.read("out")[-2:] == [("e2", {"name": "Bob", "manager": "Anne"}),
                                      ("e1", {"name": "Anne", "manager": None})]
