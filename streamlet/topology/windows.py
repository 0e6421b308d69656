"""Window definitions (Kafka Streams' ``TimeWindows``, ``SlidingWindows``, ``SessionWindows``).

Times are milliseconds (an ``int``) or a :class:`datetime.timedelta`. Grace
is always explicit, as in Kafka Streams 3+ (``ofSizeAndGrace`` /
``ofSizeWithNoGrace``): how long after a window ends it still takes late
records, by stream time. A record is dropped as late when its window's
``end + grace <= stream time``.

    sl.Tumbling(timedelta(minutes=1), grace=timedelta(seconds=10))
    sl.Hopping(size=60_000, advance=10_000, grace=0)
    sl.Session(gap=timedelta(minutes=5), grace=0)
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from streamlet.errors import TopologyError

_REQUIRED: Any = object()


def duration_ms(value: Any, what: str) -> int:
    """``value`` (milliseconds or a ``timedelta``) as whole milliseconds, never negative."""
    if isinstance(value, timedelta):
        ms = int(value / timedelta(milliseconds=1))
    elif isinstance(value, int) and not isinstance(value, bool):
        ms = value
    else:
        raise TopologyError(f"{what} must be milliseconds (int) or a datetime.timedelta, got {value!r}")
    if ms < 0:
        raise TopologyError(f"{what} must not be negative, got {ms} ms")
    return ms


def _grace(grace: Any, example: str) -> int:
    if grace is _REQUIRED:
        raise TopologyError(
            f"say how long the window takes late records: {example} (grace=0: none); "
            "a record is dropped once its window's end + grace <= stream time"
        )
    return duration_ms(grace, "grace")


class TimeWindows:
    """Fixed-size windows ``[start, start + size)`` starting every ``advance`` ms from 0."""

    kind = "time"

    def __init__(self, size: Any, advance: Any, grace: Any, retention: Any, example: str) -> None:
        self.size = duration_ms(size, "window size")
        self.advance = duration_ms(advance, "window advance")
        if self.size <= 0:
            raise TopologyError(f"a window's size must be positive, got {self.size} ms")
        if not 0 < self.advance <= self.size:
            raise TopologyError(f"a window's advance must be > 0 and <= its size ({self.size} ms), "
                                f"got {self.advance} ms")
        self.grace = _grace(grace, example)
        least = self.size + self.grace
        #: how long a window stays in the store (and queryable) after it starts
        self.retention = least if retention is None else duration_ms(retention, "retention")
        if self.retention < least:
            raise TopologyError(f"retention ({self.retention} ms) must be at least size + grace ({least} ms): "
                                "a window must stay in the store while it takes records")

    def starts(self, ts: int) -> range:
        """The starts of the windows ``ts`` falls in, oldest first (``start <= ts < start + size``)."""
        advance = self.advance
        first = max(0, ts - self.size + advance) // advance * advance
        return range(first, ts + 1, advance)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size}, advance={self.advance}, grace={self.grace})"


class Tumbling(TimeWindows):
    """Back-to-back windows of ``size``: each record falls in exactly one (Kafka Streams'
    ``TimeWindows.ofSizeAndGrace(size, grace)``; ksqlDB's ``WINDOW TUMBLING``)."""

    def __init__(self, size: Any, *, grace: Any = _REQUIRED, retention: Any = None) -> None:
        super().__init__(size, size, grace, retention, "sl.Tumbling(60_000, grace=5_000)")


class Hopping(TimeWindows):
    """Windows of ``size`` starting every ``advance``: a record falls in ``size / advance`` of them
    (``TimeWindows.ofSizeAndGrace(size, grace).advanceBy(advance)``; ksqlDB's ``WINDOW HOPPING``)."""

    def __init__(self, size: Any, advance: Any, *, grace: Any = _REQUIRED, retention: Any = None) -> None:
        super().__init__(size, advance, grace, retention, "sl.Hopping(60_000, 10_000, grace=5_000)")


class Sliding:
    """Windows ``[t - max_difference, t]`` ending at each record (both ends inclusive): each aggregate
    covers the records at most ``max_difference`` apart (Kafka Streams'
    ``SlidingWindows.ofTimeDifferenceAndGrace``; ksqlDB has none)."""

    kind = "sliding"

    def __init__(self, max_difference: Any, *, grace: Any = _REQUIRED, retention: Any = None) -> None:
        self.max_difference = duration_ms(max_difference, "max_difference")
        if self.max_difference <= 0:
            raise TopologyError(f"a sliding window's max_difference must be positive, got {self.max_difference} ms")
        self.grace = _grace(grace, "sl.Sliding(10_000, grace=0)")
        least = 2 * self.max_difference + self.grace
        #: how long a window stays in the store: a new record may need windows up to 2 x max_difference old
        self.retention = least if retention is None else duration_ms(retention, "retention")
        if self.retention < least:
            raise TopologyError(f"retention ({self.retention} ms) must be at least 2 x max_difference + grace "
                                f"({least} ms)")
        #: the windowed key's span (its serde writes only the start)
        self.size = self.max_difference

    def __repr__(self) -> str:
        return f"Sliding(max_difference={self.max_difference}, grace={self.grace})"


class Session:
    """Activity sessions: records of a key closer than ``gap`` apart share a window (Kafka Streams'
    ``SessionWindows.ofInactivityGapAndGrace``; ksqlDB's ``WINDOW SESSION``)."""

    kind = "session"

    def __init__(self, gap: Any, *, grace: Any = _REQUIRED, retention: Any = None) -> None:
        self.gap = duration_ms(gap, "session gap")
        if self.gap <= 0:
            raise TopologyError(f"a session gap must be positive, got {self.gap} ms")
        self.grace = _grace(grace, "sl.Session(300_000, grace=0)")
        least = self.gap + self.grace
        #: how long after its end a session stays in the store (and queryable)
        self.retention = least if retention is None else duration_ms(retention, "retention")
        if self.retention < least:
            raise TopologyError(f"retention ({self.retention} ms) must be at least gap + grace ({least} ms): "
                                "a session must stay in the store while a record may still join it")

    def __repr__(self) -> str:
        return f"Session(gap={self.gap}, grace={self.grace})"
