"""Table–table joins (Kafka Streams' ``KTableKTableJoin``): re-evaluated whenever either side changes.

A join is three nodes: one per side (``table_join``), each looking the other
side up through its row getter when its own side changes, and the joined
table after them (``table_join_merge``), whose getters compute the join for a
key on demand (nothing is materialized). Changes go on as ``(new, old)``, the
old result computed with the same other-side row, so that a filter after the
join emits a tombstone only for a row that passed before. A result is stamped
with the later of the change's time and the other row's (Kafka Streams'
``max(record time, other row's time)``).

Which changes emit (``how``; the right side sees the joiner's arguments swapped back):

* ``inner`` — only while the other side has the key; a deleted row emits a
  tombstone (``(None, old)``);
* ``left`` — every left change emits (``joiner(left, None)`` without a right
  row); a right change emits only if the left row exists, and deleting the
  right row re-emits the left row joined with ``None``;
* ``outer`` — whenever either side has the key.
"""

from __future__ import annotations

from typing import Any

from streamlet.topology.chain import Forward, fan_out
from streamlet.topology.compilation import Compilation
from streamlet.topology.context import TaskContext
from streamlet.topology.graph import Node
from streamlet.record import StampedMessage
from streamlet.topology.stateful import Getter, RowGetter, needs_old, row_getter_of

HOW = ("inner", "left", "outer")


def table_join(node: Node, ctx: TaskContext, downs: list[Forward], comp: Compilation) -> Forward:
    """One side of a join: a change of this side's row, joined with the other side's row now, stamped
    with the later of the change's and that row's times (Kafka Streams)."""
    other = row_getter_of(comp, node.params["other"])
    joiner, how, down = node.fn, node.params["how"], fan_out(downs)
    left_side = node.params["side"] == "left"
    # the old joined row only when a step downstream reads it (a filter): else one joiner call
    want_old = needs_old(comp, node.name)

    def swapped(mine: Any, theirs: Any) -> Any:
        return joiner(theirs, mine)

    join = joiner if left_side else swapped  # the joiner's arguments in (left, right) order

    def emit(k: Any, change: Any, row: Any) -> None:
        m = ctx.msg
        ts = row[1]
        if ts <= m.timestamp()[1]:
            down(k, change)
            return
        ctx.msg = StampedMessage(m, ts)  # the other row is newer: its time (forward_at, inlined)
        try:
            down(k, change)
        finally:
            ctx.msg = m

    if how == "inner":
        def table_join_inner(k: Any, change: Any) -> None:
            row = other(k)
            if row is None:
                return
            theirs = row[0]
            new, old = change
            emit(k, (None if new is None else join(new, theirs),
                     None if old is None or not want_old else join(old, theirs)), row)

        return table_join_inner

    if how == "left" and left_side:
        def table_join_left(k: Any, change: Any) -> None:
            row = other(k)
            new, old = change
            if row is None:
                if new is None and old is None:
                    return  # a tombstone for a key neither side holds
                down(k, (None if new is None else joiner(new, None),
                         None if old is None or not want_old else joiner(old, None)))
                return
            theirs = row[0]
            emit(k, (None if new is None else joiner(new, theirs),
                     None if old is None or not want_old else joiner(old, theirs)), row)

        return table_join_left

    if how == "left":  # the right side of a left join: only while the left row exists
        def table_join_right_of_left(k: Any, change: Any) -> None:
            row = other(k)
            if row is None:
                return
            left = row[0]
            new, old = change
            emit(k, (joiner(left, new), joiner(left, old) if want_old else None), row)

        return table_join_right_of_left

    def table_join_outer(k: Any, change: Any) -> None:
        row = other(k)
        new, old = change
        if row is None:
            if new is None and old is None:
                return
            down(k, (None if new is None else join(new, None),
                     None if old is None or not want_old else join(old, None)))
            return
        theirs = row[0]
        emit(k, (join(new, theirs), join(old, theirs) if want_old else None), row)

    return table_join_outer


def table_join_merge(node: Node, ctx: TaskContext, downs: list[Forward], comp: Compilation) -> Forward:
    """The joined table: both sides' results go on as they come."""
    return fan_out(downs)


def table_join_lookup(node: Node, ctx: TaskContext, comp: Compilation) -> Getter:
    """The joined value of a key (its row without the time)."""
    get_row = table_join_row(node, ctx, comp)

    def get(k: Any) -> Any:
        row = get_row(k)
        return None if row is None else row[0]

    return get


def table_join_row(node: Node, ctx: TaskContext, comp: Compilation) -> RowGetter:
    """The joined row of a key with the later of its two rows' times."""
    left, right = row_getter_of(comp, node.params["left"]), row_getter_of(comp, node.params["right"])
    joiner, how = node.fn, node.params["how"]

    def get(k: Any) -> Any:
        lrow = left(k)
        if lrow is None and how != "outer":
            return None
        rrow = right(k)
        if rrow is None:
            if how == "inner" or lrow is None:
                return None
            return joiner(lrow[0], None), lrow[1]
        if lrow is None:
            return joiner(None, rrow[0]), rrow[1]
        return joiner(lrow[0], rrow[0]), max(lrow[1], rrow[1])

    return get
