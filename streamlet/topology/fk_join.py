"""Foreign-key table–table joins (Kafka Streams' KIP-213 ``KTable#join(other, foreignKeyExtractor, joiner)``).

Four node kinds, in two sub-topologies (wire formats: :mod:`.fk_wire`):

* left table's task — ``fk_subscription_send``: each change of a left row sends a subscription,
  keyed by the row's foreign key, to the subscription topic (partitioned as the right table);
  a row whose foreign key changes unsubscribes from the old one;
* right table's task — ``fk_subscription_receive``: keeps each subscription in the subscription
  store (foreign key + left key) and answers with the right row; ``fk_foreign_join``: each change
  of a right row answers every subscriber of its key. Answers go to the response topic,
  to the left partition the subscription came from;
* left table's task — ``fk_response_join``: joins an answer with the left row held now, but only
  if the answer was sent for that very row (its hash): an answer overtaken by a later change of
  the row, or written twice, is dropped. The joined table is kept in a store (``name``), which
  gives the old value of each change and the value getter of the result.

Which subscriptions are sent (Kafka Streams 4.x, ``SubscriptionSendProcessorSupplier``):

* inner join — a new row subscribes (answer only if the right row exists); a changed foreign key
  unsubscribes from the old one and subscribes to the new one (answer "none" when it has no
  row: the old result is deleted); a deleted row, or a row whose foreign key becomes ``None``,
  unsubscribes with a tombstone answer; a ``None`` foreign key subscribes to nothing;
* left join — every change subscribes to its foreign key (answer with the right row or none; a
  ``None`` foreign key gets "none" without a store), after unsubscribing from a changed old one.

One addition to Kafka Streams: in an inner join, where Kafka Streams sends no answer (no right row
for a subscription that needs one, a row still or newly without a foreign key) streamlet sends a
*quiet* one, which emits nothing unless the result store still holds a row for the key. Every change
of a left row is then answered, so the answer to its latest version always comes: without it, an
answer dropped by the hash check (the row changed again before it came) could leave a joined row
that should be gone — a race Kafka Streams 4.4 has. Processed one record at a time (the TestDriver,
Kafka Streams' TopologyTestDriver) a quiet answer never finds a row: the outputs are Kafka Streams'.
"""

from __future__ import annotations

from typing import Any

from streamlet.partitioner import murmur2_partition
from streamlet.serde.context import KEY, serializer_for
from streamlet.topology.chain import Forward, fan_out
from streamlet.topology.compilation import Compilation
from streamlet.topology.context import TaskContext
from streamlet.topology.fk_wire import (DELETE_KEY_AND_PROPAGATE, DELETE_KEY_NO_PROPAGATE,
                                        PROPAGATE_NULL_IF_NO_FK_VAL_AVAILABLE, PROPAGATE_ONLY_IF_FK_VAL_AVAILABLE,
                                        combined_key, prefix_range, value_hasher)
from streamlet.topology.graph import Node
from streamlet.topology.aggregate import forward_at
from streamlet.topology.stateful import Getter, RowGetter, getter_of, row_getter_of, stored_row_getters


def _fk_serializer(node: Node) -> Any:
    ser = serializer_for(node.params["fk_serde"], node.params["subscription_topic"], KEY)
    return lambda fk: None if fk is None else ser(fk, None)


def fk_subscription_send(node: Node, ctx: TaskContext, downs: list[Forward], comp: Compilation) -> Forward:
    """Left side: a left row's change as subscriptions ``(foreign key bytes, subscription)``."""
    p = node.params
    fk_of, left_join, down = node.fn, p["how"] == "left", fan_out(downs)
    fk_bytes = _fk_serializer(node)
    hash_of = value_hasher(p["value_serde"], p["hash_topic"])
    key_serde = p["key_serde"]
    kser = (lambda k: ctx.msg.key()) if comp.same_key_bytes(node.name, key_serde) else key_serde.serialize

    def send_left(k: Any, change: Any) -> None:
        new, old = change
        if new is None and old is None:
            return
        kb, h, part = kser(k), hash_of(new), ctx.partition
        new_fk = None if new is None else fk_bytes(fk_of(new))
        if old is not None:
            old_fk = fk_bytes(fk_of(old))
            if old_fk is not None and old_fk != new_fk:
                down(old_fk, (h, DELETE_KEY_NO_PROPAGATE, part, kb))
        down(new_fk, (h, PROPAGATE_NULL_IF_NO_FK_VAL_AVAILABLE, part, kb))

    def send_inner(k: Any, change: Any) -> None:
        new, old = change
        old_fk = None if old is None else fk_bytes(fk_of(old))
        if new is None:
            if old_fk is not None:
                down(old_fk, (None, DELETE_KEY_AND_PROPAGATE, ctx.partition, kser(k)))
            elif old is not None:  # a row without a foreign key deleted: a quiet answer
                down(None, (None, PROPAGATE_ONLY_IF_FK_VAL_AVAILABLE, ctx.partition, kser(k)))
            return
        new_fk = fk_bytes(fk_of(new))
        kb, h, part = kser(k), hash_of(new), ctx.partition
        if new_fk is None and old_fk is None:  # no foreign key: nothing to join, a quiet answer
            down(None, (h, PROPAGATE_ONLY_IF_FK_VAL_AVAILABLE, part, kb))
            return
        if new_fk is None:  # the foreign key went away: the old result is deleted
            down(old_fk, (h, DELETE_KEY_AND_PROPAGATE, part, kb))
        elif old_fk is not None and old_fk != new_fk:
            down(old_fk, (h, DELETE_KEY_NO_PROPAGATE, part, kb))
            down(new_fk, (h, PROPAGATE_NULL_IF_NO_FK_VAL_AVAILABLE, part, kb))
        else:
            down(new_fk, (h, PROPAGATE_ONLY_IF_FK_VAL_AVAILABLE, part, kb))

    return send_left if left_join else send_inner


