"""Exactly-once (runtime/transactions.py) without a broker: the commit as one transaction with fake
clients and recording stores — the order of its steps, what is committed, what an abortable, a
retriable and a fencing error do — and the settings and process id exactly-once starts with."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from streamlet import config as config_module
from streamlet.config import Config
from streamlet.errors import ConfigError, StreamletError
from streamlet.runtime import transactions
from streamlet.runtime.committer import Committer
from streamlet.runtime.transactions import (
    ABORT_LIMIT,
    DEFAULT_TRANSACTION_TIMEOUT_MS,
    ExactlyOnceCheckpoint,
    TransactionFencedError,
    process_id,
    release_process_id,
    release_transactional_id,
    transactional_settings,
)

GROUP_METADATA = object()  # what consumer_group_metadata() hands out: passed through untouched


class Log(list):
    """What happened, in order, across the fakes."""


class Store:
    """A top store layer that logs its commit steps; ``staged`` is what ``prepare_commit`` reports."""

    def __init__(self, name: str, log: Log, staged: int = 1) -> None:
        self.name, self.log, self.staged = name, log, staged

    def prepare_commit(self) -> int:
        self.log.append(("prepare", self.name))
        return self.staged

    def commit(self, offsets: Any) -> None:
        self.log.append(("store-commit", self.name, offsets))

    def rollback(self) -> None:
        self.log.append(("rollback", self.name))


def abortable(code: int = KafkaError._INCONSISTENT) -> KafkaException:
    return KafkaException(KafkaError(code, "delivery failed", fatal=False, retriable=False,
                                     txn_requires_abort=True))


def retriable() -> KafkaException:
    return KafkaException(KafkaError(KafkaError._TIMED_OUT, "timed out", fatal=False, retriable=True))


class Producer:
    """The transactional calls, logged; ``errors[step]`` raises its queued exceptions first."""

    def __init__(self, log: Log) -> None:
        self.log = log
        self.errors: dict[str, list[KafkaException]] = {}

    def _step(self, name: str, *args: Any) -> None:
        queued = self.errors.get(name)
        if queued:
            raise queued.pop(0)
        self.log.append((name, *args))

    def send_offsets_to_transaction(self, offsets: Any, metadata: Any, timeout: float) -> None:
        self._step("send_offsets", {(tp.topic, tp.partition): tp.offset for tp in offsets}, metadata)

    def commit_transaction(self, timeout: float) -> None:
        self._step("commit_transaction")

    def begin_transaction(self) -> None:
        self._step("begin_transaction")

    def abort_transaction(self, timeout: float) -> None:
        self._step("abort_transaction")

    def flush(self, timeout: float) -> int:  # at-least-once only: never called under exactly-once
        self.log.append(("flush",))
        return 0


class Consumer:
    def consumer_group_metadata(self) -> Any:
        return GROUP_METADATA

    def commit(self, offsets: Any, asynchronous: bool) -> None:  # exactly-once never commits this way
        raise AssertionError("exactly-once must commit offsets in the transaction, not with consumer.commit")


def task(partition: int, *stores: Store, source_table: str | None = None) -> Any:
    specs = [SimpleNamespace(name=s.name, source_table=source_table is not None, changelog=source_table)
             for s in stores]
    return SimpleNamespace(partition=partition, store_specs=specs, ctx=SimpleNamespace(stores={s.name: s for s in stores}))


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch) -> None:
    monkeypatch.setattr(transactions.time, "sleep", lambda s: None)


def make(log: Log, tasks: list[Any] | None = None) -> tuple[ExactlyOnceCheckpoint, Producer, list[Any], list[int]]:
    producer = Producer(log)
    committer = Committer(Consumer(), producer, 100, lambda: False)
    committed: list[Any] = []
    aborts: list[int] = []
    cp = ExactlyOnceCheckpoint(committer, producer, Consumer(), lambda: tasks or [],
                               after_commit=lambda offsets: (log.append(("after_commit", dict(offsets))),
                                                             committed.append(dict(offsets))),
                               on_abort=lambda: (log.append(("on_abort",)), aborts.append(1)))
    return cp, producer, committed, aborts


# -- the commit ------------------------------------------------------------------------

def test_commit_is_one_transaction_in_order() -> None:
    log = Log()
    cp, _, committed, _ = make(log, [task(0, Store("counts", log))])
    cp.track("orders", 0, 42)
    cp.track("orders-repartition", 0, 7)

    assert cp.commit() is True
    assert log == [
        ("prepare", "counts"),
        ("send_offsets", {("orders", 0): 42, ("orders-repartition", 0): 7}, GROUP_METADATA),
        ("commit_transaction",),
        ("store-commit", "counts", None),
        ("begin_transaction",),
        ("after_commit", {("orders", 0): 42, ("orders-repartition", 0): 7}),
    ]
    assert cp.pending == {}
    assert committed == [{("orders", 0): 42, ("orders-repartition", 0): 7}]
    assert (cp.committed_transactions, cp.aborted_transactions, cp.committer.commits) == (1, 0, 1)


def test_source_table_store_checkpoints_the_committed_input_offset() -> None:
    log = Log()
    cp, _, _, _ = make(log, [task(3, Store("prices", log), source_table="prices")])
    cp.track("prices", 3, 11)
    cp.commit()
    assert ("store-commit", "prices", {"prices": 11}) in log


def test_nothing_processed_commits_an_empty_transaction_without_offsets() -> None:
    log = Log()
    cp, _, committed, _ = make(log)
    assert cp.commit() is True
    assert log == [("commit_transaction",), ("begin_transaction",)]
    assert committed == []  # no offsets: no repartition purge


def test_offsets_tracked_during_the_commit_stay_pending() -> None:
    log = Log()
    cp, producer, _, _ = make(log)
    cp.track("orders", 0, 10)
    real = producer.commit_transaction

    def commit_and_track(timeout: float) -> None:
        cp.track("orders", 0, 15)  # a later record of the same partition (it is in the next transaction)
        real(timeout)

    producer.commit_transaction = commit_and_track  # type: ignore[method-assign]
    cp.commit()
    assert ("send_offsets", {("orders", 0): 10}, GROUP_METADATA) in log
    assert cp.pending == {("orders", 0): 15}


def test_a_revocation_commits_every_pending_offset() -> None:
    log = Log()
    cp, _, _, _ = make(log)
    cp.track("orders", 0, 5)
    cp.track("orders", 1, 9)
    assert cp.commit(only=[("orders", 0)]) is True
    assert ("send_offsets", {("orders", 0): 5, ("orders", 1): 9}, GROUP_METADATA) in log
    assert cp.pending == {}


def test_a_retriable_error_is_retried() -> None:
    log = Log()
    cp, producer, _, aborts = make(log)
    cp.track("orders", 0, 5)
    producer.errors["send_offsets"] = [retriable()]
    producer.errors["commit_transaction"] = [retriable(), retriable()]
    assert cp.commit() is True
    assert [e[0] for e in log] == ["send_offsets", "commit_transaction", "begin_transaction", "after_commit"]
    assert cp.pending == {} and aborts == [] and cp.aborted_transactions == 0


def test_a_retriable_error_that_persists_aborts() -> None:
    log = Log()
    cp, producer, _, aborts = make(log)
    cp.track("orders", 0, 5)
    producer.errors["commit_transaction"] = [retriable() for _ in range(10)]
    assert cp.commit() is False
    assert ("abort_transaction",) in log and aborts == [1]


def test_an_abortable_error_aborts_rolls_back_and_begins_again() -> None:
    log = Log()
    cp, producer, committed, aborts = make(log, [task(0, Store("counts", log), Store("seen", log))])
    cp.track("orders", 0, 42)
    producer.errors["commit_transaction"] = [abortable()]

    assert cp.commit() is False
    assert log == [
        ("prepare", "counts"), ("prepare", "seen"),
        ("send_offsets", {("orders", 0): 42}, GROUP_METADATA),
        ("abort_transaction",),
        ("rollback", "counts"), ("rollback", "seen"),
        ("begin_transaction",),
        ("on_abort",),
    ]
    assert not any(e[0] == "store-commit" for e in log)  # stores never get ahead of the committed offsets
    assert cp.pending == {} and committed == [] and aborts == [1]
    assert (cp.committed_transactions, cp.aborted_transactions) == (0, 1)
    assert not cp.abandoned

    log.clear()  # the worker goes on: the next commit is a normal one
    cp.track("orders", 0, 30)
    assert cp.commit() is True
    assert ("send_offsets", {("orders", 0): 30}, GROUP_METADATA) in log


def test_an_abort_drops_delivery_errors_of_the_aborted_transaction() -> None:
    log = Log()
    cp, producer, _, _ = make(log)
    cp.track("orders", 0, 1)
    cp.committer.delivery_errors.append(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
    producer.errors["commit_transaction"] = [abortable()]
    assert cp.commit() is False
    assert cp.committer.delivery_errors == [] and cp.failure is None


@pytest.mark.parametrize("code", [KafkaError._FENCED, KafkaError.PRODUCER_FENCED])
def test_a_fenced_producer_stops_the_worker_without_writing(code: int) -> None:
    log = Log()
    cp, producer, committed, aborts = make(log, [task(0, Store("counts", log))])
    cp.track("orders", 0, 42)
    producer.errors["send_offsets"] = [KafkaException(KafkaError(code, "fenced", fatal=(code == KafkaError._FENCED)))]

    with pytest.raises(TransactionFencedError, match="fenced"):
        cp.commit()
    assert not any(e[0] in ("commit_transaction", "store-commit", "begin_transaction", "abort_transaction")
                   for e in log)
    assert cp.abandoned and cp.pending == {} and committed == [] and aborts == []
    assert cp.commit() is False  # nothing more is committed, whoever asks
    assert not any(e[0] == "commit_transaction" for e in log)
    # a rebalance callback that caught the error does not keep the worker going: the loop's next call stops it
    with pytest.raises(TransactionFencedError):
        cp.maybe_commit()


def test_too_many_aborts_stop_the_worker() -> None:
    log = Log()
    cp, producer, _, aborts = make(log)
    for _ in range(ABORT_LIMIT):
        cp.track("orders", 0, 1)
        producer.errors["commit_transaction"] = [abortable()]
        assert cp.commit() is False
    assert len(aborts) == ABORT_LIMIT and not cp.abandoned

    cp.track("orders", 0, 1)
    producer.errors["commit_transaction"] = [abortable()]
    with pytest.raises(StreamletError, match="not transient"):
        cp.commit()
    assert cp.abandoned
    assert len(aborts) == ABORT_LIMIT  # no rewind, no new transaction: the worker stops
    assert log[-1] == ("abort_transaction",)


def test_aborts_outside_the_window_do_not_count(monkeypatch) -> None:
    log = Log()
    cp, producer, _, aborts = make(log)
    clock = [1000.0]
    monkeypatch.setattr(transactions.time, "monotonic", lambda: clock[0])
    for _ in range(ABORT_LIMIT * 2):
        clock[0] += transactions.ABORT_WINDOW_S / ABORT_LIMIT + 1
        producer.errors["commit_transaction"] = [abortable()]
        assert cp.commit() is False
    assert len(aborts) == ABORT_LIMIT * 2 and not cp.abandoned


def test_an_abort_that_fails_stops_the_worker() -> None:
    log = Log()
    cp, producer, _, aborts = make(log)
    cp.track("orders", 0, 1)
    producer.errors["commit_transaction"] = [abortable()]
    producer.errors["abort_transaction"] = [KafkaException(KafkaError(KafkaError._TRANSPORT, "down"))]
    with pytest.raises(StreamletError, match="nor aborted"):
        cp.commit()
    assert cp.abandoned and aborts == []


def test_abort_abandons_and_aborts_the_open_transaction() -> None:
    log = Log()
    cp, _, _, _ = make(log)
    cp.track("orders", 0, 42)
    cp.abort("the worker stops after a failure")
    assert log == [("abort_transaction",)]
    assert cp.abandoned and cp.pending == {}
    assert cp.commit() is False
    assert log == [("abort_transaction",)]


def test_abort_that_fails_is_only_logged() -> None:
    log = Log()
    cp, producer, _, _ = make(log)
    producer.errors["abort_transaction"] = [KafkaException(KafkaError(KafkaError._TRANSPORT, "down"))]
    cp.abort("stopping")  # the broker aborts it after transaction.timeout.ms
    assert cp.abandoned


# -- the process id ---------------------------------------------------------------------

HOLD = textwrap.dedent("""
    import sys
    from streamlet.runtime.transactions import process_id
    print(process_id(sys.argv[1], sys.argv[2]), flush=True)
    sys.stdin.read()  # holds the id until the test closes stdin
