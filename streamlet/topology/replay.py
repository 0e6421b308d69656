"""Replay marks of the windowed steps' rows: has this row already taken this input record?

A row keeps the mark of the last input record it applied — the input offset and
the record's sequence among those made from it (:mod:`streamlet.topology.origin`), or
per upstream partition when the step reads a repartition topic — so that a record
processed again after a crash (its change may be in the restored changelog
already) changes nothing twice. :mod:`streamlet.topology.aggregate` writes the
same steps inline for plain aggregations.
"""

from __future__ import annotations

from typing import Any, Callable

from streamlet.state.row import MARK, aggregate_row, applied, repartitioned_row
from streamlet.topology.origin import input_message, read_origin

#: ``mark(cur, msg, seq)`` → the mark to store, or None when ``cur`` already holds the record
Mark = Callable[[Any, Any, int], Any]
#: ``row(mark, state, timestamp)`` → the row to store
Row = Callable[[Any, Any, int], list[Any]]


def replay_marks(repartitioned: bool) -> tuple[Mark, Row]:
    """``(mark, row)`` for a step reading its input directly, or a repartition topic."""
    if repartitioned:
        def mark_repartitioned(cur: Any, m: Any, seq: int) -> Any:
            up_offset, up_seq, up_partition = read_origin(input_message(m))
            new = [up_offset, up_seq, seq]
            marks = {} if cur is None else cur[MARK]
            done = marks.get(up_partition)
            if done is not None and new <= done:
                return None
            return marks, up_partition, new

        def row_repartitioned(mark: Any, state: Any, ts: int) -> list[Any]:
            marks, partition, new = mark
            marks[partition] = new
            return repartitioned_row(marks, state, ts)

        return mark_repartitioned, row_repartitioned

    def mark_direct(cur: Any, m: Any, seq: int) -> Any:
        offset = input_message(m).offset()
        if cur is not None and applied(cur, offset, seq):
            return None
        return offset, seq

    def row_direct(mark: Any, state: Any, ts: int) -> list[Any]:
        return aggregate_row(mark[0], state, mark[1], ts)

    return mark_direct, row_direct
