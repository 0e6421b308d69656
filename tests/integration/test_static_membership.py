"""Static membership (``instance_id``, Kafka's ``group.instance.id``) with `streamlet run` workers.

* Three workers with static ids; one is SIGKILLed while records arrive, more arrive while it is
  down, and it is started again within the session timeout: the other two never see a rebalance
  (their assigned / revoked / lost log lines do not change), the restarted one owns the same partitions again, and every input
  record reaches the output (a repeat only for what the killed worker had not committed).
* The same with a SIGTERM: the worker commits, exits 0 and does not leave the group (librdkafka sends
  no LeaveGroup for a static member), so nobody takes its partitions before it is back.
* Two workers with the same instance id: the older one stops with FencedInstanceIdError.
* A shutdown that outlives ``shutdown_grace_ms`` exits 124 without committing the batch in progress.
"""

from __future__ import annotations

import signal
import textwrap
from collections import Counter
from pathlib import Path

import orjson
import pytest

from tests.integration.kafka_io import committed, produce, read_all, wait_committed
from tests.integration.procs import Worker, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

PARTITIONS = 6
#: long enough to cover a restart of a worker (seconds on a loaded machine), short enough for the
#: test that waits for it to pass
STATIC_CONFIG = "session.timeout.ms=30000,heartbeat.interval.ms=1000"

SCRIPT = """
import streamlet as sl

app = sl.App("static-app")
app.stream("orders").map_values(lambda v: {"i": v["i"]}).to("echo")
"""


def _script(tmp: Path, body: str = SCRIPT) -> Path:
    path = tmp / "app.py"
    path.write_text(textwrap.dedent(body))
    return path


def _worker(tmp: Path, broker, script: Path, name: str, instance: str | None = None, **env: str) -> Worker:
    settings = {"STREAMLET_CONFIG": STATIC_CONFIG, **env}
    if instance is not None:
        settings["STREAMLET_INSTANCE_ID"] = instance
    return Worker(tmp, script, broker.bootstrap, tmp / f"state-{name}", name, env=settings)


def _ownership_lines(worker: Worker) -> list[str]:
    return [line for line in worker.text().splitlines()
            if " assigned " in line or " revoked " in line or " lost " in line]


