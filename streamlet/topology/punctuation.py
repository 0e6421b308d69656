"""Punctuation: callbacks a processor schedules on stream time or wall-clock time.

As Kafka Streams' ``ProcessorContext.schedule``: a STREAM_TIME punctuator is
aligned to multiples of its interval and fires when the task's stream time
(the largest record timestamp it has processed) reaches its next time; a
WALL_CLOCK_TIME one fires ``interval`` after it was scheduled, then every
interval. Either fires once per check however many intervals went by (the
next time is the next multiple after now), with the current time as its
argument. The runtime checks after each batch (stream time) and once per
loop (wall clock); the TestDriver after each record and on
``advance_wall_clock``.

A punctuator may forward records downstream (``context.forward``): they carry
the punctuation's time as their timestamp unless given one, and, for
aggregations behind a repartition, an origin of their own (the punctuation
type and time), so that a replayed stream-time punctuation is recognised.
"""

from __future__ import annotations

import enum
import time
from typing import Any, Callable, Iterable

from streamlet.errors import PunctuationError
from streamlet.record import Record, RecordMessage

Punctuator = Callable[[int], None]


class PunctuationType(enum.Enum):
    """What a punctuator's interval is measured in (Kafka Streams' ``PunctuationType``)."""

    STREAM_TIME = "stream_time"
    WALL_CLOCK_TIME = "wall_clock_time"
    WALL_CLOCK = "wall_clock_time"  # the same member, a shorter name


def wall_clock_ms() -> int:
    return int(time.time() * 1000)


