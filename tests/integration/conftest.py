"""Integration fixtures: a clean broker per test, of each kind chosen by `--broker mock|tansu|kafka|both|all`,
and the schema registry kinds chosen by `--registry embedded|apicurio|all` (registry_procs.py).

* ``broker``: a broker of the parametrized kind with no topics (see procs.py
  for its interface): a fresh process for the mock and Tansu, the session's
  Kafka JVM emptied of the topics and groups of earlier tests for Kafka; a
  test marked ``faults`` gets one whose ``outage()`` works on every kind
  (Tansu and Kafka then run behind a TCP proxy).
* ``apicurio``: the session's Apicurio Registry with no subjects (a test parametrized by
  ``registry_kind`` asks for it when the kind is ``apicurio``).
* ``report``: ``report("...")`` adds a line to the "streamlet integration
  report" printed at the end of the run (duplicates counted, splits seen).
* Workers a test started and did not stop are killed when it ends, pass or fail.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.integration.kafka_procs import prepare_kafka, stop_shared_kafka
from tests.integration.procs import BROKERS, KINDS, STARTED
from tests.integration.registry_procs import (
    REGISTRY_KINDS,
    prepare_apicurio,
    shared_apicurio,
    stop_shared_apicurio,
)

_REPORT: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "faults: the test injects broker faults (outage) on every broker kind")
    config.addinivalue_line("markers", "kafka_only: the test is about the real Kafka broker; it runs with "
                                       "--broker=kafka or --broker=all and is deselected otherwise")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "broker_kind" in metafunc.fixturenames:
        choice = metafunc.config.getoption("--broker")
        metafunc.parametrize("broker_kind", KINDS[choice])
    if "registry_kind" in metafunc.fixturenames:
        metafunc.parametrize("registry_kind", REGISTRY_KINDS[metafunc.config.getoption("--registry")])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "kafka" in KINDS[config.getoption("--broker")]:
        return
    deselected = [item for item in items if item.get_closest_marker("kafka_only")]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not item.get_closest_marker("kafka_only")]


def pytest_collection_finish(session: pytest.Session) -> None:
    """Kafka's jars are built (Maven, once per machine) before the first test, outside its timeout."""
    if any(item.get_closest_marker("kafka_only") or getattr(item, "callspec", None)
           and item.callspec.params.get("broker_kind") == "kafka" for item in session.items):
        prepare_kafka()
    if any(getattr(item, "callspec", None) and item.callspec.params.get("registry_kind") == "apicurio"
           for item in session.items):
        prepare_apicurio()  # built with Maven once per machine, like Kafka's jars


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    started = stop_shared_kafka()
    if started is not None:
        _REPORT.append(f"kafka: the session's broker started in {started:.1f} s")
    started = stop_shared_apicurio()
    if started is not None:
        _REPORT.append(f"apicurio: the session's registry started in {started:.1f} s")


@pytest.fixture
def broker(request: pytest.FixtureRequest, tmp_path: Path, broker_kind: str):
    """A broker of the parametrized kind with no topics yet; stopped after the test."""
    faults = request.node.get_closest_marker("faults") is not None
    b = BROKERS[broker_kind](tmp_path, {}, proxied=faults)
    yield b
    _kill_workers()  # before their broker goes
    b.stop()


@pytest.fixture
def apicurio(tmp_path: Path):
    """The session's Apicurio Registry, with no subjects (skips the test if it cannot run here)."""
    return shared_apicurio(tmp_path.parent)


@pytest.fixture
def report(request: pytest.FixtureRequest):
    def add(line: str) -> None:
        _REPORT.append(f"{request.node.name}: {line}")

    return add


def _kill_workers() -> None:
    for worker in list(STARTED):
        worker.stop(signal.SIGKILL, timeout=5)


@pytest.fixture(autouse=True)
def _streamlet_info_logs(caplog: pytest.LogCaptureFixture) -> None:
    """A failed test shows the INFO lines of the workers it ran in-process (joins, assignments,
    restores, loads): a rare failure in CI is then read from its log, not guessed."""
    caplog.set_level("INFO", logger="streamlet")


@pytest.fixture(autouse=True)
def _kill_leftover_workers():
    """Workers a failed test did not stop are killed (SIGKILL) when it ends."""
    yield
    _kill_workers()


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # type: ignore[no-untyped-def]
    if _REPORT:
        terminalreporter.section("streamlet integration report")
        for line in _REPORT:
            terminalreporter.write_line(line)
