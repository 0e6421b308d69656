"""The segmented store of session and sliding windows (Kafka Streams' segmented session / window stores).

A window has a *time*: a session its end, a sliding window its start. Time is cut in segments of
``max(retention / 2, 60 s)`` (Kafka Streams' segment interval), and each key's windows are kept by
segment. Store keys (integers 8 bytes big-endian, times >= 0):

* ``b"k" + segment + key bytes`` → the key's windows whose time falls in that segment: an
  aggregation row (:mod:`streamlet.state.row`) ``row_of(mark, windows, timestamp)`` whose state is
  the windows sorted by start (sessions ``[start, end, state]``, sliding ``[start, state, max record
  time]``) and whose mark is the last input record that changed the row (a replay mark,
  :mod:`streamlet.topology.replay`);
* ``b"t" + time + key bytes`` → ``1``: the time index of emit final (:mod:`.window_closing`);
* :data:`NEWEST` → ``[time]``: the latest window time written (the store's stream time);
* :data:`EMITTED` → ``[close]``: how far windows were emitted (emit final).

So a key's windows over a time range are one read per segment (a cached row), old windows go by one
``delete_range`` over whole segments (:meth:`Segments.expire`), and nothing is indexed in memory:
a task that starts reads what it needs as it goes.
"""

from __future__ import annotations

import struct
from typing import Any

from streamlet.topology.join_buffer import segment_interval

_TIME = struct.Struct(">q")
#: rows of a key's windows in a segment: ``ROW + segment + key bytes``; all sort before ROW_END
ROW, ROW_END = b"k", b"l"
#: emit final's time index: ``CLOSING + time + key bytes``; all sort before CLOSING_END
CLOSING, CLOSING_END = b"t", b"u"
#: the row holding the latest window time written (sorts after every other row)
NEWEST = b"\xff\xffnewest"
#: the row holding the close time windows were emitted up to (emit final)
EMITTED = b"\xff\xffemitted"


def row_key(segment: int, kb: bytes) -> bytes:
    """The store key of a key's windows in ``segment``."""
    return ROW + _TIME.pack(segment) + kb


def split_row_key(rk: bytes) -> tuple[int, bytes]:
    """``(segment, key bytes)`` of a row key."""
    return _TIME.unpack_from(rk, 1)[0], rk[9:]


def closing_key(time: int, kb: bytes) -> bytes:
    """The time index key of a window of time ``time`` of key ``kb``."""
    return CLOSING + _TIME.pack(time) + kb


def split_closing_key(ck: bytes) -> tuple[int, bytes]:
    """``(time, key bytes)`` of a time index key."""
    return _TIME.unpack_from(ck, 1)[0], ck[9:]


#: one row read: (segment, row key, row)
Row = tuple[int, bytes, list[Any]]


class Segments:
    """One step's window rows in ``store``: reads of a key's rows over a time range, the newest time
    written, expiry by whole segments. :meth:`load` before the first use (the task's first record)."""

    def __init__(self, store: Any, retention: int) -> None:
        self.store = store
        self.get, self.put = store.get, store.put
        self.interval = segment_interval(retention)
        #: the latest window time written (-1: none)
        self.newest = -1
        #: segments below it are deleted (or being deleted at the next commit)
        self.live_from = 0

    def load(self) -> None:
        """Read the newest time written (one row)."""
        row = self.get(NEWEST)
        self.newest = -1 if row is None else row[0]

    def rows(self, kb: bytes, lo: int, hi: int | None = None) -> list[Row]:
        """The rows of key ``kb`` of the live segments holding times ``lo`` to ``hi`` (None: the newest);
        one read each, rows that do not exist left out."""
        iv, newest = self.interval, self.newest
        if hi is None or hi > newest:
            hi = newest
        first = max(lo, 0) // iv
        if first < self.live_from:
            first = self.live_from
        get, pack = self.get, _TIME.pack
        out = []
        for segment in range(first, hi // iv + 1) if hi >= 0 else ():
            rk = ROW + pack(segment) + kb
            row = get(rk)
            if row is not None:
                out.append((segment, rk, row))
        return out

    def note(self, time: int) -> None:
        """A window of ``time`` is about to be written: keep the newest time (its row is written before
        the window's, so a changelog that has the window has a newest time at least as new)."""
        if time > self.newest:
            self.newest = time
            self.put(NEWEST, [time])

    def expire(self, cut: int) -> None:
        """Delete every segment whose times are all before ``cut``: one range deletion for the rows, one
        for the time index, once per segment passed (not logged, like Kafka Streams' segments)."""
        live = cut // self.interval
        if live > self.live_from:
            self.live_from = live
            self.store.delete_range(row_key(0, b""), row_key(live, b""))
            self.store.delete_range(closing_key(0, b""), closing_key(live * self.interval, b""))