def _balanced(workers: list[Worker]) -> bool:
    owned = [w.owned() for w in workers]
    every = set().union(*owned)
    return (len(every) == PARTITIONS and sum(len(o) for o in owned) == PARTITIONS
            and all(len(o) == PARTITIONS // len(workers) for o in owned))


def _orders(first: int, count: int) -> list[tuple[str, dict[str, int]]]:
    return [(f"k{i % 23}", {"i": i}) for i in range(first, first + count)]


def _start_three(tmp: Path, broker, script: Path) -> list[Worker]:
    for topic in ("orders", "echo"):
        broker.create_topic(topic, PARTITIONS)
    workers = [_worker(tmp, broker, script, f"w{n}", f"static-w{n}") for n in range(3)]
    wait_until(lambda: _balanced(workers), 120, "three static members to share the partitions", workers=workers,
               detail=lambda: str([sorted(w.owned()) for w in workers]))
    return workers


def _restart_keeps_assignment(tmp: Path, broker, stop_signal: int, report, kind: str, victim_at: int = 2) -> None:
    """On real Kafka and Tansu: no rebalance of the others, the same partitions back. The embedded
    broker accepts ``group.instance.id`` but does not keep a static member's place (its group
    coordinator has no KIP-345): there the test checks that nothing is lost and reports the
    rebalances the others saw."""
    script = _script(tmp)
    workers = _start_three(tmp, broker, script)
    produce(broker.bootstrap, "orders", _orders(0, 3000))
    wait_committed(broker.bootstrap, "static-app", "orders", PARTITIONS, 120, workers=workers)
    victim = workers[victim_at]
    survivors = [w for w in workers if w is not victim]
    before = {w.name: _ownership_lines(w) for w in survivors}
    victim_owned = victim.owned()

    produce(broker.bootstrap, "orders", _orders(3000, 3000))  # in flight when the worker stops
    code = victim.stop(stop_signal, timeout=60)
    if stop_signal == signal.SIGTERM:
        assert code == 0, victim.tail()
    produce(broker.bootstrap, "orders", _orders(6000, 3000))  # its partitions wait for it
    again = _worker(tmp, broker, script, victim.name, f"static-{victim.name}")  # same instance id, same state dir
    produce(broker.bootstrap, "orders", _orders(9000, 3000))
    wait_committed(broker.bootstrap, "static-app", "orders", PARTITIONS, 120, workers=[*survivors, again])

    if kind in ("kafka", "tansu"):
        assert again.owned() == victim_owned, again.tail()
        for w in survivors:
            assert _ownership_lines(w) == before[w.name], f"{w.name} saw a rebalance:\n{w.tail()}"
    else:
        seen = sum(len(_ownership_lines(w)) - len(before[w.name]) for w in survivors)
        report(f"{kind}: the other workers saw {seen} rebalance callbacks after the restart (no static membership)")
    got = Counter(orjson.loads(m.value())["i"] for m in read_all(broker.bootstrap, "echo", PARTITIONS))
    assert set(got) == set(range(12000)), f"missing: {sorted(set(range(12000)) - set(got))[:20]}"
    repeated = {i: n for i, n in got.items() if n > 1}
    report(f"{len(repeated)} records written twice after the {signal.Signals(stop_signal).name} (at-least-once)")
    if stop_signal == signal.SIGTERM:
        assert not repeated, "a clean stop commits what it processed: nothing is processed twice"
    for w in [*survivors, again]:
        assert w.stop() == 0, w.tail()


def test_a_killed_static_member_restarts_without_a_rebalance_of_the_others(tmp_path: Path, broker,
                                                                           report) -> None:
    _restart_keeps_assignment(tmp_path, broker, signal.SIGKILL, report, broker.kind)


@pytest.mark.kafka_only
def test_the_first_member_to_join_restarts_without_a_rebalance_too(tmp_path: Path, broker, report) -> None:
    """The first member to join is normally the group's leader (it computed the assignment): its
    return does not make the group rebalance either."""
    _restart_keeps_assignment(tmp_path, broker, signal.SIGKILL, report, broker.kind, victim_at=0)


def test_a_sigterm_commits_and_the_static_member_comes_back_without_a_rebalance(tmp_path: Path, broker,
                                                                                 report) -> None:
    _restart_keeps_assignment(tmp_path, broker, signal.SIGTERM, report, broker.kind)


def test_two_workers_with_the_same_instance_id_stop_with_a_typed_error(tmp_path: Path, broker) -> None:
    if broker.kind != "kafka":
        pytest.skip(f"{broker.kind} does not fence a static member (FENCED_INSTANCE_ID): both workers run")
    for topic in ("orders", "echo"):
        broker.create_topic(topic, PARTITIONS)
    script = _script(tmp_path)
    first = _worker(tmp_path, broker, script, "first", "same-id")
    wait_until(lambda: len(first.owned()) == PARTITIONS, 120, "the first worker's assignment", workers=[first])
    second = _worker(tmp_path, broker, script, "second", "same-id")
    code = first.wait_exit(120)
    assert code == 1, first.tail()
    assert "FencedInstanceIdError" in first.text() or "same instance id 'same-id'" in first.text(), first.tail()
    assert "another worker joined group 'static-app' with the same instance id 'same-id'" in first.text()
    wait_until(lambda: len(second.owned()) == PARTITIONS, 120, "the second worker to own every partition",
               workers=[second])
    assert second.stop() == 0, second.tail()


SLOW_SCRIPT = """
import time
import streamlet as sl

app = sl.App("static-app")


def slow(v):
    if v.get("slow"):
        print("slow record in hand", flush=True)
        time.sleep(600)  # a batch that does not finish: the shutdown cannot commit it in time
    return v


app.stream("orders").map_values(slow).to("echo")
"""


def test_a_shutdown_past_its_grace_exits_124_without_committing(tmp_path: Path, broker) -> None:
    for topic in ("orders", "echo"):
        broker.create_topic(topic, 1)
    w = _worker(tmp_path, broker, _script(tmp_path, SLOW_SCRIPT), "slow", "slow-0",
                STREAMLET_SHUTDOWN_GRACE_MS="2000")
    wait_until(lambda: len(w.owned()) == 1, 120, "the worker's assignment", workers=[w])
    produce(broker.bootstrap, "orders", _orders(0, 10))
    wait_committed(broker.bootstrap, "static-app", "orders", 1, 60, workers=[w])
    produce(broker.bootstrap, "orders", [("k", {"i": 10, "slow": True}), ("k", {"i": 11})])
    wait_until(lambda: "slow record in hand" in w.text(), 60, "the worker to be in the slow record", workers=[w])
    code = w.stop(signal.SIGTERM, timeout=60)
    assert code == 124, w.tail()
    assert "did not finish within shutdown_grace_ms=2000" in w.text()
    assert committed(broker.bootstrap, "static-app", "orders", 1) == {0: 10}


@pytest.mark.parametrize("stop_signal", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
def test_static_membership_with_streamlets_assignor(tmp_path: Path, broker, report, monkeypatch,
                                                    stop_signal: int) -> None:
    """task_assignor="streamlet" (the membership through aiokafka) keeps a static member's place too."""
    if broker.kind == "mock":
        pytest.skip("the embedded broker has no static membership, and its join rounds wait for a stopped member "
                    "until session.timeout.ms - 1 s: aiokafka's members then often miss the 1 s left and rejoin as "
                    "new members, round after round (docs/failover.md, 'Which worker takes a task over')")
    if broker.kind == "tansu":
        pytest.skip("on Tansu a restarted static aiokafka member was seen joining every 24 s without ever being "
                    "synced (1 run in 3; docs/failover.md, 'Which worker takes a task over')")
    monkeypatch.setenv("STREAMLET_TASK_ASSIGNOR", "streamlet")  # the workers inherit the environment
    _restart_keeps_assignment(tmp_path, broker, stop_signal, report, broker.kind)
