"""The worker: one consumer, one producer, tasks per partition, the batch loop.

Like Kafka Streams' ``StreamThread.runOnce``: consume a batch, run each record
through its task's compiled chain, commit on an interval. Rebalance callbacks
only create / close tasks and commit; no heavy work happens in them.
"""

from __future__ import annotations

import gc
import logging
import threading
from typing import TYPE_CHECKING, Any

from confluent_kafka import KafkaError

from confluent_kafka.admin import AdminClient

from streamlet.broker.admin import ControlTopicAdmin, EmbeddedTopicAdmin, admin_settings, connect
from streamlet.errors import ConfigError, RecordError, StateError, StoreCorruptedError, StreamletError
from streamlet.runtime.clients import (
    consumer_config,
    make_consumer,
    make_producer,
    max_record_bytes,
    produce_function,
    producer_config,
    with_client_logger,
)
from streamlet.runtime import stream_time
from streamlet.runtime.assigned_consumer import assigned_consumer
from streamlet.runtime.checkpoint import AtLeastOnceCheckpoint, Checkpoint
from streamlet.runtime.committer import Committer
from streamlet.runtime.error_policy import ErrorPolicy
from streamlet.runtime.lifecycle import install_signal_handlers, restore_signal_handlers
from streamlet.runtime.log_start import InputLogStart
from streamlet.metrics import Metrics
from streamlet.runtime import membership
from streamlet.runtime.observability import Observability
from streamlet.runtime.partition_check import PartitionCheck, copartitioned_external_topics
from streamlet.runtime.purge import RepartitionPurge
from streamlet.runtime.rebalance import RebalanceCallbacks
from streamlet.runtime.restoring import RestoringTasks
from streamlet.runtime.shutdown import shutdown
from streamlet.runtime.schema_rejections import SchemaRejections
from streamlet.runtime.standby import StandbyTasks, prepare_standby_topic
from streamlet.runtime.task_manager import TaskManager
from streamlet.runtime.topics import prepare_topics
from streamlet.runtime.transactions import (
    ExactlyOnceCheckpoint,
    init_transactions,
    release_transactional_id,
    rewind_tasks,
    transactional_settings,
)
from streamlet.topology.compile import DeserializationFailure, RunFailure, load_compilers
from streamlet.topology.timestamps import reads_stream_time

if TYPE_CHECKING:
    from streamlet.runtime.application import Application

log = logging.getLogger("streamlet.runtime")



