"""Exactly-once (Kafka Streams' EOS v2): one transactional producer per worker, and the commit as
one transaction — outputs, changelog and repartition records, and the input offsets.

:class:`ExactlyOnceCheckpoint` is the commit under ``guarantee="exactly_once"``:

1. **flush caches**: each store stages its changes; the change-logging layer
   sends them, into the open transaction (outputs, repartition and dead-letter
   records went there as they were produced);
2. ``send_offsets_to_transaction(offsets, consumer_group_metadata())``: the
   input offsets join it, with the group's generation, so a worker that was
   kicked out of the group (a zombie) cannot commit;
3. ``commit_transaction()``: everything becomes visible to read_committed
   consumers at once, or nothing does;
4. **store checkpoint**: each store writes what it staged with the changelog
   offsets (a crash before this step leaves the store behind its committed
   changelog: the restore reads the tail), then the next transaction begins.

A transaction that must be aborted (a rebalance took the partitions, a
delivery failed) is aborted; every active task is closed without a commit
(its caches dropped: local stores only ever hold committed state) and
processed again from the committed offsets after restoring its stores'
tail. A fenced producer (another worker took this transactional id) stops
the worker without writing anything more.

The transactional id is ``<application id>-<process id>``: a restarted worker
with the same state directory reuses it, so the broker aborts what the dead
one left open at once rather than after ``transaction.timeout.ms``.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
import uuid
from typing import Any, Callable, Iterable

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, KafkaError, KafkaException, TopicPartition

from streamlet.config import Config
from streamlet.errors import ConfigError, StreamletError
from streamlet.runtime.checkpoint import Checkpoint
from streamlet.runtime.committer import Committer

log = logging.getLogger("streamlet.commit")

Key = tuple[str, int]

#: Kafka Streams' default under exactly-once: a dead worker's open transaction blocks read_committed
#: readers of its partitions at most this long (unless it restarts first with the same id)
DEFAULT_TRANSACTION_TIMEOUT_MS = 10_000
#: the transactional producer's first retry backoff. Right after a commit the coordinator answers the
#: next transaction's AddPartitionsToTxn / AddOffsetsToTxn with CONCURRENT_TRANSACTIONS until the
#: commit markers are written (a few ms); librdkafka retries after retry.backoff.ms, 100 ms by default,
#: which cost each 100 ms commit ~25 ms (measured on Kafka 4.4: send_offsets_to_transaction 30 ms ->
#: 6 ms, commit_transaction 30 ms -> 5 ms; the Java producer retries this case after 20 ms)
DEFAULT_TRANSACTION_RETRY_BACKOFF_MS = 10
#: aborted transactions within ABORT_WINDOW_S that stop the worker (the cause is not transient)
ABORT_LIMIT, ABORT_WINDOW_S = 5, 60.0
_FENCED = {KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH,
           KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, KafkaError.INVALID_PRODUCER_ID_MAPPING}
#: path → (descriptor, id) kept open (flock) while the worker runs: a second worker on the same state
#: directory gets a fresh id instead of fencing the first
_open_ids: dict[str, tuple[int, str]] = {}


class TransactionFencedError(StreamletError):
    """Another worker took over this worker's transactional id: this one stops without writing."""


