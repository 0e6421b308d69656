"""Exactly-once started twice in one process: the second start reuses the first's transactional id
(the runner frees the process id at shutdown), and a read_committed reader sees each output once."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest

import streamlet as sl
from tests.integration.kafka_io import produce, read_committed, wait_committed
from tests.integration.procs import app_in_thread

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def run_once(broker, state_dir: Path, first: int, count: int) -> str:
    """Run the app until ``count`` more orders are committed; the transactional id it used."""
    app = sl.App("eos-restart", brokers=broker.bootstrap, state_dir=str(state_dir), guarantee="exactly_once")
    app.stream("orders").map_values(lambda v: {"i": v["i"], "twice": 2 * v["i"]}).to("doubled")
    with app_in_thread(app) as errors:
        deadline = time.monotonic() + 60
        while not (app._runner and app._runner.transactional_id):
            assert time.monotonic() < deadline and not errors, errors
            time.sleep(0.05)
        tid = app._runner.transactional_id
        produce(broker.bootstrap, "orders", [(f"k{i % 7}", {"i": i}) for i in range(first, first + count)])
        wait_committed(broker.bootstrap, "eos-restart", "orders", 2, 120)
    assert not errors, errors
    return tid


def test_a_second_start_in_the_process_reuses_the_transactional_id(tmp_path: Path, broker,
                                                                    broker_kind: str) -> None:
    if broker_kind == "mock":
        pytest.skip("the embedded broker refuses exactly-once at start")
    for topic in ("orders", "doubled"):
        broker.create_topic(topic, 2)
    first = run_once(broker, tmp_path / "state", 0, 50)
    again = run_once(broker, tmp_path / "state", 50, 50)
    pid = (tmp_path / "state" / "eos-restart" / "process-id").read_text()
    assert first == again == f"eos-restart-{pid}"
    got = sorted(orjson.loads(m.value())["i"] for m in read_committed(broker.bootstrap, "doubled", 2))
    assert got == list(range(100))
