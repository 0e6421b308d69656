"""The benchmark smoke tests on a real Kafka broker (``kafka_only``) run with ``--broker=kafka|all`` only."""

from __future__ import annotations

import pytest

from tests.integration.procs import KINDS


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "kafka_only: the test is about the real Kafka broker; it runs with "
                                       "--broker=kafka or --broker=all and is deselected otherwise")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "kafka" in KINDS[config.getoption("--broker")]:
        return
    deselected = [item for item in items if item.get_closest_marker("kafka_only")]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not item.get_closest_marker("kafka_only")]