class Cancellable:
    """A scheduled punctuator; :meth:`cancel` stops it (also from inside its own callback)."""

    __slots__ = ("interval", "type", "callback", "due", "cancelled", "_owner")

    def __init__(self, interval: int, kind: PunctuationType, callback: Punctuator, due: int,
                 owner: "TaskPunctuation") -> None:
        self.interval, self.type, self.callback, self.due = interval, kind, callback, due
        self.cancelled = False
        self._owner = owner

    def cancel(self) -> None:
        if not self.cancelled:
            self.cancelled = True
            self._owner._cancelled(self)

    def _next(self, now: int) -> None:
        due = self.due + self.interval
        if now >= due:  # missed intervals fire once: the next time is the first multiple after now
            due = self.due + ((now - self.due) // self.interval + 1) * self.interval
        self.due = due

    def __repr__(self) -> str:
        return f"<punctuator {self.type.name} every {self.interval} ms, next at {self.due}>"


class PunctuationMessage(RecordMessage):
    """The message context of one punctuation: the origin of the records it forwards
    (``topic`` names the punctuation type, ``offset`` is its time)."""

    __slots__ = ()


_ORIGIN = {PunctuationType.STREAM_TIME: "streamlet.punctuation.stream-time",
           PunctuationType.WALL_CLOCK_TIME: "streamlet.punctuation.wall-clock"}
_NEVER = 2**63


class TaskPunctuation:
    """The punctuators of one task (``ctx.punctuation``); ``clock()`` gives wall-clock ms."""

    def __init__(self, ctx: Any, clock: Callable[[], int]) -> None:
        self.ctx = ctx
        self.clock = clock
        self.schedules: dict[PunctuationType, list[Cancellable]] = {t: [] for t in _ORIGIN}
        #: the earliest next time of each type (``_NEVER`` without punctuators)
        self.next_stream = self.next_wall = _NEVER
        self._last: dict[PunctuationType, PunctuationMessage] = {}

    def schedule(self, interval_ms: int, kind: PunctuationType, callback: Punctuator) -> Cancellable:
        if not isinstance(kind, PunctuationType):
            raise TypeError(f"schedule() takes a PunctuationType (STREAM_TIME or WALL_CLOCK_TIME), got {kind!r}")
        if isinstance(interval_ms, bool) or not isinstance(interval_ms, int) or interval_ms < 1:
            raise ValueError(f"schedule() needs an interval of at least 1 ms, got {interval_ms!r}")
        if not callable(callback):
            raise TypeError("schedule() needs a callback(timestamp_ms)")
        # stream time: aligned to 0, so it fires as soon as there is data; wall clock: from now
        due = 0 if kind is PunctuationType.STREAM_TIME else self.clock() + interval_ms
        handle = Cancellable(interval_ms, kind, callback, due, self)
        self.schedules[kind].append(handle)
        self._recompute(kind)
        return handle

    def _cancelled(self, handle: Cancellable) -> None:
        schedules = self.schedules[handle.type]
        if handle in schedules:
            schedules.remove(handle)
        self._recompute(handle.type)

    def _recompute(self, kind: PunctuationType) -> None:
        due = min((s.due for s in self.schedules[kind]), default=_NEVER)
        if kind is PunctuationType.STREAM_TIME:
            self.next_stream = due
        else:
            self.next_wall = due

    def punctuate_stream_time(self) -> bool:
        """Fire the stream-time punctuators that are due at the task's stream time."""
        now = self.ctx.stream_time
        if now < self.next_stream:
            return False
        return self._fire(PunctuationType.STREAM_TIME, now)

    def punctuate_wall_clock(self, now: int | None = None) -> bool:
        """Fire the wall-clock punctuators due at ``now`` (default: the clock)."""
        if now is None:
            now = self.clock()
        if now < self.next_wall:
            return False
        return self._fire(PunctuationType.WALL_CLOCK_TIME, now)

    def _fire(self, kind: PunctuationType, now: int) -> bool:
        ctx = self.ctx
        msg = self._last.get(kind)
        if msg is None or msg.offset() != now:
            # one context per punctuation time: records of several punctuators are numbered in order
            msg = self._last[kind] = PunctuationMessage(_ORIGIN[kind], ctx.partition, now, now)
        fired = False
        schedules = self.schedules[kind]
        # one round: every punctuator due now fires once, earliest first (also one scheduled meanwhile)
        done: set[int] = set()
        while True:
            due = [s for s in schedules if s.due <= now and id(s) not in done]
            if not due:
                break
            handle = min(due, key=lambda s: s.due)
            done.add(id(handle))
            saved = ctx.msg
            ctx.msg = msg
            try:
                handle.callback(now)
            except Exception as exc:
                raise PunctuationError(
                    f"task {ctx.task_id}: a {kind.name} punctuator ({_name(handle.callback)}, every "
                    f"{handle.interval} ms) raised at {now}: {type(exc).__name__}: {exc}. The worker stops "
                    "without committing past its last commit; fix the punctuator (or catch what it may "
                    "raise in it) and restart") from exc
            finally:
                ctx.msg = saved
            fired = True
            if not handle.cancelled:
                handle._next(now)
        self._recompute(kind)
        return fired


def _name(fn: Any) -> str:
    return getattr(fn, "__qualname__", None) or type(fn).__name__


class Processor:
    """Base of a stateful-in-Python processor, as Kafka Streams' ``Processor``: pass the class to
    ``stream.process(MyProcessor)``; each task makes its own instance, calls ``init(context)`` once,
    ``process(record)`` per record, and ``close()`` when the task is closed.

    ``process`` returns what a ``process()`` function returns: ``None``, a Record, or Records;
    ``context.forward`` sends more (from a punctuator too).
    """

    def init(self, context: "ProcessorContext") -> None:
        """Called once per task before its first record: schedule punctuators here."""

    def process(self, record: Record) -> Record | Iterable[Record] | None:
        raise NotImplementedError("a Processor implements process(record)")

    def close(self) -> None:
        """Called when the task is closed (revoked, corrupted store, shutdown)."""


_NO_VALUE = object()


class ProcessorContext:
    """What a :class:`Processor` sees of its task (Kafka Streams' ``ProcessorContext``)."""

    def __init__(self, ctx: Any, forward: Callable[[Record, Any], None], clock: Callable[[], int]) -> None:
        self._ctx = ctx
        self._forward = forward
        self._clock = clock

    @property
    def task_id(self) -> str:
        return self._ctx.task_id

    @property
    def partition(self) -> int:
        return self._ctx.partition

    @property
    def stream_time(self) -> int:
        """The largest record timestamp this task has processed (ms; -1 before its first record)."""
        return self._ctx.stream_time

    @property
    def wall_clock_time(self) -> int:
        """Wall-clock time in ms (the TestDriver's clock under test)."""
        return self._clock()

    def schedule(self, interval_ms: int, punctuation_type: PunctuationType,
                 callback: Punctuator) -> Cancellable:
        """Call ``callback(timestamp_ms)`` every ``interval_ms`` of stream time or wall-clock time;
        returns a handle whose ``cancel()`` stops it."""
        punctuation = self._ctx.punctuation
        if punctuation is None:
            punctuation = self._ctx.punctuation = TaskPunctuation(self._ctx, self._clock)
        return punctuation.schedule(interval_ms, punctuation_type, callback)

    def forward(self, key: Any, value: Any = _NO_VALUE, timestamp: int | None = None,
                headers: list[tuple[str, bytes]] | None = None) -> None:
        """Send a record to the next steps: ``forward(record)`` or ``forward(key, value,
        timestamp=, headers=)``. The timestamp defaults to the current record's, or in a punctuator
        to the punctuation's time."""
        m = self._ctx.msg
        if value is _NO_VALUE:
            if not isinstance(key, Record):
                raise TypeError("forward() takes a Record, or a key and a value")
            record = key
        elif isinstance(m, PunctuationMessage):
            record = Record(key, value, m.timestamp()[1] if timestamp is None else timestamp, None, -1, -1,
                            headers)
        else:
            record = Record(key, value, m.timestamp()[1] if timestamp is None else timestamp, m.topic(),
                            m.partition(), m.offset(), m.headers() if headers is None else headers)
        self._forward(record, m)
