"""``sl.JoinWindows``: how far apart in time two records of a stream–stream join may be (Kafka Streams'
``JoinWindows``, with KIP-633's explicit grace period)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any


def to_ms(value: Any, what: str) -> int:
    """A duration as whole milliseconds: an ``int`` of ms or a ``datetime.timedelta``."""
    if isinstance(value, timedelta):
        ms = value / timedelta(milliseconds=1)
        if ms != int(ms):
            raise ValueError(f"{what} {value!r} is not a whole number of milliseconds")
        return int(ms)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise TypeError(f"{what} must be milliseconds (int) or a datetime.timedelta, got {value!r}")


class JoinWindows:
    """A record of the left stream at time ``ts`` joins the right stream's records with a timestamp in
    ``[ts - before, ts + after]`` (a right record at ``ts`` the left records in ``[ts - after, ts + before]``).

    ``grace`` is required (KIP-633): how long after a window's end a record out of order is still
    joined; after it, unmatched left/outer results are emitted and the buffered records expire.
    ``grace=0`` is allowed but must be said.

        >>> sl.JoinWindows(before=timedelta(minutes=5), after=0, grace=timedelta(seconds=30))
        >>> sl.JoinWindows.of(timedelta(minutes=5), grace=timedelta(seconds=30))   # ±5 minutes
    """

    __slots__ = ("before", "after", "grace")

    def __init__(self, before: Any, after: Any, grace: Any) -> None:
        self.before = to_ms(before, "JoinWindows before")
        self.after = to_ms(after, "JoinWindows after")
        self.grace = to_ms(grace, "JoinWindows grace")
        if self.grace < 0:
            raise ValueError(f"JoinWindows grace must not be negative, got {self.grace} ms")
        if self.before + self.after < 0:
            raise ValueError(f"JoinWindows before + after must not be negative (the window would be empty), "
                             f"got before={self.before} ms, after={self.after} ms")

    @classmethod
    def of(cls, size: Any, *, grace: Any) -> "JoinWindows":
        """Records at most ``size`` apart either way join (Kafka Streams' ``ofTimeDifferenceAndGrace``)."""
        ms = to_ms(size, "JoinWindows size")
        if ms < 0:
            raise ValueError(f"JoinWindows size must not be negative, got {ms} ms")
        return cls(ms, ms, grace)

    @property
    def size(self) -> int:
        """``before + after``: the window's length."""
        return self.before + self.after

    @property
    def retention(self) -> int:
        """How long each side keeps a record after the latest timestamp it has seen: ``size + grace``."""
        return self.before + self.after + self.grace

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JoinWindows) and (self.before, self.after, self.grace) == (
            other.before, other.after, other.grace)

    def __hash__(self) -> int:
        return hash((self.before, self.after, self.grace))

    def __repr__(self) -> str:
        return f"JoinWindows(before={self.before}, after={self.after}, grace={self.grace})"
