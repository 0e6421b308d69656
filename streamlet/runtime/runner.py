"""The worker: one consumer, one producer, tasks per partition, the batch loop.

Like Kafka Streams' ``StreamThread.runOnce``: consume a batch, run each record
through its task's compiled chain, commit on an interval. Rebalance callbacks
only create / close tasks and commit; no heavy work happens in them.
"""

from __future__ import annotations

import gc
import logging
import signal
import threading
from typing import TYPE_CHECKING, Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from streamlet.broker.admin import ControlTopicAdmin, EmbeddedTopicAdmin, connect
from streamlet.errors import ConfigError, RecordError, StateError, StreamletError
from streamlet.runtime.clients import (
    consumer_config,
    make_consumer,
    make_producer,
    max_record_bytes,
    produce_function,
    producer_config,
    with_client_logger,
)
from streamlet.runtime.committer import Committer
from streamlet.runtime.error_policy import ErrorPolicy
from streamlet.runtime.task_manager import TaskManager
from streamlet.runtime.topics import prepare_topics
from streamlet.topology.compile import DeserializationFailure, RunFailure, load_compilers

if TYPE_CHECKING:
    from streamlet.app import App

log = logging.getLogger("streamlet.runtime")

#: records held per restoring partition before it is paused (and rewound)
HOLD_LIMIT = 20_000


