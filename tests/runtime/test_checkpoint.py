"""The commit as one sequence (runtime/checkpoint.py), with fake clients and recording stores: the
order of its steps, what is committed, and what happens on a delivery failure, a corrupted store, a
commit refused during a rebalance, and a rollback."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any, Mapping

import pytest
from confluent_kafka import KafkaError, KafkaException

from streamlet.errors import DeliveryError, StoreCorruptedError
from streamlet.runtime.checkpoint import AtLeastOnceCheckpoint, Checkpoint
from streamlet.runtime.committer import Committer
from streamlet.runtime.error_policy import ErrorPolicy
from streamlet.serde import json
from streamlet.state import InMemoryStore, StoreBuilder


class Log(list):
    """What happened, in order, across the fakes."""


class Store(InMemoryStore):
    """A bottom store that logs its writes; ``corrupt`` makes the next write fail as RocksDB's would."""

    def __init__(self, name: str, log: Log) -> None:
        super().__init__(name)
        self.log, self.corrupt = log, False

    def write(self, changes: Mapping[bytes, bytes | None], offsets: Mapping[str, int] | None = None) -> None:
        if self.corrupt:
            raise StoreCorruptedError(self.name, "/state/x", "write", "Corruption: block checksum mismatch")
        self.log.append(("write", self.name, dict(changes), dict(offsets or {})))
        super().write(changes, offsets)


class Producer:
    """``flush`` logs itself and hands ``reports`` (err, msg) to the delivery callback."""

    def __init__(self, log: Log) -> None:
        self.log, self.reports, self.on_delivery = log, [], None

    def produce(self, topic: str, value: Any, key: Any, partition: int) -> None:
        self.log.append(("produce", topic, key, value, partition))

    def flush(self, timeout: float) -> int:
        self.log.append(("flush",))
        reports, self.reports = self.reports, []
        for err, msg in reports:
            self.on_delivery(err, msg)
        return 0


class Consumer:
    """``commit`` logs the offsets, or raises the queued errors first."""

    def __init__(self, log: Log) -> None:
        self.log, self.errors = log, []

    def commit(self, offsets: Any, asynchronous: bool) -> None:
        if self.errors:
            raise KafkaException(KafkaError(self.errors.pop(0)))
        self.log.append(("commit_async" if asynchronous else "commit",
                         {(tp.topic, tp.partition): tp.offset for tp in offsets}))


class Msg:
    def __init__(self, topic: str, partition: int = 0) -> None:
        self._topic, self._partition = topic, partition

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def key(self) -> bytes:
        return b"k"

    def value(self) -> bytes:
        return b"v"


def spec(name: str, source_table: bool = False) -> Any:
    return SimpleNamespace(name=name, value_serde=json(), source_table=source_table, timestamped=False,
                           changelog=name if source_table else f"app-{name}-changelog")


class Setup:
    """Two tasks (partitions 0 and 1) with a ``counts`` store each, the fakes, and the checkpoint."""

    def __init__(self, tables: bool = False) -> None:
        self.log = Log()
        self.producer, self.consumer = Producer(self.log), Consumer(self.log)
        self.committer = Committer(self.consumer, self.producer, 1000, lambda: False)
        self.producer.on_delivery = self.committer.on_delivery
        self.bottoms: dict[tuple[str, int], Store] = {}
        specs = [spec("counts")] + ([spec("users", source_table=True)] if tables else [])
        self.tasks = [self._task(p, specs) for p in (0, 1)]
        self.purged: list[dict] = []
        self.checkpoint = AtLeastOnceCheckpoint(self.committer, lambda: self.tasks, self.purged.append)

    def _task(self, partition: int, specs: list[Any]) -> Any:
        stores = {}
        for s in specs:
            bottom = self.bottoms[(s.name, partition)] = Store(f"{s.name}-{partition}", self.log)
            stores[s.name] = StoreBuilder.for_spec(s, partition, self.producer.produce).build(bottom)
        return SimpleNamespace(partition=partition, store_specs=specs, ctx=SimpleNamespace(stores=stores),
                               task_id=f"0_{partition}")

    def store(self, partition: int, name: str = "counts") -> Any:
        return self.tasks[partition].ctx.stores[name]


