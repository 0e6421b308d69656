"""The buffers of a stream–stream join: each side's recent records, and the unmatched ones waiting for
their window to close (Kafka Streams' join window stores and its "shared outer join store").

Both live in ordinary layered stores (cache → changelog → RocksDB), so they are committed, logged and
restored like every store. Reads never go through the store: the record path asks an in-memory index
of the buffered records, built from the store when the task's chains are compiled (after a restore)
and kept in step with every write. The cache's ``items()`` sorts a snapshot of the whole cache per
call, far too slow per record, and a window lookup is a range, which the cache cannot answer alone.

Store keys (all integers big-endian, timestamps >= 0):

* a side's buffer: ``segment (8) + key bytes + timestamp (8) + mark (16)``, segment = timestamp //
  segment interval, so old records expire by one ``delete_range`` over whole segments, never by a
  scan of every key;
* the shared outer buffer: ``timestamp (8) + side (1: right 0, left 1) + key bytes + mark (16)``,
  Kafka Streams' order (timestamp, side, key).

The mark makes a record's key deterministic, so a record processed again after a crash (at-least-once)
overwrites itself instead of being buffered twice: its origin offset (8), the sequence
``upstream << 16 | local`` (4) — the n-th record made from one input record — and a CRC-32 of the
origin's partition and topic (4). See :mod:`streamlet.topology.origin`.
"""

from __future__ import annotations

import struct
import zlib
from bisect import bisect_left, bisect_right
from operator import itemgetter
from typing import Any, Callable

from streamlet.topology.origin import ORIGIN_HEADER, InputSequence, input_message, read_origin

_U64 = struct.Struct(">Q")
_MARK = struct.Struct(">QII")
MARK_SIZE = _MARK.size  # 16
_TAIL = 8 + MARK_SIZE
_ts = itemgetter(0)
_ts_mark = itemgetter(0, 1)
_outer_order = itemgetter(0, 1, 2)
#: Kafka Streams' window stores' smallest segment interval
MIN_SEGMENT_MS = 60_000

#: one buffered record: (timestamp, mark, value)
Entry = tuple[int, bytes, Any]