class Runner:
    """Runs one :class:`~streamlet.App` in this process until it is asked to stop."""

    def __init__(self, app: "App") -> None:
        self.app = app
        self.config = app.config
        self.consumer: Any = None
        self.producer: Any = None
        self.tasks: TaskManager | None = None
        self.committer: Committer | None = None
        self.state: Any = None  # a StateManager when the topology has stores
        self.updater: Any = None  # its StateUpdater: opens and restores stores of new tasks
        #: records of restoring tasks' partitions, held until the task is active
        self._held: dict[tuple[str, int], list[Any]] = {}
        #: partitions whose held records reached HOLD_LIMIT: paused and rewound
        self._rewound: set[tuple[str, int]] = set()
        self.processed = 0
        self.ready = threading.Event()

    # -- set-up -------------------------------------------------------------
    def _start(self) -> None:
        cfg, topology = self.config, self.app.topology
        topology.validate()
        if cfg.guarantee == "exactly_once":
            raise NotImplementedError(
                "guarantee='exactly_once' is not built yet (transactional producer lands with the "
                "production issue); use 'at_least_once'"
            )
        directory = None
        if topology.stores:
            from streamlet.state import StateDirectory
            from streamlet.state.spares import MAX_SPARES

            # a first start: spare databases open while the broker and the group are awaited
            directory = StateDirectory(cfg.state_dir, cfg.application_id)
            if directory.is_new():
                directory.open_spares(MAX_SPARES)
        try:
            self._connect(directory)
        except BaseException:
            if directory is not None:
                directory.close_spares()
            raise

    def _connect(self, directory: Any) -> None:
        """Topics, clients, the task manager and the state manager; subscribe."""
        cfg, topology = self.config, self.app.topology
        embedded = self.app.embedded_broker() if cfg.embedded else None
        admin = connect(cfg.brokers if not embedded else embedded.bootstrap_servers,
                        with_client_logger(cfg.client_config), embedded)
        partitions = prepare_topics(topology, admin, cfg)
        bootstrap = admin.bootstrap_servers
        admin.close()
        settings = producer_config(cfg, bootstrap, {"on_delivery": self._on_delivery})
        self.producer = make_producer(settings)
        limit = max_record_bytes(settings)  # a larger record: ProduceError; a dead-letter record: cut to fit
        produce = produce_function(self.producer, limit)
        mock_broker = isinstance(admin, (EmbeddedTopicAdmin, ControlTopicAdmin))
        together = sorted(t for topics in topology.topics_of_subtopology().values() if len(topics) > 1
                          for t in topics)
        self.consumer = make_consumer(consumer_config(cfg, bootstrap, {"error_cb": self._on_client_error},
                                                      mock_broker, together))
        self.committer = Committer(self.consumer, self.producer, cfg.commit_interval_ms,
                                   lambda: self.app.stopping)
        self.policy = ErrorPolicy(cfg.on_error, cfg.dead_letter, produce)
        self.tasks = TaskManager(topology, produce, partitions)
        changelog_produce = self.policy.connect(self.producer, self.committer, limit, topology)
        if topology.stores:
            from streamlet.runtime.state_manager import StateManager
            from streamlet.runtime.state_updater import StateUpdater

            self.state = state = StateManager(cfg, bootstrap, changelog_produce, directory)
            self.updater = StateUpdater(state)
            self.tasks.before_close_restoring = self.updater.remove
            tasks = self.tasks
            self.committer.before_flush.append(lambda: state.flush_changelogs(tasks.active_tasks()))
            self.committer.before_offsets.append(lambda: state.write_stores(dict(self.committer.pending)))
            state.prepare(topology.stores, partitions)
        load_compilers()
        self.consumer.subscribe(topology.source_topics(), on_assign=self._on_assign,
                                on_revoke=self._on_revoke, on_lost=self._on_lost)

    def _read_committed(self, tasks: list[Any]) -> None:
        """Where the source tables of restoring tasks resume (their restore stops there): the
        group's committed offsets, read in one request on the loop's thread."""
        wanted = [TopicPartition(spec.changelog, t.partition) for t in tasks for spec in t.store_specs
                  if spec.source_table]
        if not wanted:
            return
        assert self.consumer is not None
        try:
            got = self.consumer.committed(wanted, timeout=30)
        except KafkaException as exc:
            raise StateError(f"cannot read the committed offsets of {_fmt(wanted)} to restore their "
                             f"tables: {exc}") from exc
        for tp in got:
            task = self.tasks.task_of(tp.topic, tp.partition)  # type: ignore[union-attr]
            if task is not None:
                task.committed[tp.topic] = tp.offset if tp.offset >= 0 else None

    def _on_delivery(self, err: Any, msg: Any) -> None:
        assert self.committer is not None
        self.committer.on_delivery(err, msg)

    def _on_client_error(self, err: KafkaError) -> None:
        if err.fatal():
            log.error("fatal client error: %s", err)
            self.fatal = err
        else:
            log.debug("client error (librdkafka retries): %s", err)

    # -- rebalance callbacks (bookkeeping only) -----------------------------
    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        tasks = self.tasks
        assert tasks is not None
        created = tasks.assign((tp.topic, tp.partition) for tp in partitions)
        restoring = [t for t in created if not t.active]
        if restoring:
            for tp in partitions:
                if not tasks.task_of(tp.topic, tp.partition).active:  # type: ignore[union-attr]
                    self._held[(tp.topic, tp.partition)] = []
            self._read_committed(restoring)
            self.updater.add(restoring)
        log.info("assigned %s", _fmt(partitions))
        self.ready.set()

    def _activate_restored(self) -> None:
        """Tasks whose stores the state updater has ready: route their partitions to them and process
        the records held for them meanwhile, in order, before anything newer."""
        assert self.tasks is not None and self.committer is not None
        for task, caches in self.updater.take_ready():
            self.tasks.activate(task, caches)
            log.debug("task %s active", task.task_id)
            for topic in task.assigned:
                key = (topic, task.partition)
                held = self._held.pop(key, None)
                if held and not self.app.stopping:  # stopping: left uncommitted for the next run
                    self._process(held)
                    self.processed += len(held)
                    self.committer.track_positions([TopicPartition(topic, task.partition, held[-1].offset() + 1)])
                if key in self._rewound:
                    self._rewound.discard(key)
                    self.consumer.resume([TopicPartition(topic, task.partition)])

    def _hold(self, m: Any) -> None:
        """A record with no route: of a partition revoked this very batch (dropped), or of a restoring
        task — held in order until the task is active (the fetch goes on: a paused partition that
        never fetched resumes only after librdkafka's next assignment pass, ~1 s). Past
        ``HOLD_LIMIT`` records the partition is paused and rewound to the first one not held."""
        key = (m.topic(), m.partition())
        held = self._held.get(key)
        if held is None:
            return
        self.processed -= 1  # counted when its task processes it
        if key in self._rewound:
            return  # read again from where it was rewound to
        if len(held) < HOLD_LIMIT:
            held.append(m)
            return
        self._rewound.add(key)
        tp = TopicPartition(key[0], key[1], m.offset())
        self.consumer.pause([tp])
        self.consumer.seek(tp)

    def _drop_held(self, keys: list[tuple[str, int]]) -> None:
        """Revoked before their task was active: not processed, not committed; the new owner reads them."""
        for key in keys:
            self._held.pop(key, None)
            self._rewound.discard(key)

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        assert self.tasks is not None and self.committer is not None
        keys = [(tp.topic, tp.partition) for tp in partitions]
        try:
            handed_over = self.committer.commit(only=keys)
        except StreamletError as exc:
            log.error("could not commit revoked partitions: %s", exc)
            handed_over = False
        if not handed_over and not self.committer.abandoned:
            log.warning("the offsets of revoked %s were not committed at the handover: their new owner "
                        "processes the records after the last commit again (at-least-once)", _fmt(partitions))
        self.committer.forget(keys)
        self._drop_held(keys)
        self.tasks.revoke(keys)
        log.info("revoked %s", _fmt(partitions))

    def _on_lost(self, consumer: Any, partitions: list[Any]) -> None:
        assert self.tasks is not None and self.committer is not None
        keys = [(tp.topic, tp.partition) for tp in partitions]
        self.committer.forget(keys)
        self._drop_held(keys)
        if self.state is not None:
            self.state.drop_unacked()
        self.tasks.revoke(keys)
        log.warning("lost %s (another member owns them now)", _fmt(partitions))

    # -- the loop -------------------------------------------------------------
    def run(self) -> None:
        self.fatal: KafkaError | None = None
        handlers = _install_signal_handlers(self.app.stop)
        gc.collect()
        gc.freeze()
        old_threshold = gc.get_threshold()
        gc.set_threshold(100_000, 50, 100)
        failed: BaseException | None = None
        try:
            self._start()
            self._loop()
        except BaseException as exc:
            failed = exc
            raise
        finally:
            gc.set_threshold(*old_threshold)
            gc.unfreeze()
            self._shutdown(clean=failed is None or isinstance(failed, RecordError))
            _restore_signal_handlers(handlers)

    def _loop(self) -> None:
        """Consume a batch, run each record through its task's chain, commit on the interval.

        Per record: an error event goes to :meth:`_consumer_error`; a record is
        routed by ``routes[topic][partition]``. A generated chain has a ``run``
        function that goes on through the records after it while they belong to
        the same partition (librdkafka hands them out in runs), so routing is
        paid once per run, not once per record. Offsets: ``position()`` once per
        batch.
        """
        consumer, committer, app = self.consumer, self.committer, self.app
        assert committer is not None and self.tasks is not None
        batch = self.config.batch_size
        consume = consumer.consume
        position = consumer.position
        assignment = consumer.assignment
        updater, held = self.updater, self._held
        process = self._process
        while not app.stopping:
            restoring = updater is not None and updater.busy
            if restoring:
                self._activate_restored()
                if app.stopping:
                    break
            # while tasks restore, come back often to activate them
            msgs = consume(batch, 0.01 if restoring else 0.2)
            if msgs:
                process(msgs)
                self.processed += len(msgs)
                committer.track_positions(position(assignment()))
                if held:  # fetched, maybe not processed: their commits wait for their tasks
                    for key in held:
                        committer.pending.pop(key, None)
            if self.fatal is not None:
                raise StreamletError(f"the Kafka client hit a fatal error: {self.fatal}")
            committer.maybe_commit()

    def _process(self, msgs: list[Any]) -> None:
        """Run a batch through the tasks' chains (see :meth:`_loop`)."""
        routes = self.tasks.routes  # type: ignore[union-attr]
        failed = self._record_failed
        # one subscribed topic: a run only has to watch for the partition to change
        run_attr = "run_one_topic" if len(routes) == 1 else "run"
        rest = iter(msgs)
        m = next(rest, None)
        while m is not None:
            if m.error() is not None:
                self._consumer_error(m)
                m = next(rest, None)
                continue
            try:
                fn = routes[m.topic()][m.partition()]
            except KeyError:
                self._hold(m)
                m = next(rest, None)
                continue
            run = getattr(fn, run_attr, None)
            if run is not None:
                try:
                    m = run(m, rest)
                except RunFailure as exc:
                    failed(msgs, exc.msg, exc.cause, exc.stage)
                    m = next(rest, None)
                continue
            try:
                fn(m)
            except DeserializationFailure as exc:
                failed(msgs, m, exc.cause, "deserialize")
            except Exception as exc:
                failed(msgs, m, exc, "process")
            m = next(rest, None)

    def _consumer_error(self, m: Any) -> None:
        err = m.error()
        if err.code() == KafkaError._PARTITION_EOF:
            return
        if err.code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC,
                          KafkaError.TOPIC_AUTHORIZATION_FAILED) or err.fatal():
            raise ConfigError(f"consumer error on {m.topic()}: {err}")
        log.warning("consumer error: %s", err)

    def _record_failed(self, msgs: list[Any], m: Any, exc: BaseException, stage: str) -> None:
        try:
            self.policy.handle(m, exc, stage)
        except RecordError:
            # fail: commit what came before this record, nothing past it
            assert self.committer is not None and self.tasks is not None
            routes = self.tasks.routes
            for prev in msgs:
                if prev is m:
                    break
                # records of a partition revoked in this batch were skipped: not ours to commit
                if prev.error() is None and prev.partition() in routes.get(prev.topic(), ()):
                    self.committer.track(prev.topic(), prev.partition(), prev.offset() + 1)
            self.committer.track(m.topic(), m.partition(), m.offset())
            self.app.stop()
            raise

    def _shutdown(self, clean: bool) -> None:
        if self.consumer is None:
            return
        if not clean and self.committer is not None:
            self.committer.abandon()  # closing the consumer revokes, and the revoke callback commits
        try:
            if clean and self.committer is not None:
                try:
                    self.committer.commit()
                except StreamletError as exc:
                    log.error("final commit failed: %s", exc)
            if self.updater is not None:
                self.updater.close()
            if self.tasks is not None:
                self.tasks.close_all()
                self.tasks.tasks.clear()
            self.consumer.close()
            if self.state is not None:
                self.state.close()
        except KafkaException as exc:
            log.warning("error while leaving the group: %s", exc)
        finally:
            if self.producer is not None:
                self.producer.flush(10)
            self.consumer = None
            self.producer = None


def _fmt(partitions: list[Any]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions) or "nothing"


def _install_signal_handlers(stop: Any) -> dict[int, Any]:
    if threading.current_thread() is not threading.main_thread():
        return {}
    old = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        old[sig] = signal.getsignal(sig)
        signal.signal(sig, lambda *_: stop())
    return old


def _restore_signal_handlers(old: dict[int, Any]) -> None:
    for sig, handler in old.items():
        signal.signal(sig, handler)