def test_the_commit_runs_its_steps_in_order_and_commits_what_was_processed() -> None:
    s = Setup()
    s.store(0).put(b"a", 1)
    s.store(0).put(b"a", 2)  # one record per changed key
    s.store(1).put(b"b", 3)
    s.checkpoint.track("in", 0, 11)
    s.checkpoint.track("in", 1, 5)
    assert s.checkpoint.commit()
    assert s.log == [
        ("flush",),  # the outputs are in their topics before any changelog record marks them done
        ("produce", "app-counts-changelog", b"a", b"2", 0),
        ("produce", "app-counts-changelog", b"b", b"3", 1),
        ("flush",),
        ("write", "counts-0", {b"a": b"2"}, {"app-counts-changelog": 1}),
        ("write", "counts-1", {b"b": b"3"}, {"app-counts-changelog": 1}),
        ("commit", {("in", 0): 11, ("in", 1): 5}),
    ]
    assert s.purged == [{("in", 0): 11, ("in", 1): 5}] and s.checkpoint.pending == {}
    s.log.clear()
    s.store(0).put(b"c", 4)
    assert s.checkpoint.commit()  # nothing new to commit: no offsets, no purge
    assert s.log == [("flush",), ("produce", "app-counts-changelog", b"c", b"4", 0), ("flush",),
                     ("write", "counts-0", {b"c": b"4"}, {"app-counts-changelog": 2}),
                     ("write", "counts-1", {}, {"app-counts-changelog": 1})]
    assert len(s.purged) == 1


def test_a_revocation_writes_every_store_and_commits_only_the_revoked_offsets() -> None:
    s = Setup()
    s.store(0).put(b"a", 1)
    s.store(1).put(b"b", 1)
    s.checkpoint.track("in", 0, 3)
    s.checkpoint.track("in", 1, 4)
    assert s.checkpoint.commit(only=[("in", 1)])
    assert [e[1] for e in s.log if e[0] == "write"] == ["counts-0", "counts-1"]
    assert s.log[-1] == ("commit", {("in", 1): 4}) and s.checkpoint.pending == {("in", 0): 3}


def test_a_lost_output_stops_the_commit_before_any_store_write_or_offset_and_sticks() -> None:
    s = Setup()
    s.store(0).put(b"a", 1)
    s.checkpoint.track("in", 0, 3)
    s.producer.reports = [(KafkaError(KafkaError._MSG_TIMED_OUT), Msg("out"))]
    with pytest.raises(DeliveryError, match="1 output record"):
        s.checkpoint.commit()
    assert [e[0] for e in s.log] == ["flush"]  # not even a changelog record was sent
    assert s.bottoms[("counts", 0)].offsets() == {} and s.checkpoint.pending == {("in", 0): 3}
    s.store(0).put(b"b", 2)
    with pytest.raises(DeliveryError):  # every later commit, the revocation's included, raises it
        s.checkpoint.commit(only=[("in", 0)])
    assert [e[0] for e in s.log] == ["flush"]  # not even a changelog record was sent  # not even the changelog is sent again
    assert not s.purged and s.checkpoint.failure is not None


def test_an_output_the_broker_rejected_goes_to_the_policy_and_the_commit_goes_on() -> None:
    s = Setup()
    policy = ErrorPolicy("skip", "dlq", lambda *a, **k: None, changelogs=["app-counts-changelog"])
    s.committer.on_rejected = policy.rejected
    s.producer.reports = [(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE), Msg("out"))]
    s.store(0).put(b"a", 1)
    s.checkpoint.track("in", 0, 3)
    assert s.checkpoint.commit() and policy.skipped == 1
    assert s.log[-1] == ("commit", {("in", 0): 3})