def segment_interval(retention: int) -> int:
    """Kafka Streams' segment interval of a join window store: ``max(retention / 2, 60 s)``."""
    return max(retention // 2, MIN_SEGMENT_MS)


class Marker:
    """``mark(m)``: the 16-byte mark of the record being processed (see the module)."""

    __slots__ = ("_seq", "_crc", "_own")

    def __init__(self) -> None:
        self._seq = InputSequence()
        self._crc: dict[bytes, int] = {}
        #: (topic, partition) → CRC of an input partition's identity (no origin header: the common case)
        self._own: dict[tuple[str, int], int] = {}

    def __call__(self, m: Any) -> bytes:
        src = input_message(m)
        local = self._seq.next(m) & 0xFFFF
        headers = src.headers()
        if not headers or headers[0][0] != ORIGIN_HEADER:
            where = (src.topic(), src.partition())
            crc = self._own.get(where)
            if crc is None:
                crc = self._own[where] = zlib.crc32(read_origin(src)[2])
            return _MARK.pack(src.offset(), local, crc)
        offset, upstream, ident = read_origin(src)
        crc = self._crc.get(ident)
        if crc is None:
            crc = self._crc[ident] = zlib.crc32(ident)
        return _MARK.pack(offset, ((upstream & 0xFFFF) << 16) | local, crc)


class WindowBuffer:
    """One side's records of the last ``retention`` ms (from the latest timestamp it has seen), by key.

    ``observed`` is that latest timestamp; a record at or before ``observed - retention`` is never
    returned again (Kafka Streams' window store), and whole segments of them are deleted.
    """

    def __init__(self, cache: Any, retention: int, decode: Callable[[bytes], Any]) -> None:
        self.cache = cache
        self.retention = retention
        self.segment_ms = segment_interval(retention)
        self.observed = -1
        #: key bytes → [(timestamp, mark, value)], sorted
        self.by_key: dict[bytes, list[Entry]] = {}
        #: segment → key bytes with records in it
        self.segments: dict[int, set[bytes]] = {}
        self._live_from = 0  # the lowest segment not dropped yet
        self._load(decode)

    def _load(self, decode: Callable[[bytes], Any]) -> None:
        by_key, segments, seg_ms = self.by_key, self.segments, self.segment_ms
        for skey, vb in self.cache.items():
            kb, ts = skey[8:-_TAIL], _U64.unpack_from(skey, len(skey) - _TAIL)[0]
            by_key.setdefault(kb, []).append((ts, skey[-MARK_SIZE:], decode(vb)))
            segments.setdefault(ts // seg_ms, set()).add(kb)
            if ts > self.observed:
                self.observed = ts
        for entries in by_key.values():
            entries.sort(key=_ts_mark)
        if segments:
            self._live_from = min(segments)
        self._expire()

    def fetch(self, kb: bytes, lo: int, hi: int) -> list[Entry]:
        """Records of key ``kb`` with a timestamp in ``[lo, hi]``, oldest first (expired ones excluded)."""
        entries = self.by_key.get(kb)
        if not entries:
            return []
        floor = self.observed - self.retention + 1
        if lo < floor:
            lo = floor
        if hi < lo:
            return []
        return entries[bisect_left(entries, lo, key=_ts):bisect_right(entries, hi, key=_ts)]

    def add(self, kb: bytes, ts: int, mark: bytes, value: Any, vb: bytes) -> None:
        """Buffer a record (a replayed one, same mark, is already there: nothing happens); an expired one
        is not kept."""
        if ts > self.observed:
            self.observed = ts
            if (ts - self.retention) // self.segment_ms > self._live_from:
                self._expire()
        if ts <= self.observed - self.retention:
            return
        entries = self.by_key.get(kb)
        if entries is None:
            entries = self.by_key[kb] = []
        i = bisect_left(entries, (ts, mark), key=_ts_mark)
        if i < len(entries) and entries[i][0] == ts and entries[i][1] == mark:
            return
        entries.insert(i, (ts, mark, value))
        seg = ts // self.segment_ms
        keys = self.segments.get(seg)
        if keys is None:
            keys = self.segments[seg] = set()
        keys.add(kb)
        self.cache.put(_U64.pack(seg) + kb + _U64.pack(ts) + mark, vb)

    def _expire(self) -> None:
        """Drop the segments wholly older than ``observed - retention``: from the index, and from the
        store with one range deletion."""
        live = (self.observed - self.retention) // self.segment_ms
        if live <= self._live_from:
            return
        cutoff = live * self.segment_ms
        by_key, dropped = self.by_key, False
        for seg in [s for s in self.segments if s < live]:
            dropped = True
            for kb in self.segments.pop(seg):
                entries = by_key.get(kb)
                if entries is None:
                    continue
                del entries[:bisect_left(entries, cutoff, key=_ts)]
                if not entries:
                    del by_key[kb]
        if dropped:
            self.cache.delete_range(_U64.pack(0), _U64.pack(live))
        self._live_from = live

    def __len__(self) -> int:
        return sum(len(v) for v in self.by_key.values())


#: one unmatched record: (timestamp, key bytes, mark, key, value)
Unmatched = tuple[int, bytes, bytes, Any, Any]
LEFT, RIGHT = 1, 0  # Kafka Streams' side byte: right first at equal timestamps


class OuterBuffer:
    """Unmatched records of a left / outer join, per side, oldest first, until their window closes or a
    record of the other side matches them."""

    def __init__(self, cache: Any, decode_key: Callable[[bytes], Any],
                 decode: dict[int, Callable[[bytes], Any]]) -> None:
        self.cache = cache
        #: side → [(timestamp, key bytes, mark, key, value)], sorted
        self.sides: dict[int, list[Unmatched]] = {LEFT: [], RIGHT: []}
        for skey, vb in cache.items():
            ts, side = _U64.unpack_from(skey)[0], skey[8]
            kb, mark = skey[9:-MARK_SIZE], skey[-MARK_SIZE:]
            self.sides[side].append((ts, kb, mark, decode_key(kb), decode[side](vb)))
        for entries in self.sides.values():
            entries.sort(key=_outer_order)

    def __bool__(self) -> bool:
        return bool(self.sides[LEFT] or self.sides[RIGHT])

    def min_time(self) -> int:
        """The oldest timestamp held (the buffer must not be empty)."""
        left, right = self.sides[LEFT], self.sides[RIGHT]
        if not left:
            return right[0][0]
        if not right:
            return left[0][0]
        return min(left[0][0], right[0][0])

    def add(self, side: int, ts: int, kb: bytes, mark: bytes, key: Any, value: Any, vb: bytes) -> None:
        entries = self.sides[side]
        i = bisect_left(entries, (ts, kb, mark), key=_outer_order)
        if i < len(entries) and entries[i][0] == ts and entries[i][1] == kb and entries[i][2] == mark:
            return  # replayed
        entries.insert(i, (ts, kb, mark, key, value))
        self.cache.put(_U64.pack(ts) + bytes((side,)) + kb + mark, vb)

    def remove(self, side: int, ts: int, kb: bytes, mark: bytes) -> None:
        """A record of ``side`` was matched: it is not unmatched any more (nothing if it was not held)."""
        entries = self.sides[side]
        if not entries:
            return
        i = bisect_left(entries, (ts, kb, mark), key=_outer_order)
        if i < len(entries) and entries[i][0] == ts and entries[i][1] == kb and entries[i][2] == mark:
            del entries[i]
            self.cache.put(_U64.pack(ts) + bytes((side,)) + kb + mark, None)

    def take_closed(self, left_before: int, right_before: int) -> tuple[list[tuple[int, Unmatched]], int | None]:
        """Remove and return the left records older than ``left_before`` and the right ones older than
        ``right_before``, as ``(side, record)`` in Kafka Streams' order (timestamp, right first, key);
        with the timestamp of the last record Kafka Streams' pass over its store looks at (None: the
        store is empty), which becomes its time tracker's low mark (see :func:`last_looked_at`)."""
        left, right = self.sides[LEFT], self.sides[RIGHT]
        i = bisect_left(left, left_before, key=_ts) if left else 0
        j = bisect_left(right, right_before, key=_ts) if right else 0
        last = last_looked_at(left, right, i, j)
        if not i and not j:
            return [], last
        out = [(LEFT, e) for e in left[:i]] + [(RIGHT, e) for e in right[:j]]
        if i and j:
            out.sort(key=_side_order)
        del left[:i]
        del right[:j]
        put = self.cache.put
        for side, (ts, kb, mark, _, _) in out:
            put(_U64.pack(ts) + bytes((side,)) + kb + mark, None)
        return out, last

    def __len__(self) -> int:
        return len(self.sides[LEFT]) + len(self.sides[RIGHT])


def _side_order(se: tuple[int, Unmatched]) -> tuple[int, int, bytes, bytes]:
    side, (ts, kb, mark, _, _) = se
    return ts, side, kb, mark


def last_looked_at(left: list[Unmatched], right: list[Unmatched], i: int, j: int) -> int | None:
    """The timestamp of the last record Kafka Streams' pass over its outer join store looks at, the
    first ``i`` left and ``j`` right records being closed.

    Its pass goes through the store in (timestamp, side, key) order, emitting closed records and
    skipping open ones, and stops at the record after the one that found both sides open; each record it
    looks at sets the tracker's ``minTime``. So ``minTime`` ends as that record's timestamp, or the last
    record's when one side has nothing open, and the next pass waits until ``minTime + after + grace``
    has passed: an unmatched record can come out later than its own window's close (never earlier).
    """
    if not left and not right:
        return None
    if i == len(left) or j == len(right):  # one side has nothing open: the pass sees every record
        return max(left[-1][0] if left else -1, right[-1][0] if right else -1)
    a, b = (LEFT, left[i]), (RIGHT, right[j])
    later = max(a, b, key=_side_order)
    # the record after the later of both sides' first open records, in the store's order
    candidates = []
    if later[0] == LEFT:
        if i + 1 < len(left):
            candidates.append((LEFT, left[i + 1]))
        k = bisect_right(right, _side_order(later), key=lambda e: (e[0], RIGHT, e[1], e[2]))
        if k < len(right):
            candidates.append((RIGHT, right[k]))
    else:
        if j + 1 < len(right):
            candidates.append((RIGHT, right[j + 1]))
        k = bisect_right(left, _side_order(later), key=lambda e: (e[0], LEFT, e[1], e[2]))
        if k < len(left):
            candidates.append((LEFT, left[k]))
    nxt = min(candidates, key=_side_order) if candidates else later
    return nxt[1][0]