""")


def test_process_id_is_kept_across_restarts(tmp_path) -> None:
    first = process_id(str(tmp_path), "app")
    release_process_id(str(tmp_path), "app")
    again = process_id(str(tmp_path), "app")
    release_process_id(str(tmp_path), "app")
    assert first == again and first.isalnum()
    assert (tmp_path / "app" / "process-id").read_text() == first
    assert process_id(str(tmp_path), "other") != first  # one per application
    release_process_id(str(tmp_path), "other")


def test_a_second_live_worker_on_the_state_dir_gets_a_fresh_id(tmp_path) -> None:
    kept = process_id(str(tmp_path), "app")
    release_process_id(str(tmp_path), "app")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path), "app"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout.readline().strip() == kept  # the other worker holds the kept id
        fresh = process_id(str(tmp_path), "app")
        assert fresh != kept and fresh.isalnum()
        assert (tmp_path / "app" / "process-id").read_text() == kept  # the fresh id is not kept
        release_process_id(str(tmp_path), "app")
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert process_id(str(tmp_path), "app") == kept  # the holder is gone: the id is free again
    release_process_id(str(tmp_path), "app")


def test_a_worker_with_a_fresh_id_does_not_free_the_holders_id(tmp_path) -> None:
    """Two workers in one process on one state directory: the second's shutdown must not let a third
    take the first's id while the first runs (the third would fence it)."""
    first = process_id(str(tmp_path), "app")
    second = process_id(str(tmp_path), "app")
    assert second != first
    release_process_id(str(tmp_path), "app", second)  # the second worker stops
    third = process_id(str(tmp_path), "app")
    assert third != first
    release_process_id(str(tmp_path), "app", first)  # the first stops: its id is free again
    assert process_id(str(tmp_path), "app") == first
    release_process_id(str(tmp_path), "app")


