"""Stateless workers as real processes (`streamlet run`) on a real broker process.

Runs on the embedded mock (`streamlet broker`) and on Tansu, chosen with
`--broker mock|tansu|both`.
"""

from __future__ import annotations

import signal
import textwrap
import time
from pathlib import Path

import orjson
import pytest

from tests.integration.procs import (
    Worker,
    committed,
    end_offsets,
    produce,
    read_all,
    wait_committed,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

PARTITIONS = 4
SCRIPT = """
import streamlet as sl

app = sl.App("{app_id}")

def is_even(k, v):
    if v.get("boom"):
        raise ValueError("boom in the user function")
    return v["n"] % 2 == 0

app.stream("in").filter(is_even).map_values(lambda v: {{**v, "even": True}}).to("out")
"""


def setup(tmp: Path, broker, app_id: str, records: int) -> tuple[Path, list[tuple[str, dict]]]:
    broker.create_topic("in", PARTITIONS)
    broker.create_topic("out", PARTITIONS)
    script = tmp / f"{app_id}.py"
    script.write_text(textwrap.dedent(SCRIPT.format(app_id=app_id)))
    data = [(f"k{n % 50}", {"n": n}) for n in range(records)]
    return script, data


def output_numbers(bootstrap: str) -> list[int]:
    return [orjson.loads(m.value())["n"] for m in read_all(bootstrap, "out", PARTITIONS)]


def test_one_worker_processes_everything_and_sigterm_commits_and_exits_0(tmp_path: Path, any_broker) -> None:
    script, data = setup(tmp_path, any_broker, "one-worker", 4_000)
    produce(any_broker.bootstrap, "in", data)
    w = Worker(tmp_path, script, any_broker.bootstrap, tmp_path / "state", "w")
    wait_committed(any_broker.bootstrap, "one-worker", "in", PARTITIONS, 90, [w])
    assert w.stop(signal.SIGTERM) == 0
    assert committed(any_broker.bootstrap, "one-worker", "in", PARTITIONS) == end_offsets(
        any_broker.bootstrap, "in", PARTITIONS)
    assert sorted(output_numbers(any_broker.bootstrap)) == list(range(0, 4_000, 2))
    out = read_all(any_broker.bootstrap, "out", PARTITIONS)
    assert all(orjson.loads(m.value())["even"] for m in out)
    assert {m.key().decode() for m in out} <= {f"k{i}" for i in range(50)}


def test_two_workers_in_one_group_split_the_partitions(tmp_path: Path, any_broker) -> None:
    script, data = setup(tmp_path, any_broker, "two-workers", 6_000)
    workers = [Worker(tmp_path, script, any_broker.bootstrap, tmp_path / f"s{i}", f"w{i}") for i in range(2)]
    try:
        time.sleep(8)  # let both join before data arrives
        produce(any_broker.bootstrap, "in", data)
        wait_committed(any_broker.bootstrap, "two-workers", "in", PARTITIONS, 120, workers)
    finally:
        codes = [w.stop() for w in workers]
    assert codes == [0, 0]
    logs = [w.log_path.read_text() for w in workers]
    assert all("assigned in[" in log for log in logs), "each worker owned partitions at some point"
    numbers = output_numbers(any_broker.bootstrap)
    assert set(numbers) == set(range(0, 6_000, 2))


def test_sigkill_mid_run_and_restart_loses_nothing(tmp_path: Path, any_broker) -> None:
    script, data = setup(tmp_path, any_broker, "killed", 20_000)
    produce(any_broker.bootstrap, "in", data[:10_000])
    w = Worker(tmp_path, script, any_broker.bootstrap, tmp_path / "state", "w1")
    deadline = time.monotonic() + 60
    while sum(max(o, 0) for o in committed(any_broker.bootstrap, "killed", "in", PARTITIONS).values()) == 0:
        assert time.monotonic() < deadline, w.log_path.read_text()[-2000:]
        time.sleep(0.1)
    produce(any_broker.bootstrap, "in", data[10_000:])
    w.stop(signal.SIGKILL)
    w = Worker(tmp_path, script, any_broker.bootstrap, tmp_path / "state", "w2")
    wait_committed(any_broker.bootstrap, "killed", "in", PARTITIONS, 120, [w])
    assert w.stop() == 0
    numbers = output_numbers(any_broker.bootstrap)
    assert set(numbers) == set(range(0, 20_000, 2))  # nothing lost
    duplicates = len(numbers) - len(set(numbers))
    print(f"at-least-once duplicates after SIGKILL: {duplicates}")


def test_poison_records_go_to_the_dead_letter_topic(tmp_path: Path, any_broker) -> None:
    script, data = setup(tmp_path, any_broker, "dlq-app", 1_000)
    data[100] = ("k-bad", b"{not json")
    data[700] = ("k-bad2", b"\xff\xfe")
    produce(any_broker.bootstrap, "in", data)
    w = Worker(tmp_path, script, any_broker.bootstrap, tmp_path / "state", "w",
               env={"STREAMLET_ON_ERROR": "dead_letter"})
    wait_committed(any_broker.bootstrap, "dlq-app", "in", PARTITIONS, 90, [w])
    assert w.stop() == 0
    dead = read_all(any_broker.bootstrap, "dlq-app-dead-letter", 1)
    assert sorted(m.value() for m in dead) == sorted([b"{not json", b"\xff\xfe"])
    originals = {m.value(): m for m in read_all(any_broker.bootstrap, "in", PARTITIONS)}
    for m in dead:
        headers = dict(m.headers())
        src = originals[m.value()]
        assert headers["streamlet.topic"] == b"in"
        assert int(headers["streamlet.partition"]) == src.partition()
        assert int(headers["streamlet.offset"]) == src.offset()
        assert headers["streamlet.stage"] == b"deserialize"
        assert headers["streamlet.error"]
    good = [n for _, v in data if isinstance(v, dict) for n in [v["n"]] if n % 2 == 0]
    assert sorted(output_numbers(any_broker.bootstrap)) == sorted(good)


def test_user_error_under_fail_stops_without_committing_past_it(tmp_path: Path, any_broker) -> None:
    script, data = setup(tmp_path, any_broker, "fail-app", 2_000)
    data[1_500] = ("k-boom", {"n": 1_500, "boom": True})
    produce(any_broker.bootstrap, "in", data)
    bad = next(m for m in read_all(any_broker.bootstrap, "in", PARTITIONS) if orjson.loads(m.value()).get("boom"))
    w = Worker(tmp_path, script, any_broker.bootstrap, tmp_path / "state", "w")
    try:
        w.proc.wait(90)
    finally:
        code = w.stop()
    assert code != 0
    log = w.log_path.read_text()
    assert f"topic 'in' partition {bad.partition()} offset {bad.offset()}" in log
    assert "boom in the user function" in log
    assert committed(any_broker.bootstrap, "fail-app", "in", PARTITIONS)[bad.partition()] == bad.offset()


def test_broker_down_for_a_few_seconds_loses_nothing(tmp_path: Path, any_broker) -> None:
    if any_broker.kind != "mock":
        pytest.skip("fault injection (broker down/up) exists only on the embedded mock broker")
    script, data = setup(tmp_path, any_broker, "outage", 20_000)
    produce(any_broker.bootstrap, "in", data[:10_000])
    w = Worker(tmp_path, script, any_broker.bootstrap, tmp_path / "state", "w")
    deadline = time.monotonic() + 60
    while sum(max(o, 0) for o in committed(any_broker.bootstrap, "outage", "in", PARTITIONS).values()) == 0:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    any_broker.broker_down(for_ms=3_000)
    time.sleep(4)
    produce(any_broker.bootstrap, "in", data[10_000:])
    wait_committed(any_broker.bootstrap, "outage", "in", PARTITIONS, 120, [w])
    assert w.stop() == 0
    assert set(output_numbers(any_broker.bootstrap)) == set(range(0, 20_000, 2))


def test_unknown_input_topic_and_bad_setting_fail_at_start(tmp_path: Path, any_broker) -> None:
    any_broker.create_topic("out", PARTITIONS)
    script = tmp_path / "typo.py"
    script.write_text("import streamlet as sl\napp = sl.App('typo-app')\napp.stream('ordres').to('out')\n")
    w = Worker(tmp_path, script, any_broker.bootstrap, tmp_path / "state", "typo")
    assert w.proc.wait(60) == 1
    w.stop()
    log = w.log_path.read_text()
    assert "'ordres'" in log and "do not exist" in log
    good = tmp_path / "good.py"
    good.write_text("import streamlet as sl\napp = sl.App('cfg-app')\napp.stream('out').to('out2')\n")
    w = Worker(tmp_path, good, any_broker.bootstrap, tmp_path / "state", "badcfg",
               env={"STREAMLET_CONFIG": "no.such.setting=1"})
    assert w.proc.wait(60) == 1
    w.stop()
    log = w.log_path.read_text()
    assert "bad client setting" in log and "no.such.setting" in log and "Traceback" not in log
