"""Produce errors as record errors: the sinks, the error policy, dead-letter records that always fit,
and the committer's handling of records the broker rejected. No broker: a real producer that never
connects refuses an oversized record at ``produce()`` all the same."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer

import streamlet as sl
from streamlet.errors import DeliveryError, ProduceError, RecordError
from streamlet.record import RecordMessage
from streamlet.runtime.clients import produce_function
from streamlet.runtime.committer import Committer
from streamlet.runtime.dead_letter import dead_letter_produce, fit
from streamlet.runtime.error_policy import ErrorPolicy
from streamlet.runtime.produce_errors import produce_failure
from streamlet.runtime.task_manager import TaskManager
from streamlet.topology import codegen
from streamlet.topology.compile import RunFailure

LIMIT = 100_000


@pytest.fixture
def producer() -> Any:
    p = Producer({"bootstrap.servers": "127.0.0.1:9", "message.max.bytes": LIMIT, "log_level": 0})
    yield p
    p.purge()


def dead_letters() -> tuple[list[tuple[Any, ...]], Any]:
    sent: list[tuple[Any, ...]] = []

    def produce(topic: str, value: Any, key: Any, partition: int = -1, timestamp: int = 0,
                headers: Any = None) -> None:
        sent.append((topic, value, key, timestamp, dict(headers or [])))

    return sent, produce


@pytest.mark.parametrize("generated", [True, False])
@pytest.mark.parametrize("policy", ["fail", "skip", "dead_letter"])
def test_an_output_too_large_for_the_producer_goes_through_the_policy(producer: Any, generated: bool,
                                                                      policy: str) -> None:
    """The generated sink (the client's own produce) and the closure sink (the wrapper) alike."""
    old = codegen.enabled
    codegen.enabled = generated
    try:
        app = sl.App("big", on_error=policy)
        app.stream("in", value_serde=sl.serde.bytes()).to("out", value_serde=sl.serde.bytes())
        tasks = TaskManager(app.topology, produce_function(producer, LIMIT), {"in": 1, "out": 1})
        tasks.assign([("in", 0)])
    finally:
        codegen.enabled = old
    fn = tasks.routes["in"][0]
    fn(RecordMessage("in", 0, 0, 5, None, b"k", b"small"))  # queued: no error
    big = RecordMessage("in", 0, 1, 5, [("trace", b"t")], b"k", b"x" * (LIMIT * 2))
    try:
        fn.run(big, iter(())) if generated else fn(big)
    except RunFailure as failure:
        exc: BaseException = failure.cause
    except ProduceError as error:
        exc = error
    else:
        raise AssertionError("the oversized record went through")
    assert isinstance(exc, ProduceError) and exc.topic == "out"
    assert exc.size == LIMIT * 2 + len(b"k") + len("trace") + len(b"t")  # value, key, header
    assert "message.max.bytes" in str(exc) and "max.message.bytes of topic 'out'" in str(exc)
    sent, produce = dead_letters()
    policy_ = ErrorPolicy(policy, "big-dlq", produce, LIMIT)
    if policy == "fail":
        with pytest.raises(RecordError) as info:
            policy_.handle(big, exc, "process")
        assert info.value.stage == "produce" and (info.value.topic, info.value.offset) == ("in", 1)
        assert "could not produce the output of record at topic 'in' partition 0 offset 1" in str(info.value)
        return
    policy_.handle(big, exc, "process")
    if policy == "skip":
        assert policy_.skipped == 1 and not sent
        return
    ((topic, value, key, ts, headers),) = sent
    assert topic == "big-dlq" and key == b"k" and ts == 5
    assert 0 < len(value) < LIMIT and value == big.value()[:len(value)]
    assert headers["streamlet.value.truncated"] == b"true"
    assert headers["streamlet.value.size"] == str(LIMIT * 2).encode()
    assert headers["streamlet.stage"] == b"produce" and headers["streamlet.output.topic"] == b"out"
    assert headers["streamlet.offset"] == b"1" and headers["trace"] == b"t"
    producer.produce("big-dlq", value, key, headers=list(headers.items()))  # the producer takes it


def test_a_producer_fault_is_not_a_record_error(producer: Any) -> None:
    failed = produce_failure(LIMIT)
    with pytest.raises(DeliveryError, match="topic 'out'.*_FATAL"):
        failed(KafkaException(KafkaError(KafkaError._FATAL)), "out", b"v", b"k", None)
    with pytest.raises(DeliveryError):
        ErrorPolicy("skip", "dlq").handle(RecordMessage("in", 0, 0, 0), DeliveryError("lost"), "process")


def test_fit_cuts_the_value_then_the_key_then_the_record_headers() -> None:
    added = [("streamlet.error", b"e" * 100)]
    assert fit(b"k", b"v", [("h", b"1")], added, 10_000) == (b"k", b"v", [("h", b"1")] + added)
    key, value, headers = fit(b"k", b"v" * 20_000, [("h", b"1")], added, 10_000)
    marks = dict(headers)
    assert key == b"k" and value == b"v" * len(value) and 9_000 < len(value) < 10_000 - 100
    assert marks["streamlet.value.truncated"] == b"true" and marks["streamlet.value.size"] == b"20000"
    assert marks["h"] == b"1"
    key, value, headers = fit(b"K" * 50_000, b"v", [("h", b"x" * 5_000)], added, 10_000)
    marks = dict(headers)
    assert len(key) < 2_500 and marks["streamlet.key.size"] == b"50000" and "h" not in marks
    assert marks["streamlet.headers.dropped"] == b"1" and value == b"v"
    _, value, headers = fit(b"k", b"v", [], added, 10_000, drop_value=True)
    assert value == b"" and dict(headers)["streamlet.value.size"] == b"1"


class FakeProducer:
    """Refuses the first ``refuse`` records at produce(); delivery reports are called by the test."""

    def __init__(self, refuse: int = 0) -> None:
        self.refuse = refuse
        self.sent: list[tuple[Any, ...]] = []

    def produce(self, topic: str, value: Any, key: Any, partition: int = -1, on_delivery: Any = None,
                timestamp: int = 0, headers: Any = None) -> None:
        if self.refuse:
            self.refuse -= 1
            raise KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
        self.sent.append((topic, value, key, dict(headers or []), on_delivery))

    def poll(self, timeout: float) -> int:
        return 0


def test_a_dead_letter_record_refused_or_rejected_is_sent_again_without_its_value() -> None:
    fatal: list[BaseException] = []
    p = FakeProducer(refuse=1)
    send = dead_letter_produce(p, LIMIT, fatal.append)
    send("dlq", b"value", b"k", -1, 0, [("streamlet.error", b"e")])  # refused at produce(): sent again
    ((topic, value, key, headers, on_delivery),) = p.sent
    assert (topic, value, key) == ("dlq", b"", b"k")
    assert headers == {"streamlet.error": b"e", "streamlet.value.truncated": b"true",
                       "streamlet.value.size": b"5"}
    on_delivery(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE), None)  # the broker rejects that one too
    assert len(fatal) == 1 and isinstance(fatal[0], DeliveryError) and "'dlq'" in str(fatal[0])

    p, fatal = FakeProducer(), []
    send = dead_letter_produce(p, LIMIT, fatal.append)
    cut = [("streamlet.value.truncated", b"true"), ("streamlet.value.size", b"9999")]
    send("dlq", b"value", b"k", -1, 0, cut)
    p.sent[0][4](KafkaError(KafkaError.INVALID_RECORD), None)  # rejected: once more, value dropped
    assert p.sent[1][1] == b"" and p.sent[1][3]["streamlet.value.size"] == b"9999" and not fatal
    p.sent[0][4](KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED), None)  # not the record's fault
    assert len(fatal) == 1 and "TOPIC_AUTHORIZATION_FAILED" in str(fatal[0])


