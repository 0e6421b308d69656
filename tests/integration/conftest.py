"""Integration fixtures: one broker per test, of each kind chosen by `--broker mock|tansu|both`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.procs import BROKERS


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
