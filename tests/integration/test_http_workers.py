"""The worker's HTTP side on real workers (issue #16): `streamlet run` with
``STREAMLET_APPLICATION_SERVER``; the test asks it what a Kubernetes probe, Prometheus and a person
with curl would, while it processes and while it restores."""

from __future__ import annotations

import socket
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from tests.integration.kafka_io import produce, wait_committed
from tests.integration.procs import Worker, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

PARTITIONS = 4
APP = "http-side"
SCRIPT = f"""
import streamlet as sl

app = sl.App({APP!r})
app.stream("words").group_by_key().count(name="counts")
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(tmp: Path, broker: Any, port: int, state: str = "state") -> Worker:
    path = tmp / "http_app.py"
    path.write_text(textwrap.dedent(SCRIPT))
    return Worker(tmp, path, broker.bootstrap, tmp / state, f"{APP}-{state}",
                  env={"STREAMLET_APPLICATION_SERVER": f"127.0.0.1:{port}"})


def get(port: int, path: str, **params: Any) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{port}{path}", params=params, timeout=10)


def metric(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + " ") or line.startswith(name + "{"))


def test_probes_metrics_and_queries_while_processing(tmp_path: Path, broker: Any) -> None:
    broker.create_topic("words", PARTITIONS)
    port = free_port()
    w = start(tmp_path, broker, port)
    wait_until(lambda: _answers(port, "/ready", 200), 60, "the worker to be ready", workers=[w], interval=0.2)
    records = [(f"w{n % 50}", {"n": n}) for n in range(20_000)]
    produce(broker.bootstrap, "words", records)
    health = [get(port, "/health").status_code for _ in range(20)]  # while it processes
    wait_committed(broker.bootstrap, APP, "words", PARTITIONS, 90, [w])
    assert set(health) == {200}
    expected = Counter(k for k, _ in records)
    for key in ("w0", "w7", "w49"):
        r = get(port, f"/stores/counts/{key}")
        assert r.status_code == 200 and r.json() == {"key": key, "value": expected[key]}
    scan = get(port, "/stores/counts", **{"from": "w1", "to": "w19", "limit": 5}).json()
    assert [row["key"] for row in scan["rows"]] == ["w1", "w10", "w11", "w12", "w13"] and scan["truncated"]
    text = get(port, "/metrics").text
    assert metric(text, "streamlet_records_processed_total") == 20_000
    assert metric(text, "streamlet_ready") == 1 and metric(text, "streamlet_commits_total") >= 1
    assert metric(text, "streamlet_store_estimated_keys") > 0
    assert 'streamlet_tasks{state="RUNNING"} 4' in text
    wait_until(lambda: "streamlet_consumer_lag{" in get(port, "/metrics").text, 30, "the consumer lag",
               workers=[w], interval=0.5)
    assert metric(get(port, "/metrics").text, "streamlet_consumer_lag") == 0
    # bad requests: a clear 4xx, never a crash
    assert get(port, "/stores/nope/x").status_code == 404
    assert get(port, "/stores/counts/missing").status_code == 404
    assert get(port, "/stores/counts", limit="many").status_code == 400
    assert httpx.post(f"http://127.0.0.1:{port}/stores/counts/w0").status_code == 405
    assert get(port, "/health").json()["status"] == "UP"
    assert w.stop() == 0
    with pytest.raises(httpx.TransportError):
        get(port, "/health")  # the HTTP side stops with the worker


@pytest.mark.faults
def test_not_ready_while_restoring(tmp_path: Path, broker: Any) -> None:
    """A worker with a fresh state dir restores the counts from the changelog: /ready answers 503
    ("restoring") until every task runs, /health is 200 all along. The embedded broker delays its
    responses by 200 ms for the second worker (its fault API), so that the restore lasts long
    enough to be seen."""
    if broker.kind != "mock":
        pytest.skip("delaying responses is the embedded broker's fault API (rd_kafka_mock_broker_set_rtt)")
    broker.create_topic("words", PARTITIONS)
    port = free_port()
    first = start(tmp_path, broker, port)
    produce(broker.bootstrap, "words", [(f"k{n}", {"n": n}) for n in range(60_000)])
    wait_committed(broker.bootstrap, APP, "words", PARTITIONS, 120, [first])
    assert first.stop() == 0
    broker.fault(rtt={"broker": 1, "ms": 200})
    w = start(tmp_path, broker, port, state="fresh")
    seen: list[tuple[int, str]] = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            r = get(port, "/ready")
        except httpx.TransportError:
            w.check_alive()
            time.sleep(0.02)
            continue
        seen.append((r.status_code, r.json()["state"]))
        if r.status_code == 200:
            break
        assert get(port, "/health").status_code == 200
        time.sleep(0.02)
    assert seen[-1] == (200, "running"), w.tail()
    assert (503, "restoring") in seen, seen
    assert all(code == 503 for code, _ in seen[:-1])
    assert get(port, "/stores/counts/k12345").json()["value"] == 1
    text = get(port, "/metrics").text
    assert metric(text, "streamlet_restore_records") == metric(text, "streamlet_restore_records_expected") > 0
    assert w.stop() == 0


def _answers(port: int, path: str, status: int) -> bool:
    try:
        return get(port, path).status_code == status
    except httpx.TransportError:
        return False


def test_a_key_another_worker_holds_is_answered_by_asking_it(tmp_path: Path, broker: Any) -> None:
    """Two workers split the partitions; each answers every key — its own from its stores, the other's
    by asking the worker that holds it (found through the members the workers publish)."""
    broker.create_topic("words", PARTITIONS)
    ports = [free_port(), free_port()]
    workers = [start(tmp_path, broker, port, state=f"state{i}") for i, port in enumerate(ports)]

    def split() -> bool:
        owned = [w.owned() for w in workers]
        return all(owned) and not owned[0] & owned[1] and len(owned[0] | owned[1]) == PARTITIONS

    wait_until(split, 90, "both workers to own partitions", workers=workers, interval=0.2)
    records = [(f"w{n % 40}", {"n": n}) for n in range(4_000)]
    produce(broker.bootstrap, "words", records)
    wait_committed(broker.bootstrap, APP, "words", PARTITIONS, 90, workers)
    expected = Counter(k for k, _ in records)
    local = [{row["key"] for row in get(p, "/stores/counts", limit=1000).json()["rows"]} for p in ports]
    assert local[0] and local[1] and not local[0] & local[1] and local[0] | local[1] == set(expected)

    def everything_answered() -> bool:
        return all(get(p, f"/stores/counts/{k}").status_code == 200 for p in ports for k in expected)

    wait_until(everything_answered, 30, "each worker to know the other's HTTP side", workers=workers, interval=0.5)
    for port in ports:
        for key in expected:
            assert get(port, f"/stores/counts/{key}").json() == {"key": key, "value": expected[key]}
    assert get(ports[0], "/stores/counts/nothing-here").status_code in (404, 503)
    assert [w.stop() for w in workers] == [0, 0]
