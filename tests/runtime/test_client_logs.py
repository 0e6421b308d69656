"""librdkafka's repeated log lines: the first of each kind, then one summary per interval."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from streamlet.runtime.client_logs import LOGGER_NAME, RepeatFilter, client_logger, with_client_logger


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def logged() -> Any:
    """A logger like the clients' one, with a fake clock; yields (logger, filter, clock, lines)."""
    logger = logging.getLogger("test.client_logs")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    lines: list[tuple[int, str]] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append((record.levelno, record.getMessage()))

    handler = Keep()
    logger.addHandler(handler)
    clock = Clock()
    repeat = RepeatFilter(logger, interval=30, clock=clock)
    repeat._schedule = lambda delay: None  # type: ignore[method-assign]  # the test calls flush itself
    logger.addFilter(repeat)
    yield logger, repeat, clock, lines
    logger.removeFilter(repeat)
    logger.removeHandler(handler)


def refused(logger: logging.Logger, client: str = "rdkafka#consumer-1", port: int = 9092, ms: int = 0,
            level: int = logging.ERROR) -> None:
    # confluent-kafka's call for one librdkafka line
    logger.log(level, "%s [%s] %s", "FAIL", client,
               f"[thrd:127.0.0.1:{port}/bootstrap]: Connect to ipv4#127.0.0.1:{port} failed: Connection "
               f"refused (after {ms}ms in state CONNECT)")


def test_the_first_line_of_a_kind_passes_then_one_summary_per_interval(logged: Any) -> None:
    logger, repeat, clock, lines = logged
    for i in range(100):  # 100 lines in 10 s, numbers differing
        clock.now = i * 0.1
        refused(logger, ms=i % 3)
    assert len(lines) == 1 and "Connection refused" in lines[0][1]
    clock.now = 30.5
    repeat.flush()
    assert len(lines) == 2 and lines[1][1].endswith("(and 99 more like it in the last 30 s)")
    assert lines[1][0] == logging.ERROR
    for i in range(50):  # still down: the next window is summarized too, never line by line
        clock.now = 31 + i * 0.1
        refused(logger)
    clock.now = 61
    repeat.flush()
    assert len(lines) == 3 and "(and 50 more like it" in lines[2][1]
    clock.now = 200  # quiet for a while: the next line passes at once
    repeat.flush()
    refused(logger)
    assert len(lines) == 4 and "more like it" not in lines[3][1]


def test_kinds_are_per_client_and_text_and_critical_or_debug_lines_always_pass(logged: Any) -> None:
    logger, repeat, clock, lines = logged
    refused(logger, client="rdkafka#consumer-1")
    refused(logger, client="rdkafka#producer-2")
    logger.log(logging.ERROR, "%s [%s] %s", "FAIL", "rdkafka#consumer-1", "Disconnected (after 5ms in UP)")
    assert len(lines) == 3
    for _ in range(3):
        logger.log(logging.CRITICAL, "%s [%s] %s", "FATAL", "rdkafka#producer-2", "Fatal error: fenced")
        logger.log(logging.DEBUG, "%s [%s] %s", "BROKER", "rdkafka#producer-2", "debug line")
    assert len(lines) == 9


def test_a_line_after_its_window_brings_the_summary_along(logged: Any) -> None:
    logger, repeat, clock, lines = logged
    refused(logger)
    refused(logger)
    clock.now = 40  # the timer has not fired yet
    refused(logger)
    assert [t.split(" (and")[0] == lines[0][1] for _, t in lines] == [True, True, True]
    assert "(and 1 more like it in the last 40 s)" in lines[1][1]


def test_summaries_pending_at_exit_are_written(logged: Any) -> None:
    logger, repeat, clock, lines = logged
    refused(logger)
    refused(logger)
    clock.now = 5
    repeat.flush()  # the window is not over
    assert len(lines) == 1
    repeat.flush(everything=True)  # at exit
    assert len(lines) == 2 and "(and 1 more like it in the last 5 s)" in lines[1][1]


def test_clients_get_the_logger_unless_the_user_set_one_or_asked_for_debug_lines() -> None:
    assert with_client_logger({"a": 1})["logger"] is client_logger()
    assert client_logger().name == LOGGER_NAME
    assert sum(isinstance(f, RepeatFilter) for f in client_logger().filters) == 1
    mine = logging.getLogger("mine")
    assert with_client_logger({"logger": mine})["logger"] is mine
    assert "logger" not in with_client_logger({"debug": "broker"})
