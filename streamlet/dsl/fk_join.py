"""The nodes, internal topics and stores of a foreign-key table–table join (KIP-213).

``left.join(right, joiner, foreign_key=fn, name=N)`` adds, with ``<app>`` the application id:

* ``<app>-N-subscription-registration-topic`` — subscriptions keyed by the foreign key, with the
  right table's partition count;
* ``<app>-N-subscription-response-topic`` — answers keyed by the left key, with the left table's
  partition count;
* store ``N-subscription-store`` (changelog ``<app>-N-subscription-store-changelog``) in the right
  table's tasks, and store ``N`` (changelog ``<app>-N-changelog``) holding the joined rows in the
  left table's tasks.

The compiled steps are in :mod:`streamlet.topology.fk_join`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from streamlet.errors import TopologyError
from streamlet.serde.builtin import bytes_
from streamlet.topology.fk_join import response_partitioner, subscription_partitioner
from streamlet.topology.fk_wire import response_serde, subscription_serde
from streamlet.topology.graph import InternalTopic, StoreSpec, Topology

if TYPE_CHECKING:
    from streamlet.dsl.table import KTable


def _source_topic_of(topo: Topology, node: str) -> str:
    """The topic read by the sub-topology of table node ``node`` (its first ancestor source)."""
    n = topo.nodes[node]
    while n.kind != "source":
        n = topo.nodes[n.parents[0]]
    return n.params["topic"]  # type: ignore[no-any-return]


def foreign_key_join(left: "KTable", right: "KTable", joiner: Callable[[Any, Any], Any],
                     foreign_key: Callable[[Any], Any], how: str, name: str | None) -> "KTable":
    """Add a foreign-key join of ``left`` with ``right`` (``how``: ``inner`` or ``left``)."""
    from streamlet.dsl.table import KTable

    if not callable(foreign_key):
        raise TypeError("foreign_key= expects a function left_value -> key of the other table")
    if not name:
        raise TopologyError(
            "a foreign-key join needs a stable name=: it names its subscription and response topics "
            "and its stores, e.g. orders.join(customers, joiner, foreign_key=lambda o: o['customer'], "
            "name='order-customers')")
    app, topo = left._app, left._app.topology
    for store in (name, f"{name}-subscription-store"):
        if store in topo.stores:
            raise TopologyError(f"a state store is already named {store!r}; give the foreign-key join "
                                "another name=")
    prefix = f"{app.application_id}-{name}"
    sub_topic = f"{prefix}-subscription-registration-topic"
    resp_topic = f"{prefix}-subscription-response-topic"
    sub_store = f"{name}-subscription-store"
    subs = subscription_serde()
    responses = response_serde(right.value_serde, resp_topic)
    common = {"how": how, "value_serde": left.value_serde, "hash_topic": f"{sub_topic}-vh",
              "fk_serde": right.key_serde, "subscription_topic": sub_topic}

    topo.add_internal_topic(InternalTopic(sub_topic, "repartition", source_of=_source_topic_of(topo, right._node)))
    topo.add_internal_topic(InternalTopic(resp_topic, "repartition", source_of=_source_topic_of(topo, left._node)))
    sub_changelog = f"{prefix}-subscription-store-changelog"
    topo.add_internal_topic(InternalTopic(sub_changelog, "changelog"))
    topo.add_store(StoreSpec(sub_store, "table", bytes_(), subs, sub_changelog))
    changelog = f"{prefix}-changelog"
    topo.add_internal_topic(InternalTopic(changelog, "changelog"))
    spec = topo.add_store(StoreSpec(name, "table", left.key_serde, app.default_value_serde, changelog,
                                    timestamped=True))

    # the left table's tasks: subscribe
    send = topo.add("fk_subscription_send", [left._node], fn=foreign_key,
                    name=f"{name}-subscription-registration-processor", key_serde=left.key_serde, **common)
    topo.add("sink", [send.name], name=f"{name}-subscription-registration-sink", topic=sub_topic,
             key_serde=bytes_(), value_serde=subs, partitioner=subscription_partitioner, headers=False)
    # the right table's tasks: keep subscriptions, answer them and every change of a right row
    source = topo.add("source", [], name=f"{name}-subscription-registration-source", topic=sub_topic,
                      key_serde=right.key_serde, value_serde=subs)
    receive = topo.add("fk_subscription_receive", [source.name], name=f"{name}-subscription-receive",
                       store=sub_store, right=right._node, peers=[right._node])
    foreign = topo.add("fk_foreign_join", [right._node], name=f"{name}-foreign-join-subscription",
                       store=sub_store, **common)
    topo.add("sink", [receive.name, foreign.name], name=f"{name}-subscription-response-sink", topic=resp_topic,
             key_serde=bytes_(), value_serde=responses, partitioner=response_partitioner, headers=False)
    # the left table's tasks: join each answer with the left row it was sent for
    answers = topo.add("source", [], name=f"{name}-subscription-response-source", topic=resp_topic,
                       key_serde=left.key_serde, value_serde=responses)
    result = topo.add("fk_response_join", [answers.name], fn=joiner, name=name, store=name,
                      left=left._node, peers=[left._node], key_serde=spec.key_serde, **common)
    return KTable(app, result.name, left.key_serde, app.default_value_serde, store=name)