def fk_subscription_receive(node: Node, ctx: TaskContext, downs: list[Forward], comp: Compilation) -> Forward:
    """Right side: store (or drop) a subscription and answer it with the right row."""
    store = ctx.stores[node.params["store"]]
    get, put = store.get, store.put
    right, down = row_getter_of(comp, node.params["right"]), fan_out(downs)

    def receive(fk: Any, sub: Any) -> None:
        h, instruction, part, kb = sub
        if fk is None:  # a row without a foreign key: "no right row", nothing stored
            if instruction >= PROPAGATE_NULL_IF_NO_FK_VAL_AVAILABLE:
                down(kb, (h, None, part, instruction == PROPAGATE_ONLY_IF_FK_VAL_AVAILABLE))
            return
        ck = combined_key(ctx.msg.key(), kb)
        if instruction <= DELETE_KEY_AND_PROPAGATE:
            if get(ck) is not None:
                put(ck, None)
            if instruction == DELETE_KEY_AND_PROPAGATE:
                answer(kb, (h, None, part, False), right(fk))
            return
        put(ck, sub)
        row = right(fk)
        if row is None:
            down(kb, (h, None, part, instruction == PROPAGATE_ONLY_IF_FK_VAL_AVAILABLE))
        else:
            answer(kb, (h, row[0], part, False), row)

    def answer(kb: bytes, response: Any, row: Any) -> None:
        """Stamped with the later of the subscription's and the right row's times (Kafka Streams)."""
        if row is None:
            down(kb, response)
        else:
            forward_at(ctx, down, kb, response, max(row[1], ctx.msg.timestamp()[1]))

    return receive


def fk_foreign_join(node: Node, ctx: TaskContext, downs: list[Forward], comp: Compilation) -> Forward:
    """Right side: a right row's change answers every subscription to its key."""
    scan = ctx.stores[node.params["store"]].scan
    fk_bytes, down = _fk_serializer(node), fan_out(downs)

    def foreign_join(fk: Any, change: Any) -> None:
        if fk is None:
            return
        new = change[0]
        start, end = prefix_range(fk_bytes(fk))
        for _, (h, _, part, kb) in scan(start, end):
            down(kb, (h, new, part, False))  # stamped with the change's time, as in Kafka Streams

    return foreign_join


def fk_response_join(node: Node, ctx: TaskContext, downs: list[Forward], comp: Compilation) -> Forward:
    """Left side: an answer joined with the left row it was sent for; the result kept and forwarded."""
    p = node.params
    left, joiner, left_join = getter_of(comp, p["left"]), node.fn, p["how"] == "left"
    hash_of = value_hasher(p["value_serde"], p["hash_topic"])
    store = ctx.stores[p["store"]]
    get, put, down = store.get, store.put, fan_out(downs)

    def response_join(k: Any, response: Any) -> None:
        h, right, _, quiet = response
        value = left(k)
        if hash_of(value) != h:
            return  # sent for another version of the left row: stale (or a duplicate after a crash)
        if quiet:  # nothing to join: emits only to delete a row a dropped answer left behind
            kb = ctx.msg.key()
            old = get(kb)
            if old is not None:
                put(kb, None)
                down(k, (None, old[0]))
            return
        if right is None and (not left_join or value is None):
            result = None
        else:
            result = joiner(value, right)
        kb = ctx.msg.key()
        old = get(kb)
        if old is not None:
            old = old[0]
            put(kb, None if result is None else (result, ctx.msg.timestamp()[1]))
        elif result is not None:
            put(kb, (result, ctx.msg.timestamp()[1]))
        down(k, (result, old))  # a tombstone for a key not held goes on too, as in Kafka Streams

    return response_join


def fk_response_join_lookup(node: Node, ctx: TaskContext, comp: Compilation) -> Getter:
    """The joined value of a key, read from the result store."""
    return stored_row_getters(ctx, node.params["store"], node.params["key_serde"])[0]


def fk_response_join_row(node: Node, ctx: TaskContext, comp: Compilation) -> RowGetter:
    """The joined row of a key with its time, read from the result store."""
    return stored_row_getters(ctx, node.params["store"], node.params["key_serde"])[1]


def subscription_partitioner(key: bytes | None, sub: Any, count: int) -> int:
    """The subscription topic's partition: the foreign key's, as Kafka's default partitioner puts
    the right table's rows (a subscription without a foreign key: the left partition's number)."""
    if key is None:
        return sub[2] % count  # type: ignore[no-any-return]
    return murmur2_partition(key, count)


def response_partitioner(key: bytes, response: Any, count: int) -> int:
    """The response topic's partition: the left partition the subscription came from."""
    part = response[2]
    if 0 <= part < count:
        return part  # type: ignore[no-any-return]
    return murmur2_partition(key, count)
