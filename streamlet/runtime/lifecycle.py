"""How a worker process stops: SIGTERM / SIGINT ask the app to stop, and leaving the group at
shutdown is waited for only so long.

The first signal starts the shutdown: the record loop finishes its batch, commits, flushes and
leaves the group. It has ``shutdown_grace_ms`` for that (:class:`ShutdownGrace`): past it, the
process exits with :data:`EXIT_GRACE_EXPIRED` at once, committing nothing more — what was processed
since the last commit is processed again by the partitions' next owner, as after a crash. A second
signal exits at once the same way (Ctrl-C twice)."""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Any, Callable

log = logging.getLogger("streamlet.runtime")


#: how long leaving the group may take at shutdown before the worker exits without waiting
CLOSE_TIMEOUT_S = 15.0


def close_within(consumer: Any, timeout_s: float) -> None:
    """``consumer.close()`` (revoke, commit, leave the group), waited for at most ``timeout_s``.

    Seen on Kafka: a member that closes while a cooperative rebalance is under way can wait in
    close() for the rebalance to end (up to ``max.poll.interval.ms``). The offsets are committed by
    then, so after the timeout the worker exits anyway and the group moves its partitions after
    ``session.timeout.ms`` — a pod never outlives its termination grace period here.
    """
    done = threading.Event()
    failed: list[BaseException] = []

    def close() -> None:
        try:
            consumer.close()
        except BaseException as exc:
            failed.append(exc)
        finally:
            done.set()

    threading.Thread(target=close, name="streamlet-consumer-close", daemon=True).start()
    if not done.wait(timeout_s):
        log.warning("leaving the group took more than %.0f s (a rebalance under way?): exiting without "
                    "waiting; the offsets are committed, and the group moves this worker's partitions "
                    "after session.timeout.ms", timeout_s)
        return
    if failed:
        raise failed[0]


#: the exit code of a worker whose shutdown outlived its grace period (as ``timeout(1)``)
EXIT_GRACE_EXPIRED = 124


class ShutdownGrace:
    """A deadline for the shutdown a signal started: :meth:`start` arms it, :meth:`finish` (the shutdown
    is done) disarms it; when it passes first, ``exit(EXIT_GRACE_EXPIRED)`` (``os._exit``: no cleanup
    that could hang, no commit)."""

    def __init__(self, grace_s: float, exit: Callable[[int], Any] = os._exit) -> None:
        self.grace_s = grace_s
        self._exit = exit
        self._done = threading.Event()
        self.started = False
        self.expired = False

    def start(self) -> None:
        if self.started:
            return
        self.started = True
        threading.Thread(target=self._watch, name="streamlet-shutdown-grace", daemon=True).start()

    def _watch(self) -> None:
        if self._done.wait(self.grace_s):
            return
        self.expired = True
        log.error("the shutdown did not finish within shutdown_grace_ms=%.0f: exiting (%d) without committing "
                  "more; the records processed since the last commit are processed again by the next owner of "
                  "the partitions", self.grace_s * 1000, EXIT_GRACE_EXPIRED)
        self._exit(EXIT_GRACE_EXPIRED)

    def now(self) -> None:
        """A second signal: exit at once."""
        self.expired = True
        log.error("second stop signal: exiting (%d) without finishing the shutdown", EXIT_GRACE_EXPIRED)
        self._exit(EXIT_GRACE_EXPIRED)

    def finish(self) -> None:
        self._done.set()


class SignalHandlers(dict):
    """The handlers :func:`install_signal_handlers` replaced (signal → old handler), and the grace."""

    grace: ShutdownGrace | None = None


def install_signal_handlers(stop: Any, grace_s: float | None = None,
                            exit: Callable[[int], Any] = os._exit) -> SignalHandlers:
    """SIGTERM / SIGINT call ``stop()`` (in the main thread only: elsewhere nothing is installed). With
    ``grace_s`` the first signal also arms a :class:`ShutdownGrace`, and a second one exits at once."""
    old = SignalHandlers()
    if threading.current_thread() is not threading.main_thread():
        return old
    grace = old.grace = ShutdownGrace(grace_s, exit) if grace_s is not None else None

    def on_signal(signum: int, _frame: Any) -> None:
        if grace is not None and grace.started:
            grace.now()
            return
        log.info("%s: stopping (commit, flush, then leave the group; a static member keeps its place until "
                 "session.timeout.ms)", signal.Signals(signum).name)
        stop()
        if grace is not None:
            grace.start()

    for sig in (signal.SIGTERM, signal.SIGINT):
        old[sig] = signal.getsignal(sig)
        signal.signal(sig, on_signal)
    return old


def restore_signal_handlers(old: dict[int, Any]) -> None:
    """The shutdown is done: the grace is disarmed, the old handlers are back."""
    grace = getattr(old, "grace", None)
    if grace is not None:
        grace.finish()
    for sig, handler in old.items():
        signal.signal(sig, handler)