def test_a_restart_in_the_same_process_reuses_the_transactional_id(tmp_path) -> None:
    """What the runner does at each start and shutdown: the second start gets the same id."""
    config = eos_config(tmp_path)
    first = transactional_settings(config)["transactional.id"]
    release_transactional_id(config, first)
    again = transactional_settings(config)["transactional.id"]
    release_transactional_id(config, again)
    assert again == first
    mine = eos_config(tmp_path, **{"transactional.id": "orders-app-mine"})
    release_transactional_id(mine, "orders-app-mine")  # a user's id: no file of ours to free
    assert transactional_settings(config)["transactional.id"] == first
    release_transactional_id(config, first)


def test_a_corrupted_process_id_file_gets_a_new_id(tmp_path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "process-id").write_text("not/an id\n")
    pid = process_id(str(tmp_path), "app")
    release_process_id(str(tmp_path), "app")
    assert pid.isalnum() and (tmp_path / "app" / "process-id").read_text() == pid


# -- the settings ------------------------------------------------------------------------

def eos_config(tmp_path, **client: Any) -> Config:
    return Config(application_id="orders-app", brokers="kafka:9092", state_dir=str(tmp_path),
                  guarantee="exactly_once", client_config=dict(client))


def test_transactional_settings_defaults(tmp_path) -> None:
    settings = transactional_settings(eos_config(tmp_path))
    release_process_id(str(tmp_path), "orders-app")
    pid = (tmp_path / "orders-app" / "process-id").read_text()
    assert settings == {"transactional.id": f"orders-app-{pid}",
                        "transaction.timeout.ms": DEFAULT_TRANSACTION_TIMEOUT_MS, "retry.backoff.ms": 10}
    assert DEFAULT_TRANSACTION_TIMEOUT_MS == 10_000