def test_a_rejected_changelog_record_is_never_skipped() -> None:
    s = Setup()
    policy = ErrorPolicy("skip", "dlq", lambda *a, **k: None, changelogs=["app-counts-changelog"])
    s.committer.on_rejected = policy.rejected
    s.producer.reports = [(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE), Msg("app-counts-changelog"))]
    s.store(0).put(b"a", 1)
    s.checkpoint.track("in", 0, 3)
    with pytest.raises(DeliveryError, match="changelog"):
        s.checkpoint.commit()
    assert not any(e[0] in ("write", "commit") for e in s.log)


def test_a_corrupted_store_is_handed_to_the_record_loop_and_the_rest_commits() -> None:
    s = Setup()
    s.bottoms[("counts", 0)].corrupt = True
    s.store(0).put(b"a", 1)
    s.store(1).put(b"b", 1)
    s.checkpoint.track("in", 0, 3)
    s.checkpoint.track("in", 1, 4)
    assert s.checkpoint.commit()  # its changes are in the changelog: the offsets may be committed
    assert [(t.task_id, type(e)) for t, e in s.checkpoint.corrupted] == [("0_0", StoreCorruptedError)]
    assert [e[1] for e in s.log if e[0] == "write"] == ["counts-1"]
    assert s.log[-1] == ("commit", {("in", 0): 3, ("in", 1): 4})
    s.store(0).put(b"c", 1)
    s.checkpoint.commit()  # still corrupted: the task is noted once
    assert len(s.checkpoint.corrupted) == 1


def test_offsets_refused_during_a_rebalance_stay_pending_and_the_stores_keep_their_checkpoint() -> None:
    s = Setup()
    s.consumer.errors = [KafkaError.REBALANCE_IN_PROGRESS]
    s.store(0).put(b"a", 1)
    s.checkpoint.track("in", 0, 3)
    assert s.checkpoint.commit() is False
    assert s.bottoms[("counts", 0)].offsets() == {"app-counts-changelog": 1}  # acknowledged: written
    assert s.checkpoint.pending == {("in", 0): 3} and not s.purged
    assert s.checkpoint.commit()
    assert s.log[-1] == ("commit", {("in", 0): 3}) and s.purged == [{("in", 0): 3}]


def test_a_source_tables_checkpoint_is_the_input_offset_committed_with_its_changes() -> None:
    s = Setup(tables=True)
    s.store(0, "users").put(b"u", {"name": "A"})
    s.checkpoint.track("users", 0, 8)
    s.checkpoint.track("users", 1, 5)  # read, but nothing changed: its checkpoint stays
    s.checkpoint.track("in", 0, 2)
    assert s.checkpoint.commit()
    writes = [e for e in s.log if e[0] == "write" and e[1].startswith("users")]
    assert writes == [("write", "users-0", {b"u": b'{"name":"A"}'}, {"users": 8})]  # one table, changed
    assert not any(e[0] == "produce" and e[1] == "users" for e in s.log)  # its changelog is its input


def test_rollback_takes_every_cache_back_to_the_last_checkpoint() -> None:
    s = Setup()
    s.store(0).put(b"a", 1)
    s.checkpoint.commit()
    s.store(0).put(b"a", 2)
    s.store(1).put(b"b", 2)
    s.checkpoint.rollback()
    assert s.store(0).get(b"a") == 1 and s.store(1).get(b"b") is None
    s.log.clear()
    s.checkpoint.commit()
    assert [e for e in s.log if e[0] != "flush"] == [
        ("write", "counts-0", {}, {"app-counts-changelog": 1}),
        ("write", "counts-1", {}, {"app-counts-changelog": 0}),
    ]


