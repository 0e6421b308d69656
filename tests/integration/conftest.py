"""Integration fixtures: one broker per test, of each kind chosen by `--broker mock|tansu|both`."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.integration.procs import BROKERS, STARTED


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "broker_kind" in metafunc.fixturenames:
        choice = metafunc.config.getoption("--broker")
        kinds = ["mock", "tansu"] if choice == "both" else [choice]
        metafunc.parametrize("broker_kind", kinds)


@pytest.fixture
def any_broker(tmp_path: Path, broker_kind: str):
    """A broker of the parametrized kind with no topics yet; stopped after the test."""
    broker = BROKERS[broker_kind](tmp_path, {})
    yield broker
    broker.stop()


@pytest.fixture(autouse=True)
def _kill_leftover_workers():
    """Workers a failed test did not stop are killed (SIGKILL) when it ends."""
    yield
    for worker in list(STARTED):
        worker.stop(signal.SIGKILL, timeout=5)