def test_transactional_settings_keep_the_users_timeout_and_id(tmp_path) -> None:
    settings = transactional_settings(eos_config(tmp_path, **{"transaction.timeout.ms": 30_000,
                                                              "transactional.id": "mine", "retry.backoff.ms": 50}))
    assert settings == {"transactional.id": "mine", "transaction.timeout.ms": 30_000, "retry.backoff.ms": 50}
    assert not (tmp_path / "orders-app" / "process-id").exists()


def test_read_uncommitted_is_refused(tmp_path) -> None:
    with pytest.raises(ConfigError, match="read_uncommitted.*remove the setting"):
        transactional_settings(eos_config(tmp_path, **{"isolation.level": "read_uncommitted"}))


def test_the_embedded_broker_is_refused(tmp_path) -> None:
    with pytest.raises(ConfigError, match="embedded broker.*guarantee='at_least_once'.*brokers="):
        transactional_settings(eos_config(tmp_path), embedded_broker=True)


def test_init_transactions_failure_is_a_config_error() -> None:
    log = Log()

    class NoTransactions(Producer):
        def init_transactions(self, timeout: float) -> None:
            raise KafkaException(KafkaError(KafkaError.COORDINATOR_NOT_AVAILABLE, "no coordinator"))

    with pytest.raises(ConfigError, match="transaction.state.log.replication.factor=1.*at_least_once"):
        transactions.init_transactions(NoTransactions(log), "kafka:9092", timeout_s=1)
    assert log == []  # no transaction begun


# -- the commit interval -----------------------------------------------------------------

@pytest.mark.parametrize("given,expected", [
    ({"guarantee": "exactly_once"}, 100),
    ({"guarantee": "at_least_once"}, 1000),
    ({}, 1000),
    ({"guarantee": "exactly_once", "commit_interval_ms": 2500}, 2500),
    ({"guarantee": "at_least_once", "commit_interval_ms": 50}, 50),
])
def test_commit_interval_default_follows_the_guarantee(monkeypatch, given, expected) -> None:
    for env, _ in config_module._ENV.values():
        monkeypatch.delenv(env, raising=False)
    assert config_module.resolve("app", **given).commit_interval_ms == expected


def test_commit_interval_default_follows_the_guarantee_from_the_environment(monkeypatch) -> None:
    for env, _ in config_module._ENV.values():
        monkeypatch.delenv(env, raising=False)
    monkeypatch.setenv("STREAMLET_GUARANTEE", "exactly_once")
    assert config_module.resolve("app").commit_interval_ms == 100
    monkeypatch.setenv("STREAMLET_COMMIT_INTERVAL_MS", "700")
    assert config_module.resolve("app").commit_interval_ms == 700