class Delivered:
    """A delivery report's message."""

    def __init__(self, topic: str, partition: int = 0, key: bytes = b"k", value: bytes = b"v") -> None:
        self._topic, self._partition, self._key, self._value = topic, partition, key, value

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def key(self) -> bytes:
        return self._key

    def value(self) -> bytes:
        return self._value


class FlushingProducer:
    """flush() reports ``reports`` to the committer's on_delivery, once."""

    def __init__(self) -> None:
        self.reports: list[tuple[KafkaError, Delivered]] = []
        self.committer: Committer | None = None

    def flush(self, timeout: float) -> int:
        reports, self.reports = self.reports, []
        for err, msg in reports:
            self.committer.on_delivery(err, msg)  # type: ignore[union-attr]
        return 0


class Offsets:
    def __init__(self) -> None:
        self.commits: list[Any] = []

    def commit(self, offsets: Any, asynchronous: bool) -> None:
        self.commits.append({(tp.topic, tp.partition): tp.offset for tp in offsets})


def committer_with(policy: ErrorPolicy) -> tuple[Committer, FlushingProducer, Offsets]:
    producer, consumer = FlushingProducer(), Offsets()
    committer = Committer(consumer, producer, 1000, lambda: False)
    producer.committer = committer
    committer.on_rejected = policy.rejected
    return committer, producer, consumer


