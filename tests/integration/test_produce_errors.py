"""Records that cannot be produced are record errors under ``on_error`` (DESIGN §5), on real workers.

* A 5 MB input record passed through to ``out``: ``produce()`` refuses it
  (the producer's ``message.max.bytes`` is 1,000,000) while the record is
  processed — ``fail`` stops at it with an error naming the topic and the
  setting, ``skip`` goes on, ``dead_letter`` writes it (cut to fit, with
  headers saying so) to the dead-letter topic and goes on.
* The broker rejects outputs (the mock's fault injection: Produce errors 10
  MESSAGE_TOO_LARGE / 87 INVALID_RECORD): the same three policies, from the
  delivery reports.
* A changelog record is never skipped: too large or rejected, it stops the
  worker whatever ``on_error`` says, naming the changelog topic's setting.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.integration.kafka_io import committed, end_offsets, produce, read_all, wait_committed
from tests.integration.procs import Worker, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

PARTITIONS = 2
BIG = 5_000_000
PASS_THROUGH = """
import streamlet as sl

app = sl.App("{app_id}")
app.stream("in", value_serde=sl.serde.bytes()).to("out", value_serde=sl.serde.bytes())
"""
COLLECT = """
import streamlet as sl

app = sl.App("{app_id}")
app.stream("in").group_by_key().aggregate(values=sl.agg.collect_list("v"), name="rows")
"""


def start(tmp: Path, broker: Any, app_id: str, policy: str, script: str = PASS_THROUGH) -> Worker:
    path = tmp / f"{app_id}.py"
    path.write_text(textwrap.dedent(script.format(app_id=app_id)))
    return Worker(tmp, path, broker.bootstrap, tmp / "state", app_id, env={"STREAMLET_ON_ERROR": policy})


def small_records(first: int, count: int) -> list[tuple[str, Any]]:
    return [(f"k{n % 10}", {"n": n}) for n in range(first, first + count)]


def outputs(bootstrap: str) -> list[int]:
    """The ``n`` of every record on ``out``."""
    return sorted(orjson.loads(m.value())["n"] for m in read_all(bootstrap, "out", PARTITIONS))


# -- a record too large for the producer (synchronous) -------------------------------------

@pytest.mark.parametrize("policy", ["fail", "skip", "dead_letter"])
def test_a_record_too_large_to_produce_goes_through_the_error_policy(tmp_path: Path, broker: Any,
                                                                   policy: str) -> None:
    app_id = f"big-{policy.replace('_', '-')}"
    broker.create_topic("in", PARTITIONS, {"max.message.bytes": str(2 * BIG)})  # Kafka's default is ~1 MB
    broker.create_topic("out", PARTITIONS)
    produce(broker.bootstrap, "in", small_records(0, 100))
    produce(broker.bootstrap, "in", [("big", b"x" * BIG)], message_max_bytes=10_000_000)
    produce(broker.bootstrap, "in", small_records(100, 100))
    big = next(m for m in read_all(broker.bootstrap, "in", PARTITIONS) if m.key() == b"big")
    w = start(tmp_path, broker, app_id, policy)

    if policy == "fail":
        assert w.wait_exit(60) != 0
        log = w.text()
        where = f"topic 'in' partition {big.partition()} offset {big.offset()}"
        assert where in log and "could not produce" in log, w.tail()
        assert "topic 'out'" in log and "message.max.bytes" in log and "max.message.bytes" in log, w.tail()
        assert f"{BIG + 3:,}-byte record" in log, w.tail()  # value + key "big"
        assert "Traceback" not in log and "KafkaException" not in log, w.tail()
        offsets = committed(broker.bootstrap, app_id, "in", PARTITIONS)
        assert offsets[big.partition()] == big.offset()  # not past it, and everything before it
        before = {orjson.loads(m.value())["n"] for m in read_all(broker.bootstrap, "in", PARTITIONS)
                  if m.key() != b"big" and m.partition() == big.partition() and m.offset() < big.offset()}
        assert before <= set(outputs(broker.bootstrap))
        return

    wait_committed(broker.bootstrap, app_id, "in", PARTITIONS, 90, [w])  # past the big record
    assert w.stop() == 0
    assert outputs(broker.bootstrap) == list(range(200))  # every other record went through, once
    log = w.text()
    assert "Traceback" not in log, w.tail()
    if policy == "skip":
        assert "skipped record" in log and "message.max.bytes" in log, w.tail()
        return
    (dead,) = read_all(broker.bootstrap, f"{app_id}-dead-letter", 1)
    headers = dict(dead.headers())
    assert dead.key() == b"big"
    assert 0 < len(dead.value()) < 1_000_000 and dead.value() == big.value()[:len(dead.value())]
    assert headers["streamlet.value.truncated"] == b"true"
    assert headers["streamlet.value.size"] == str(BIG).encode()
    assert headers["streamlet.output.topic"] == b"out" and headers["streamlet.stage"] == b"produce"
    assert headers["streamlet.error.type"] == b"ProduceError"
    assert b"message.max.bytes" in headers["streamlet.error"]
    assert headers["streamlet.topic"] == b"in"
    assert (int(headers["streamlet.partition"]), int(headers["streamlet.offset"])) == (big.partition(),
                                                                                       big.offset())


# -- outputs the broker rejects (asynchronous) -------------------------------------------------

def _inject(broker: Any, code: int, count: int) -> None:
    if broker.kind != "mock":
        pytest.skip("request-error injection is the embedded mock's C API "
                    "(rd_kafka_mock_push_request_errors); Tansu has no equivalent")
    broker.fault(request_errors={"api": "Produce", "errors": [code] * count})
    wait_until(lambda: "Produce request(s) fail" in broker.log_path.read_text(), 10,
               "the broker to take the fault request")


@pytest.mark.faults
@pytest.mark.parametrize("policy,code", [("skip", 10), ("dead_letter", 87), ("dead_letter", 10)])
def test_outputs_the_broker_rejects_are_skipped_or_dead_lettered(tmp_path: Path, broker: Any,
                                                                 policy: str, code: int) -> None:
    """The first Produce request of the worker fails (all its records: the broker rejects whole
    batches); the worker goes on and commits everything. Under dead_letter every rejected output is
    in the dead-letter topic, so outputs + dead letters are every input exactly once."""
    app_id = f"rejected-{policy.replace('_', '-')}-{code}"
    broker.create_topic("in", PARTITIONS)
    broker.create_topic("out", PARTITIONS)
    if policy == "dead_letter":
        broker.create_topic(f"{app_id}-dead-letter", 1)  # made now: the worker produces nothing else first
    produce(broker.bootstrap, "in", small_records(0, 2_000))
    _inject(broker, code, 1)
    w = start(tmp_path, broker, app_id, policy,
              script=PASS_THROUGH.replace("sl.serde.bytes()", "sl.serde.json()"))
    wait_committed(broker.bootstrap, app_id, "in", PARTITIONS, 90, [w])
    assert w.stop() == 0
    log = w.text()
    name = {10: "MSG_SIZE_TOO_LARGE", 87: "INVALID_RECORD"}[code]
    assert name in log and "Traceback" not in log, w.tail()
    out = outputs(broker.bootstrap)
    assert len(out) == len(set(out)) and set(out) < set(range(2_000)), "some outputs were rejected"
    if policy == "skip":
        assert "output record(s) the broker rejected (on_error='skip'" in log, w.tail()
        return
    dead = read_all(broker.bootstrap, f"{app_id}-dead-letter", 1)
    assert sorted(out + [orjson.loads(m.value())["n"] for m in dead]) == list(range(2_000))
    for m in dead:
        headers = dict(m.headers())
        assert headers["streamlet.output.topic"] == b"out" and headers["streamlet.stage"] == b"produce"
        assert headers["streamlet.error.type"] == name.encode()
        assert int(headers["streamlet.output.partition"]) in range(PARTITIONS)


@pytest.mark.faults
def test_rejected_dead_letter_record_is_sent_again_without_its_value(tmp_path: Path, broker: Any) -> None:
    """The broker rejects the output, then the dead-letter record made of it: that one is sent once
    more with its value dropped, its headers kept."""
    app_id = "rejected-twice"
    broker.create_topic("in", 1)
    broker.create_topic("out", 1)
    broker.create_topic(f"{app_id}-dead-letter", 1)
    produce(broker.bootstrap, "in", [("k", {"n": 7})])
    _inject(broker, 10, 2)
    w = start(tmp_path, broker, app_id, "dead_letter",
              script=PASS_THROUGH.replace("sl.serde.bytes()", "sl.serde.json()"))
    wait_until(lambda: committed(broker.bootstrap, app_id, "in", 1)[0] == 1, 60, "the commit", workers=[w])
    assert w.stop() == 0
    (dead,) = read_all(broker.bootstrap, f"{app_id}-dead-letter", 1)
    headers = dict(dead.headers())
    assert dead.value() in (b"", None) and dead.key() == b"k"
    assert headers["streamlet.value.truncated"] == b"true"
    assert headers["streamlet.value.size"] == str(len(orjson.dumps({"n": 7}))).encode()
    assert headers["streamlet.output.topic"] == b"out"
    assert "sent again without its value" in w.text(), w.tail()


@pytest.mark.faults
def test_rejected_outputs_under_fail_stop_the_worker_naming_the_topic(tmp_path: Path, broker: Any) -> None:
    broker.create_topic("in", PARTITIONS)
    broker.create_topic("out", PARTITIONS)
    produce(broker.bootstrap, "in", small_records(0, 500))
    _inject(broker, 10, 20)
    w = start(tmp_path, broker, "rejected-fail", "fail",
              script=PASS_THROUGH.replace("sl.serde.bytes()", "sl.serde.json()"))
    assert w.wait_exit(60) != 0
    log = w.text()
    assert "were not delivered: the broker rejected them" in log and "topic 'out'" in log, w.tail()
    assert "max.message.bytes" in log and "Traceback" not in log, w.tail()
    offsets = committed(broker.bootstrap, "rejected-fail", "in", PARTITIONS)
    assert all(o < 0 for o in offsets.values()), f"inputs of rejected outputs were committed: {offsets}"


@pytest.mark.parametrize("policy", ["skip", "dead_letter"])
def test_outputs_over_the_topics_max_message_bytes_are_rejected_by_kafka(tmp_path: Path, broker: Any,
                                                                         policy: str) -> None:
    """Real Kafka enforces a topic's max.message.bytes (2,000 here) on each batch; a 5 KB output makes
    its batch rejected (MESSAGE_TOO_LARGE) with every record in it: skipped, or dead-lettered whole."""
    if broker.kind != "kafka":
        pytest.skip("only Kafka enforces a topic's max.message.bytes (the mock and Tansu take any size)")
    app_id = f"kafka-rejects-{policy.replace('_', '-')}"
    broker.create_topic("in", PARTITIONS)
    broker.create_topic("out", PARTITIONS, {"max.message.bytes": "2000"})
    if policy == "dead_letter":
        broker.create_topic(f"{app_id}-dead-letter", 1)
    records = [(k, {**v, "pad": "x" * 5_000} if v["n"] % 100 == 0 else v) for k, v in small_records(0, 1_000)]
    produce(broker.bootstrap, "in", records)
    w = start(tmp_path, broker, app_id, policy, script=PASS_THROUGH.replace("sl.serde.bytes()", "sl.serde.json()"))
    wait_committed(broker.bootstrap, app_id, "in", PARTITIONS, 90, [w])
    assert w.stop() == 0
    log = w.text()
    assert "MSG_SIZE_TOO_LARGE" in log and "Traceback" not in log, w.tail()
    out = outputs(broker.bootstrap)
    assert len(out) == len(set(out)) and not {n for n in out if n % 100 == 0}, "a 5 KB record got through"
    if policy == "skip":
        assert "output record(s) the broker rejected (on_error='skip'" in log, w.tail()
        return
    dead = read_all(broker.bootstrap, f"{app_id}-dead-letter", 1)
    assert sorted(out + [orjson.loads(m.value())["n"] for m in dead]) == list(range(1_000))
    assert all(dict(m.headers())["streamlet.output.topic"] == b"out" for m in dead)


# -- changelog records are never skipped -------------------------------------------------------

def test_a_changelog_record_too_large_stops_the_worker_even_under_skip(tmp_path: Path, broker: Any) -> None:
    """collect_list of 300 KB values: the row passes message.max.bytes at the fourth record. Its
    changelog record cannot be produced; skipping it would leave the store ahead of its changelog."""
    broker.create_topic("in", 1)
    produce(broker.bootstrap, "in", [("k", {"v": "x" * 300_000}) for _ in range(4)])
    w = start(tmp_path, broker, "big-row", "skip", script=COLLECT)
    assert w.wait_exit(60) != 0
    log = w.text()
    assert "changelog record" in log and "never skipped" in log, w.tail()
    assert "'big-row-rows-changelog'" in log and "max.message.bytes" in log, w.tail()
    assert "Traceback" not in log, w.tail()
    assert committed(broker.bootstrap, "big-row", "in", 1)[0] < 4


@pytest.mark.faults
def test_a_rejected_changelog_record_stops_the_worker_even_under_dead_letter(tmp_path: Path,
                                                                           broker: Any) -> None:
    broker.create_topic("in", 1)
    broker.create_topic("rejected-rows-dead-letter", 1)
    broker.create_topic("rejected-rows-rows-changelog", 1)
    produce(broker.bootstrap, "in", [("k", {"v": n}) for n in range(10)])
    _inject(broker, 10, 20)
    w = start(tmp_path, broker, "rejected-rows", "dead_letter", script=COLLECT)
    assert w.wait_exit(60) != 0
    log = w.text()
    assert "changelog record(s) were not delivered" in log and "never skipped" in log, w.tail()
    assert "'rejected-rows-rows-changelog'" in log and "max.message.bytes" in log, w.tail()
    assert committed(broker.bootstrap, "rejected-rows", "in", 1)[0] < 0
    assert end_offsets(broker.bootstrap, "rejected-rows-dead-letter", 1)[0] == 0
