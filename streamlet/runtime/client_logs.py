"""librdkafka's log lines through Python logging, each kind of line at most once per interval.

While a broker is down every client logs a failed connection attempt many
times a second (measured: 441 lines in a 20 s outage of one worker). The
clients streamlet creates send their lines to the ``streamlet.kafka`` logger
(confluent-kafka's ``logger`` setting; the lines come out when the client is
polled), whose :class:`RepeatFilter` lets the first line of each kind
through, then at most one summary per interval::

    ... Connect to ipv4#127.0.0.1:9092 failed: Connection refused ... (and 57 more like it in the last 30 s)

Lines of one kind are those of one client and facility whose text differs
only in numbers (ports, milliseconds). Critical lines (librdkafka's fatal
errors) and debug lines (asked for with the ``debug`` setting) always pass.
"""

from __future__ import annotations

import atexit
import logging
import re
import threading
import time
from typing import Any, Callable

LOGGER_NAME = "streamlet.kafka"
#: seconds between two lines of one kind
INTERVAL_S = 30.0
#: kinds remembered; past it those that did not repeat are forgotten
MAX_KINDS = 1000

_NUMBERS = re.compile(r"\d+")
DEBUG, CRITICAL = logging.DEBUG, logging.CRITICAL


class _Kind:
    __slots__ = ("start", "suppressed", "last")

    def __init__(self, start: float) -> None:
        self.start = start
        self.suppressed = 0
        self.last: logging.LogRecord | None = None


class RepeatFilter(logging.Filter):
    """Passes the first line of each kind, then one summary per ``interval`` while it repeats."""

    def __init__(self, logger: logging.Logger, interval: float = INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.logger = logger
        self.interval = interval
        self.clock = clock
        self._kinds: dict[tuple[Any, ...], _Kind] = {}
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "streamlet_summary", False) or not DEBUG < record.levelno < CRITICAL:
            return True  # summaries; fatal errors; debug lines (asked for)
        key = _kind_of(record)
        now = self.clock()
        with self._lock:
            kind = self._kinds.get(key)
            if kind is not None and now - kind.start < self.interval:
                kind.suppressed += 1
                kind.last = record
                self._schedule(kind.start + self.interval - now)
                return False
            due = kind if kind is not None and kind.suppressed else None
            if len(self._kinds) >= MAX_KINDS:
                self._kinds = {k: v for k, v in self._kinds.items() if v.suppressed}
            self._kinds[key] = _Kind(now)
        if due is not None:  # the window ended before its timer fired
            self._summarize(due, now)
        return True

    def flush(self, everything: bool = False) -> None:
        """Write the summaries of the windows that are over (``everything``: of all windows)."""
        now = self.clock()
        with self._lock:
            self._timer = None
            due = []
            for key, kind in list(self._kinds.items()):
                if everything or now - kind.start >= self.interval:
                    if kind.suppressed:
                        due.append(kind)
                        self._kinds[key] = _Kind(now)  # a new window: still repeating
                    else:
                        del self._kinds[key]
            waiting = [k.start + self.interval - now for k in self._kinds.values() if k.suppressed]
            if waiting and not everything:
                self._schedule(max(min(waiting), 0.01))
        for kind in due:
            self._summarize(kind, now)

    def _schedule(self, delay: float) -> None:
        if self._timer is None:
            self._timer = threading.Timer(delay, self.flush)
            self._timer.daemon = True
            self._timer.start()

    def _summarize(self, kind: _Kind, now: float) -> None:
        last = kind.last
        assert last is not None
        text = "%s (and %d more like it in the last %.0f s)"
        args = (last.getMessage(), kind.suppressed, max(now - kind.start, 1))
        summary = self.logger.makeRecord(last.name, last.levelno, last.pathname, last.lineno, text, args,
                                         None, extra={"streamlet_summary": True})
        self.logger.handle(summary)


def _kind_of(record: logging.LogRecord) -> tuple[Any, ...]:
    args = record.args
    if isinstance(args, tuple) and len(args) == 3:  # confluent-kafka: "%s [%s] %s", facility, client, text
        return (record.levelno, args[0], args[1], _NUMBERS.sub("#", str(args[2])))
    return (record.levelno, _NUMBERS.sub("#", record.getMessage()))


def client_logger() -> logging.Logger:
    """The logger of every client streamlet creates (with its :class:`RepeatFilter`)."""
    logger = logging.getLogger(LOGGER_NAME)
    if not any(isinstance(f, RepeatFilter) for f in logger.filters):
        repeat = RepeatFilter(logger)
        logger.addFilter(repeat)
        atexit.register(repeat.flush, True)
    return logger


def with_client_logger(settings: dict[str, Any]) -> dict[str, Any]:
    """``settings`` with the ``logger`` setting, unless the user set one or asked for librdkafka's
    ``debug`` lines (those then go to stderr unfiltered, as librdkafka writes them)."""
    if "logger" in settings or "debug" in settings:
        return settings
    return {**settings, "logger": client_logger()}