class AbortingCheckpoint(Checkpoint):
    """The shape of an exactly-once commit on the base's steps: the transaction aborts at the flush."""

    def commit(self, only: Any = None) -> bool:
        prepared = self._prepare_stores(self._stores())
        try:
            self.committer.flush_outputs()
        except DeliveryError:
            self.committer.producer.log.append(("abort_transaction",))
            self.rollback()
            return False
        self._commit_stores(prepared, dict(self.committer.pending))
        return self.committer.commit_offsets(only) is not None


def test_an_aborted_transaction_rolls_the_staged_changes_and_changelog_records_back() -> None:
    s = Setup()
    checkpoint = AbortingCheckpoint(s.committer, lambda: s.tasks)
    s.store(0).put(b"a", 1)
    s.checkpoint.track("in", 0, 3)
    s.producer.reports = [(KafkaError(KafkaError._MSG_TIMED_OUT), Msg("app-counts-changelog"))]
    assert checkpoint.commit() is False
    assert s.log[-1] == ("abort_transaction",) and s.store(0).get(b"a") is None
    assert s.bottoms[("counts", 0)].staged == 0 and s.bottoms[("counts", 0)].offsets() == {}


def test_nothing_is_committed_once_abandoned_and_maybe_commit_waits_for_the_interval() -> None:
    s = Setup()
    s.store(0).put(b"a", 1)
    s.checkpoint.track("in", 0, 3)
    s.checkpoint.maybe_commit()
    assert s.log == []  # the interval has not passed
    s.committer.next_commit = time.monotonic() - 1
    s.checkpoint.maybe_commit()
    assert s.log[-1] == ("commit_async", {("in", 0): 3})  # the interval commit does not wait
    s.log.clear()
    s.store(0).put(b"b", 1)
    s.checkpoint.track("in", 0, 4)
    s.checkpoint.abandon()
    assert s.checkpoint.commit() is False and s.log == [] and s.checkpoint.abandoned


def _tp(topic: str, partition: int, offset: int) -> Any:
    return SimpleNamespace(topic=topic, partition=partition, offset=offset, error=None)


def test_the_interval_commit_does_not_wait_and_its_offsets_stay_pending_until_the_broker_accepts_them() -> None:
    s = Setup()
    s.store(0).put(b"a", 1)
    s.checkpoint.track("in", 0, 11)
    s.checkpoint.track("in", 1, 5)
    s.committer.next_commit = time.monotonic() - 1
    s.checkpoint.maybe_commit()
    assert s.log[-1] == ("commit_async", {("in", 0): 11, ("in", 1): 5})
    assert ("write", "counts-0", {b"a": b"1"}, {"app-counts-changelog": 1}) in s.log  # stores first, as always
    assert s.checkpoint.pending == {("in", 0): 11, ("in", 1): 5} and s.purged == []
    # refused (the group rebalances): still pending, nothing purged; the next commit sends them again
    s.checkpoint.on_commit(KafkaError(KafkaError.ILLEGAL_GENERATION), [_tp("in", 0, 11), _tp("in", 1, 5)])
    assert s.checkpoint.pending == {("in", 0): 11, ("in", 1): 5} and s.purged == []
    s.checkpoint.track("in", 0, 12)  # processed meanwhile
    s.checkpoint.on_commit(None, [_tp("in", 0, 11), _tp("in", 1, 5)])  # accepted
    assert s.checkpoint.pending == {("in", 0): 12}, "an offset processed after the commit stays pending"
    assert s.purged == [{("in", 0): 11, ("in", 1): 5}]
    s.log.clear()
    s.committer.next_commit = time.monotonic() - 1
    s.checkpoint.maybe_commit()
    assert s.log[-1] == ("commit_async", {("in", 0): 12})


def test_revocations_and_the_final_commit_still_wait_for_the_broker() -> None:
    s = Setup()
    s.checkpoint.track("in", 0, 7)
    assert s.checkpoint.commit(only=[("in", 0)])
    assert s.log[-1] == ("commit", {("in", 0): 7}) and s.checkpoint.pending == {}