def process_id(state_dir: str, application_id: str) -> str:
    """This worker's id, kept in ``<state_dir>/<application id>/process-id`` so that a restart reuses
    it; a fresh one (not kept) when another live worker holds that file."""
    folder = os.path.join(state_dir, application_id)
    path = os.path.join(folder, "process-id")
    os.makedirs(folder, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return uuid.uuid4().hex
    text = os.read(fd, 100).decode(errors="replace").strip()
    if not text or not text.isalnum():
        text = uuid.uuid4().hex
        os.ftruncate(fd, 0)
        os.pwrite(fd, text.encode(), 0)
    _open_ids[path] = (fd, text)  # not held here before: this descriptor's lock would have failed
    return text


def release_process_id(state_dir: str, application_id: str, process: str | None = None) -> None:
    """Let another worker on this state directory take the id (at shutdown). With ``process``, only
    if that is the id held: a worker that got a fresh id must not free the holder's lock."""
    path = os.path.join(state_dir, application_id, "process-id")
    held = _open_ids.get(path)
    if held is None or (process is not None and held[1] != process):
        return
    del _open_ids[path]
    os.close(held[0])


def release_transactional_id(config: Config, transactional_id: str) -> None:
    """At shutdown: free the process id in ``transactional_id`` (from :func:`transactional_settings`),
    so that the next start in this process reuses it; nothing when another worker holds it."""
    prefix = f"{config.application_id}-"
    if transactional_id.startswith(prefix):
        release_process_id(config.state_dir, config.application_id, transactional_id[len(prefix):])


def transactional_settings(config: Config, embedded_broker: bool = False) -> dict[str, Any]:
    """The producer settings exactly-once adds (the user's ``transaction.timeout.ms`` wins); a
    :class:`ConfigError` where exactly-once cannot work."""
    if embedded_broker:
        raise ConfigError(
            "guarantee='exactly_once' cannot work on the embedded broker: librdkafka's mock cluster accepts "
            "transactions but does not store the input offsets committed with them, so a restarted worker "
            "would process everything again. Use guarantee='at_least_once' with the embedded broker, or "
            "point brokers= at a Kafka cluster (docs/exactly-once.md)")
    isolation = str(config.client_config.get("isolation.level", "read_committed"))
    if isolation != "read_committed":
        raise ConfigError(f"isolation.level={isolation!r} reads records of aborted transactions, which "
                          "exactly-once must not process: remove the setting (exactly-once reads "
                          "read_committed)")
    pid = config.client_config.get("transactional.id") or \
        f"{config.application_id}-{process_id(config.state_dir, config.application_id)}"
    return {"transactional.id": pid,
            "transaction.timeout.ms": config.client_config.get("transaction.timeout.ms",
                                                               DEFAULT_TRANSACTION_TIMEOUT_MS),
            "retry.backoff.ms": config.client_config.get("retry.backoff.ms", DEFAULT_TRANSACTION_RETRY_BACKOFF_MS)}


def init_transactions(producer: Any, bootstrap: str, timeout_s: float = 30.0) -> None:
    """Register the transactional id with the broker (aborting what a previous worker with the same
    id left open) and begin the first transaction; a clear start-up error if the broker cannot."""
    try:
        producer.init_transactions(timeout_s)
    except KafkaException as exc:
        err = exc.args[0] if exc.args else exc
        raise ConfigError(
            f"guarantee='exactly_once' needs a broker that does transactions; {bootstrap} answered "
            f"init_transactions with {err}. Use a Kafka broker with transactions enabled (a single broker "
            "needs transaction.state.log.replication.factor=1 and transaction.state.log.min.isr=1), or "
            "guarantee='at_least_once'") from exc
    producer.begin_transaction()


class ExactlyOnceCheckpoint(Checkpoint):
    """The commit as one transaction (see the module). ``on_abort()`` resets every active task to
    the last commit: their records are processed again from the committed offsets."""

    def __init__(self, committer: Committer, producer: Any, consumer: Any,
                 tasks: Callable[[], Iterable[Any]] = tuple,
                 after_commit: Callable[[dict[Key, int]], None] | None = None,
                 on_abort: Callable[[], None] = lambda: None, timeout_s: float = 60.0) -> None:
        super().__init__(committer, tasks, after_commit)
        self.producer, self.consumer = producer, consumer
        self.on_abort = on_abort
        self.timeout_s = timeout_s
        #: transactions committed / aborted by this worker
        self.committed_transactions = 0
        self.aborted_transactions = 0
        self._aborts: list[float] = []

    def commit(self, only: Iterable[Key] | None = None) -> bool:
        """One transaction covers every task: a revocation (``only``) commits them all."""
        committer = self.committer
        if not committer.begin():
            return False
        prepared = self._prepare_stores(self._stores())
        pending = dict(committer.pending)
        try:
            if pending:
                self._retry(lambda: self.producer.send_offsets_to_transaction(
                    self._offsets(pending), self.consumer.consumer_group_metadata(), self.timeout_s))
            self._retry(lambda: self.producer.commit_transaction(self.timeout_s))
        except KafkaException as exc:
            self._abort(exc)
            return False
        self.committed_transactions += 1
        self._commit_stores(prepared, pending)
        for key, offset in pending.items():
            if committer.pending.get(key) == offset:
                del committer.pending[key]
        committer.commits += 1
        self.producer.begin_transaction()
        if pending and self.after_commit is not None:
            self.after_commit(pending)
        return True

    def maybe_commit(self) -> None:
        """The record loop's call after each batch: a fenced worker stops here (its failure may have
        been caught by a rebalance callback), else a commit when the interval is up."""
        if self.committer.failure is not None and self.committer.abandoned:
            raise self.committer.failure
        super().maybe_commit()

    def abort(self, why: str) -> None:
        """The worker stops after a failure: abort what is open so read_committed readers of these
        partitions go on at once (not after the transaction timeout); nothing more is committed."""
        self.committer.abandon()
        try:
            self.producer.abort_transaction(min(self.timeout_s, 10.0))
            log.info("transaction aborted: %s", why)
        except KafkaException as exc:
            log.warning("could not abort the open transaction (%s); the broker aborts it after "
                        "transaction.timeout.ms", exc)

    # -- internals ---------------------------------------------------------------------
    def _offsets(self, pending: dict[Key, int]) -> list[TopicPartition]:
        metadata = self.committer.offset_metadata
        out = []
        for (topic, partition), offset in pending.items():
            meta = metadata(topic, partition) if metadata is not None else None
            out.append(TopicPartition(topic, partition, offset) if meta is None
                       else TopicPartition(topic, partition, offset, metadata=meta))
        return out

    @staticmethod
    def _retry(step: Callable[[], None], attempts: int = 10) -> None:
        for attempt in range(attempts):
            try:
                step()
                return
            except KafkaException as exc:
                err = exc.args[0] if exc.args else None
                if not isinstance(err, KafkaError) or not err.retriable() or attempt == attempts - 1:
                    raise
                log.warning("transaction step failed, retrying: %s", err)
                time.sleep(0.2)

    def _abort(self, exc: KafkaException) -> None:
        err = exc.args[0] if exc.args else None
        code = err.code() if isinstance(err, KafkaError) else None
        if code in _FENCED or (isinstance(err, KafkaError) and err.fatal()):
            self.committer.abandon()
            fenced = TransactionFencedError(
                f"this worker's transactions were fenced ({err}): another worker with the same transactional "
                "id took over, or the broker lost this producer. It stops without writing; a restart joins "
                "again with a fresh producer")
            self.committer.fail(fenced)  # raised by the record loop too, if a rebalance callback caught it
            raise fenced from exc
        if isinstance(err, KafkaError) and not err.txn_requires_abort():
            log.warning("commit failed (%s): aborting the transaction", err)
        now = time.monotonic()
        self._aborts = [t for t in self._aborts if now - t < ABORT_WINDOW_S] + [now]
        try:
            self.producer.abort_transaction(self.timeout_s)
        except KafkaException as exc2:
            self.committer.abandon()
            raise StreamletError(f"the transaction could not be committed ({err}) nor aborted ({exc2}); the "
                                 "worker stops without committing; a restart processes the records again") from exc
        self.aborted_transactions += 1
        self.rollback()
        c = self.committer
        c.pending.clear()
        c.delivery_errors.clear()
        c.rejected.clear()
        log.warning("transaction aborted (%s): every task goes back to the last commit and processes its "
                    "records again from the committed offsets", err)
        if len(self._aborts) > ABORT_LIMIT:
            c.abandon()
            raise StreamletError(f"{len(self._aborts)} transactions aborted within {ABORT_WINDOW_S:.0f} s, the "
                                 f"last for {err}: the cause is not transient (check the broker's logs and "
                                 "the output topics' settings); the worker stops without committing")
        self.producer.begin_transaction()
        self.on_abort()


def rewind_to_committed(consumer: Any, keys: list[Key], auto_offset_reset: str = "earliest") -> None:
    """Seek each partition to its committed offset (none: where ``auto.offset.reset`` says), so that
    what an aborted transaction covered is processed again (tasks without stores)."""
    if not keys:
        return
    start = OFFSET_BEGINNING if auto_offset_reset in ("earliest", "smallest", "beginning") else OFFSET_END
    try:
        for tp in consumer.committed([TopicPartition(t, p) for t, p in keys], timeout=30):
            consumer.seek(TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else start))
    except KafkaException as exc:
        # without the rewind, records after the committed offset would be skipped: stop instead
        raise StreamletError(f"after an aborted transaction the input could not be rewound to the committed "
                             f"offsets ({exc}); the worker stops without committing") from exc


def rewind_tasks(tasks: list[Any], restoring: Any, consumer: Any, auto_offset_reset: str = "earliest") -> None:
    """Every task back to the last commit after an aborted transaction: closed without a commit and
    restored (tasks with stores, through ``restoring``), or just rewound (tasks without)."""
    if restoring is not None:
        for task in tasks:
            restoring.rewind(task, "its transaction was aborted")
        return
    rewind_to_committed(consumer, [(t, task.partition) for task in tasks for t in sorted(task.assigned)],
                        auto_offset_reset)
