"""Table–table joins (Kafka Streams' ``KTableKTableJoin``): re-evaluated whenever either side changes.

A join is three nodes: one per side (``table_join``), each looking the other
side up through its value getter when its own side changes, and the joined
table after them (``table_join_merge``), whose value getter computes the join
for a key on demand (nothing is materialized). Changes go on as ``(new, old)``,
the old result computed with the same other-side row, so that a filter after
the join emits a tombstone only for a row that passed before.

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
from streamlet.topology.stateful import Getter, getter_of, needs_old

HOW = ("inner", "left", "outer")


def table_join(node: Node, ctx: TaskContext, downs: list[Forward], comp: Compilation) -> Forward:
    """One side of a join: a change of this side's row, joined with the other side's row now."""
    other = getter_of(comp, node.params["other"])
    joiner, how, down = node.fn, node.params["how"], fan_out(downs)
    left_side = node.params["side"] == "left"
    # the old joined row only when a step downstream reads it (a filter): else one joiner call
    want_old = needs_old(comp, node.name)

    def join(mine: Any, theirs: Any) -> Any:
        return joiner(mine, theirs) if left_side else joiner(theirs, mine)

    if how == "inner":
        def table_join_inner(k: Any, change: Any) -> None:
            theirs = other(k)
            if theirs is None:
                return
            new, old = change
            down(k, (None if new is None else join(new, theirs),
                     None if old is None or not want_old else join(old, theirs)))

        return table_join_inner

    if how == "left" and left_side:
        def table_join_left(k: Any, change: Any) -> None:
            theirs = other(k)
            new, old = change
            if theirs is None and new is None and old is None:
                return  # a tombstone for a key neither side holds
            down(k, (None if new is None else joiner(new, theirs),
                     None if old is None or not want_old else joiner(old, theirs)))

        return table_join_left

    if how == "left":  # the right side of a left join: only while the left row exists
        def table_join_right_of_left(k: Any, change: Any) -> None:
            left = other(k)
            if left is None:
                return
            new, old = change
            down(k, (joiner(left, new), joiner(left, old) if want_old else None))

        return table_join_right_of_left

    def table_join_outer(k: Any, change: Any) -> None:
        theirs = other(k)
        new, old = change
        if theirs is None and new is None and old is None:
            return
        down(k, (join(new, theirs) if theirs is not None or new is not None else None,
                 join(old, theirs) if want_old and (theirs is not None or old is not None) else None))

    return table_join_outer


def table_join_merge(node: Node, ctx: TaskContext, downs: list[Forward], comp: Compilation) -> Forward:
    """The joined table: both sides' results go on as they come."""
    return fan_out(downs)


def table_join_lookup(node: Node, ctx: TaskContext, comp: Compilation) -> Getter:
    """The joined row of a key, computed from both sides' value getters."""
    left, right = getter_of(comp, node.params["left"]), getter_of(comp, node.params["right"])
    joiner, how = node.fn, node.params["how"]

    def get(k: Any) -> Any:
        lv = left(k)
        if lv is None and how != "outer":
            return None
        rv = right(k)
        if rv is None and (how == "inner" or lv is None):
            return None
        return joiner(lv, rv)

    return get