class Runner(RebalanceCallbacks):
    """Runs one :class:`~streamlet.App` in this process until it is asked to stop."""

    def __init__(self, app: "Application") -> None:
        self.app = app
        self.config = app.config
        self.consumer: Any = None
        self.producer: Any = None
        self.tasks: TaskManager | None = None
        self.committer: Checkpoint | None = None  # owns the commit (runtime/checkpoint.py)
        self.state: Any = None  # a StateManager when the topology has stores
        self.updater: Any = None  # its StateUpdater: opens and restores stores of new tasks
        self.restoring: RestoringTasks | None = None  # held records, activation, resets
        self.partition_check: PartitionCheck | None = None  # keys of joined inputs on the right partition
        self.global_state: Any = None  # a GlobalState when the topology has global tables
        #: the global tables' store caches by name, shared with every task (and read by app.store)
        self.global_stores: dict[str, Any] = {}
        self.metrics = Metrics()
        self.http: Observability | None = None  # the HTTP side (application_server=)
        self.admin: Any = None  # an AdminClient: first offsets at assignment, repartition purges
        self.transactional_id: str | None = None  # exactly-once: freed at shutdown for the next start
        self.processed = 0
        self.closing = False
        #: set while every assigned task is running (none restoring); cleared while tasks restore
        self.ready = threading.Event()
        #: set at the first partition assignment (restores may still run)
        self.assigned = threading.Event()
        #: some task keeps stream time (only a Processor class schedules punctuators): it is committed
        #: with the offsets, and the loop looks for due punctuators
        self.keeps_stream_time = any(reads_stream_time(n) for n in app.topology.nodes.values())

    # -- set-up -------------------------------------------------------------
    def _start(self) -> None:
        cfg, topology = self.config, self.app.topology
        topology.validate()
        directory = None
        if topology.stores or topology.global_stores:
            from streamlet.state import StateDirectory
            from streamlet.state.spares import MAX_SPARES

            # a first start: spare databases open while the broker and the group are awaited
            directory = StateDirectory(cfg.state_dir, cfg.application_id)
            if topology.stores and directory.is_new():
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
        streamlet_assigns = cfg.task_assignor == "streamlet"
        embedded = self.app.embedded_broker() if cfg.embedded else None
        admin = connect(cfg.brokers if not embedded else embedded.bootstrap_servers,
                        with_client_logger(cfg.client_config), embedded)
        partitions = prepare_topics(topology, admin, cfg)
        if (cfg.num_standby_replicas or cfg.application_server) and topology.stores or streamlet_assigns:
            prepare_standby_topic(admin, cfg)  # also where workers find each other's HTTP side
        bootstrap = admin.bootstrap_servers
        admin.close()
        settings = producer_config(cfg, bootstrap, {"on_delivery": self._on_delivery})
        mock_broker = isinstance(admin, (EmbeddedTopicAdmin, ControlTopicAdmin))
        exactly_once = cfg.guarantee == "exactly_once"
        if exactly_once:
            settings.update(transactional_settings(cfg, mock_broker))
            self.transactional_id = settings["transactional.id"]
        self.producer = make_producer(settings)
        if exactly_once:
            init_transactions(self.producer, bootstrap)
        limit = max_record_bytes(settings)  # a larger record: ProduceError; a dead-letter record: cut to fit
        produce = produce_function(self.producer, limit)
        together = sorted(t for topics in topology.topics_of_subtopology().values() if len(topics) > 1
                          for t in topics)
        observed = {}
        if cfg.application_server is not None:
            self.http = Observability(self, cfg.application_server)
            observed = self.http.consumer_settings()
        consumer_settings = consumer_config(cfg, bootstrap, {"error_cb": self._on_client_error, "on_commit": self._on_commit,
                                                               **observed},
                                            mock_broker, together)
        self.consumer = make_consumer(consumer_settings)
        if streamlet_assigns:
            self.consumer = assigned_consumer(self.consumer, cfg, bootstrap, topology, partitions, mock_broker,
                                              self._on_commit)
        membership.describe(cfg, consumer_settings)
        committer = Committer(self.consumer, self.producer, cfg.commit_interval_ms, lambda: self.app.stopping)
        self.policy = ErrorPolicy(cfg.on_error, cfg.dead_letter, produce)
        self.admin = AdminClient(admin_settings(bootstrap, with_client_logger(cfg.client_config)))
        self.log_start = InputLogStart(self.consumer, self.admin, cfg.on_input_truncated, self.metrics)
        repartition = {name for name, t in topology.internal_topics.items() if t.kind == "repartition"}
        purge = RepartitionPurge(self.admin, repartition, cfg.repartition_purge_interval_ms)
        watched = copartitioned_external_topics(topology) if cfg.on_partition_mismatch != "ignore" else set()
        self.partition_check = PartitionCheck({t: partitions[t] for t in watched}, cfg.on_partition_mismatch,
                                              self.metrics) if watched else None
        self.tasks = TaskManager(topology, produce, partitions, global_stores=self.global_stores)
        self.tasks.metrics = self.metrics
        self.tasks.on_late = self.policy.late if cfg.late_records == "dead_letter" else None
        self.tasks.on_readiness = self._on_readiness
        changelog_produce = self.policy.connect(self.producer, committer, limit, topology)
        committer.on_rejected = SchemaRejections.wrap(topology, produce, self.policy.rejected, self.metrics)
        if exactly_once:
            self.committer = ExactlyOnceCheckpoint(committer, self.producer, self.consumer, self.tasks.active_tasks,
                                                   purge.after_commit, self._rewind_after_abort)
        else:
            self.committer = AtLeastOnceCheckpoint(committer, self.tasks.active_tasks, purge.after_commit)
        if self.keeps_stream_time:
            committer.offset_metadata = stream_time.metadata_of(self.tasks.task_of)
        if topology.stores:
            from streamlet.runtime.state_manager import StateManager
            from streamlet.runtime.state_updater import StateUpdater

            self.state = state = StateManager(cfg, bootstrap, changelog_produce, directory, self.metrics)
            self.updater = StateUpdater(state)
            self.tasks.before_close_restoring = self.updater.remove
            self.restoring = RestoringTasks(self.consumer, self.committer, self.tasks, self.updater,
                                            self._process, lambda: self.app.stopping,
                                            cfg.client_config.get("auto.offset.reset", "earliest"))
            state.prepare(topology.stores, partitions)
            if cfg.num_standby_replicas or cfg.application_server or streamlet_assigns:
                self.standbys = StandbyTasks(cfg, bootstrap, topology, partitions, self.metrics,
                                             getattr(self.consumer, "worker_id", None))
                if streamlet_assigns:
                    self.consumer.attach_standbys(self.standbys)
            if self.http is not None:
                self.http.members(self.standbys, partitions)
        load_compilers()
        if topology.global_stores:
            self._load_global_stores(bootstrap, directory, partitions)
        self.consumer.subscribe(topology.source_topics(), on_assign=self._on_assign,
                                on_revoke=self._on_revoke, on_lost=self._on_lost)
        if self.http is not None:
            self.http.start()

    def _load_global_stores(self, bootstrap: str, directory: Any, partitions: dict[str, int]) -> None:
        """Every global table loaded whole before the worker joins its group (so before any task
        processes a record); :meth:`_loop` keeps them current."""
        from streamlet.runtime.global_state import GlobalState

        if self.state is not None:
            progress, directory = self.state.progress, self.state.directory
        else:
            progress = None
        self.global_state = GlobalState(self.app.topology, self.config, bootstrap, directory, self.policy,
                                        partitions, self.global_stores, progress, metrics=self.metrics)
        self.global_state.bootstrap(lambda: self.app.stopping)

    def _on_delivery(self, err: Any, msg: Any) -> None:
        assert self.committer is not None
        self.committer.on_delivery(err, msg)

    def _on_commit(self, err: Any, partitions: list[Any]) -> None:
        if self.committer is not None:
            self.committer.on_commit(err, partitions)

    def _on_client_error(self, err: KafkaError) -> None:
        if err.fatal():
            log.error("fatal client error: %s", err)
            self.fatal = err
        else:
            log.debug("client error (librdkafka retries): %s", err)

    # -- the loop -------------------------------------------------------------
    def run(self) -> None:
        self.fatal: KafkaError | None = None
        handlers = install_signal_handlers(self.app.stop, self.config.shutdown_grace_ms / 1000)
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
            try:
                self._shutdown(clean=failed is None or isinstance(failed, RecordError))
            finally:
                if self.transactional_id is not None:  # the producer is closed: the id is free again
                    release_transactional_id(self.config, self.transactional_id)
                    self.transactional_id = None
                restore_signal_handlers(handlers)  # the shutdown is over: its grace too

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
        updater, restoring_tasks = self.updater, self.restoring
        held = restoring_tasks.held if restoring_tasks is not None else {}
        process = self._process
        check = self.partition_check.check if self.partition_check is not None else None
        # its log lines go through the repeat filter when served
        serve_admin_logs = self.admin.poll if self.admin is not None else (lambda _: 0)
        punctuate = self._punctuate if self.keeps_stream_time else None
        poll_global = self.global_state.poll if self.global_state is not None else None
        polled = self.http.loop_polled if self.http is not None else None
        standbys = self.standbys
        while not app.stopping:
            if polled is not None:
                polled()
            if poll_global is not None:
                poll_global()  # global tables' updates first: records after them see them
            restoring = updater is not None and updater.busy
            if restoring:
                restoring_tasks.activate_ready(self._count)  # type: ignore[union-attr]
                if app.stopping:
                    break
            # while tasks restore, come back often to activate them
            msgs = consume(batch, 0.01 if restoring else 0.2)
            if msgs:
                if check is not None:
                    check(msgs)
                process(msgs)
                self.processed += len(msgs)
                committer.track_positions(position(assignment()))
                if held:  # fetched, maybe not processed: their commits wait for their tasks
                    for key in held:
                        committer.pending.pop(key, None)
            if punctuate is not None:
                punctuate()
            if self.fatal is not None:
                raise (membership.fenced_error(self.fatal, self.config)
                       or StreamletError(f"the Kafka client hit a fatal error: {self.fatal}"))
            committer.maybe_commit()
            serve_admin_logs(0)
            if standbys is not None:
                standbys.maybe_update(self.tasks)
            if self.state is not None and committer.corrupted:
                self._reset_corrupted()

    def _punctuate(self) -> None:
        """After a batch (or a poll that brought none): the running tasks' punctuators that are due,
        stream time first (what the batch advanced), then wall-clock time; what they forward is
        produced before the next commit."""
        for task in list(self.tasks.tasks.values()):  # type: ignore[union-attr]
            punctuation = task.ctx.punctuation
            if punctuation is not None and task.active:
                punctuation.punctuate_stream_time()
                punctuation.punctuate_wall_clock()

    def _count(self, n: int) -> None:
        self.processed += n

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
                if self.restoring is not None and self.restoring.hold(m):
                    self.processed -= 1  # counted when its task processes it
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
        fenced = membership.fenced_error(err, self.config)
        if fenced is not None:
            raise fenced
        if err.code() == KafkaError._FATAL:
            raise StreamletError(f"the Kafka client hit a fatal error: {err}")
        if err.code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC,
                          KafkaError.TOPIC_AUTHORIZATION_FAILED) or err.fatal():
            raise ConfigError(f"consumer error on {m.topic()}: {err}")
        log.warning("consumer error: %s", err)

    def _record_failed(self, msgs: list[Any], m: Any, exc: BaseException, stage: str) -> None:
        if isinstance(exc, StateError):  # a store fault, never a record fault: not for on_error
            if not isinstance(exc, StoreCorruptedError):
                raise exc
            task = self.tasks.task_of(m.topic(), m.partition())  # type: ignore[union-attr]
            if task is None:
                raise exc
            self.restoring.reset(task, exc)  # type: ignore[union-attr]  # it and the rest since the last commit come again
            return
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

    # -- corrupted stores (Kafka Streams' task-corrupted path) ------------------------------
    def _reset_corrupted(self) -> None:
        """Tasks whose store write failed with corruption at the last commit (their changes are in
        the changelog and their offsets committed): reset them."""
        found, self.committer.corrupted = self.committer.corrupted, []  # type: ignore[union-attr]
        for task, exc in found:
            if self.tasks.tasks.get((task.subtopology, task.partition)) is task and task.active:  # type: ignore[union-attr]
                self.restoring.reset(task, exc)  # type: ignore[union-attr]

    def _rewind_after_abort(self) -> None:
        """An aborted transaction: every active task back to the last commit (see transactions.py)."""
        rewind_tasks(self.tasks.active_tasks(), self.restoring, self.consumer,  # type: ignore[union-attr]
                     self.config.client_config.get("auto.offset.reset", "earliest"))

    def _shutdown(self, clean: bool) -> None:
        shutdown(self, clean)