TOO_LARGE = KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)


@pytest.mark.parametrize("policy", ["skip", "dead_letter"])
def test_rejected_outputs_are_skipped_or_dead_lettered_and_the_commit_goes_on(policy: str) -> None:
    sent, produce = dead_letters()
    errors = ErrorPolicy(policy, "dlq", produce, LIMIT, changelogs=["app-s-changelog"])
    committer, producer, consumer = committer_with(errors)
    producer.reports = [(TOO_LARGE, Delivered("out", 1, b"a", b"1")),
                        (TOO_LARGE, Delivered("out", 1, b"b", b"2"))]
    committer.track("in", 0, 10)
    assert committer.commit()
    assert consumer.commits == [{("in", 0): 10}]
    if policy == "skip":
        assert errors.skipped == 2 and not sent
        return
    assert errors.dead_lettered == 2
    assert [(v, k) for _, v, k, _, _ in sent] == [(b"1", b"a"), (b"2", b"b")]
    headers = sent[0][4]
    assert headers["streamlet.output.topic"] == b"out" and headers["streamlet.output.partition"] == b"1"
    assert headers["streamlet.error.type"] == b"MSG_SIZE_TOO_LARGE"
    assert headers["streamlet.stage"] == b"produce"


@pytest.mark.parametrize("policy,topic,match", [
    ("fail", "out", r"2 output record\(s\) were not delivered.*topic 'out'.*max.message.bytes.*"
                    r"on_error='skip'"),
    ("skip", "app-s-changelog", r"changelog record.*never skipped.*'app-s-changelog'"),
])
def test_rejected_outputs_under_fail_and_changelog_records_stop_and_stick(policy: str, topic: str,
                                                                         match: str) -> None:
    errors = ErrorPolicy(policy, "dlq", dead_letters()[1], LIMIT, changelogs=["app-s-changelog"])
    committer, producer, consumer = committer_with(errors)
    producer.reports = [(TOO_LARGE, Delivered(topic)), (TOO_LARGE, Delivered(topic))]
    committer.track("in", 0, 10)
    with pytest.raises(DeliveryError, match=match):
        committer.commit()
    with pytest.raises(DeliveryError, match=match):  # sticky: no later commit covers the lost records
        committer.commit(only=[("in", 0)])
    assert consumer.commits == [] and errors.skipped == 0


def test_other_delivery_errors_stay_fatal_and_name_the_topic() -> None:
    committer, producer, consumer = committer_with(ErrorPolicy("skip", "dlq", dead_letters()[1]))
    producer.reports = [(KafkaError(KafkaError._MSG_TIMED_OUT), Delivered("out", 3))]
    committer.track("in", 0, 10)
    lost = r"1 output record\(s\) were not delivered \(first: to topic 'out' partition 3: _MSG_TIMED_OUT"
    with pytest.raises(DeliveryError, match=lost):
        committer.commit()
    assert consumer.commits == []
