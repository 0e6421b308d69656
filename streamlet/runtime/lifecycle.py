"""How a worker process stops: SIGTERM / SIGINT ask the app to stop, and leaving the group at
shutdown is waited for only so long."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

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


def install_signal_handlers(stop: Any) -> dict[int, Any]:
    if threading.current_thread() is not threading.main_thread():
        return {}
    old = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        old[sig] = signal.getsignal(sig)
        signal.signal(sig, lambda *_: stop())
    return old


def restore_signal_handlers(old: dict[int, Any]) -> None:
    for sig, handler in old.items():
        signal.signal(sig, handler)
