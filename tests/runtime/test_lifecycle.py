"""The shutdown grace: a signal stops the app and arms a deadline; past it the process exits 124."""

from __future__ import annotations

import os
import signal
import threading

from streamlet.runtime.lifecycle import (
    EXIT_GRACE_EXPIRED,
    ShutdownGrace,
    install_signal_handlers,
    restore_signal_handlers,
)



def test_an_expired_grace_exits_124() -> None:
    codes: list[int] = []
    done = threading.Event()
    grace = ShutdownGrace(0.05, lambda code: (codes.append(code), done.set()))
    grace.start()
    assert done.wait(10)
    assert codes == [EXIT_GRACE_EXPIRED] and grace.expired


def test_a_shutdown_that_finishes_in_time_does_not_exit() -> None:
    codes: list[int] = []
    grace = ShutdownGrace(30, codes.append)
    grace.start()
    grace.finish()
    grace.start()  # armed once only
    assert codes == [] and not grace.expired


def test_the_first_signal_stops_and_arms_the_grace_the_second_exits() -> None:
    stopped: list[bool] = []
    codes: list[int] = []
    handlers = install_signal_handlers(lambda: stopped.append(True), 30, codes.append)
    try:
        assert handlers.grace is not None
        os.kill(os.getpid(), signal.SIGTERM)
        assert stopped == [True] and handlers.grace.started and codes == []
        os.kill(os.getpid(), signal.SIGINT)
        assert codes == [EXIT_GRACE_EXPIRED]
    finally:
        restore_signal_handlers(handlers)
    assert signal.getsignal(signal.SIGTERM) is handlers[signal.SIGTERM]


def test_no_handlers_outside_the_main_thread() -> None:
    out: list[object] = []
    t = threading.Thread(target=lambda: out.append(install_signal_handlers(lambda: None, 1)))
    t.start()
    t.join()
    assert out[0] == {} and out[0].grace is None  # type: ignore[attr-defined]
