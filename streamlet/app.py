"""``sl.App``: one application (consumer group) — where a topology starts and runs."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Callable

from streamlet import config as _config
from streamlet.dsl.global_table import GlobalKTable
from streamlet.dsl.stream import KStream
from streamlet.dsl.table import KTable
from streamlet.serde.base import Serde
from streamlet.serde.builtin import json as json_serde
from streamlet.serde.builtin import string as string_serde
from streamlet.topology.describe import describe_mermaid, describe_text
from streamlet.topology.graph import StoreSpec, Topology
from streamlet.topology.timestamps import TimestampExtractor

if TYPE_CHECKING:
    from streamlet.broker.mock import MockCluster


class App:
    """A stream processing application: its settings and its topology.

        >>> app = App("orders-app", brokers="embedded")
        >>> app.stream("orders").filter(lambda k, v: v["amount"] > 100).to("big-orders")
        >>> app.run()   # blocks until SIGTERM / SIGINT / app.stop()

    Every setting also comes from a ``STREAMLET_*`` environment variable,
    which wins over the argument (``STREAMLET_BROKERS``, ``STREAMLET_STATE_DIR``,
    ``STREAMLET_GUARANTEE``, ``STREAMLET_COMMIT_INTERVAL_MS``,
    ``STREAMLET_ON_ERROR``, ``STREAMLET_DEAD_LETTER_TOPIC``).

    Data-loss checks (``"fail"`` stops the worker, ``"warn"`` logs, counts and goes on):
    ``on_changelog_truncated`` (default fail) — a restore needs changelog records the broker
    deleted; ``on_input_truncated`` (default warn) — an input partition's committed offset is
    below its log start, so records were deleted before they were processed;
    ``on_partition_mismatch`` (default warn) — a record of a co-partitioned input (a join's
    table, say) sits on another partition than Kafka's default partitioner (murmur2) gives its
    key, so the join cannot find it.

    ``late_records`` (default ``"drop"``) — a record too late for every window it falls in is
    dropped, counted and logged; ``"dead_letter"`` also sends it to the dead-letter topic.

    ``num_standby_replicas`` (default 0) — how many other workers keep a warm copy of each task's
    stores by following its changelog (Kafka Streams' ``num.standby.replicas``), so that a failover
    restores only the changelog's tail; see "Standby replicas" in docs/architecture.md.
    ``instance_id`` (``STREAMLET_INSTANCE_ID``) — static group membership: this worker's stable id,
    different for every worker (``"auto"``: the Kubernetes pod name, from ``POD_NAME``); a worker
    restarted within ``session.timeout.ms`` (45 s) gets its partitions back without a rebalance.
    ``shutdown_grace_ms`` (``STREAMLET_SHUTDOWN_GRACE_MS``, default 25,000) — after SIGTERM, how
    long commit, flush and leaving may take before the process exits non-zero. See docs/failover.md.
    ``task_assignor`` (``STREAMLET_TASK_ASSIGNOR``, default ``"group"``) — ``"streamlet"`` places tasks
    with streamlet's own assignor (Kafka Streams' KIP-441): a task stays on or goes to a worker whose
    copy of its stores is caught up (``acceptable_recovery_lag``), a new worker warms copies up
    (``max_warmup_replicas``) and takes tasks over once they caught up, checked every
    ``probing_rebalance_interval_ms``. Every worker of an application uses the same assignor.
    """

    def __init__(self, application_id: str, brokers: str | None = None, state_dir: str | None = None,
                 guarantee: str | None = None, commit_interval_ms: int | None = None,
                 on_error: str | None = None, dead_letter_topic: str | None = None,
                 config: dict[str, Any] | None = None, default_key_serde: Serde | None = None,
                 default_value_serde: Serde | None = None, batch_size: int | None = None,
                 on_changelog_truncated: str | None = None, on_input_truncated: str | None = None,
                 on_partition_mismatch: str | None = None,
                 repartition_purge_interval_ms: int | None = None, late_records: str | None = None,
                 application_server: str | None = None, num_standby_replicas: int | None = None,
                 instance_id: str | None = None, shutdown_grace_ms: int | None = None,
                 task_assignor: str | None = None, acceptable_recovery_lag: int | None = None,
                 max_warmup_replicas: int | None = None,
                 probing_rebalance_interval_ms: int | None = None) -> None:
        self.config = _config.resolve(
            application_id, brokers=brokers, state_dir=state_dir, guarantee=guarantee,
            commit_interval_ms=commit_interval_ms, on_error=on_error,
            dead_letter_topic=dead_letter_topic, client_config=dict(config or {}),
            batch_size=batch_size, on_changelog_truncated=on_changelog_truncated,
            on_input_truncated=on_input_truncated, on_partition_mismatch=on_partition_mismatch,
            late_records=late_records, application_server=application_server,
            num_standby_replicas=num_standby_replicas, instance_id=instance_id,
            shutdown_grace_ms=shutdown_grace_ms, task_assignor=task_assignor,
            acceptable_recovery_lag=acceptable_recovery_lag, max_warmup_replicas=max_warmup_replicas,
            probing_rebalance_interval_ms=probing_rebalance_interval_ms,
            repartition_purge_interval_ms=repartition_purge_interval_ms,
        )
        self.application_id = application_id
        self.default_key_serde = default_key_serde or string_serde()
        self.default_value_serde = default_value_serde or json_serde()
        self.topology = Topology(application_id)
        self._stop = threading.Event()
        self._embedded: MockCluster | None = None
        self._runner: Any = None
        self._metrics: Any = None  # the last run's counters (kept after close())

    # -- DSL entry points ---------------------------------------------------
    def stream(self, topic: str, key_serde: Serde | None = None, value_serde: Serde | None = None,
               name: str | None = None, timestamp: str | None = None,
               timestamp_extractor: Callable[[Any, Any, int], int] | str | None = None) -> KStream:
        """A :class:`KStream` of ``topic``; serdes default to the app's (string keys, JSON values).

        Records are timed by their Kafka timestamp, or by the field ``timestamp`` of the value
        (ms since the epoch), or by ``timestamp_extractor(key, value, record_timestamp) -> ms``
        (Kafka Streams' ``TimestampExtractor``); the extracted time is the record's timestamp
        downstream (outputs, aggregators, stream time). A missing, non-numeric or negative
        timestamp is a bad record under ``on_error``.
        """
        if not isinstance(topic, str) or not topic:
            raise TypeError("stream() needs a topic name")
        ks = key_serde or self.default_key_serde
        vs = value_serde or self.default_value_serde
        extractor = TimestampExtractor.of(timestamp, timestamp_extractor)
        self._check_new_source(topic)
        node = self.topology.add("source", [], name=name or f"source-{topic}", topic=topic,
                                 key_serde=ks, value_serde=vs, timestamp_extractor=extractor)
        return KStream(self, node.name, ks, vs)

    def table(self, topic: str, key_serde: Serde | None = None, value_serde: Serde | None = None,
              name: str | None = None, timestamp: str | None = None,
              timestamp_extractor: Callable[[Any, Any, int], int] | str | None = None) -> KTable:
        """A :class:`KTable` of ``topic``: the latest value per key; a ``None`` value deletes the key.

        Its rows live in a store called ``name`` (default: the topic), restored
        from the topic itself (no extra changelog). A record without a key is a
        bad record (``on_error`` decides). ``timestamp`` / ``timestamp_extractor`` as in
        :meth:`stream` (a tombstone keeps its record timestamp with a field).
        """
        if not isinstance(topic, str) or not topic:
            raise TypeError("table() needs a topic name")
        ks = key_serde or self.default_key_serde
        vs = value_serde or self.default_value_serde
        extractor = TimestampExtractor.of(timestamp, timestamp_extractor)
        store = name or topic
        self._check_new_source(topic)
        src = self.topology.add("source", [], name=f"source-{topic}", topic=topic, key_serde=ks, value_serde=vs,
                                timestamp_extractor=extractor)
        # each row keeps its record's time: a table–table join stamps its output with the later one
        spec = self.topology.add_store(StoreSpec(store, "table", ks, vs, changelog=topic, source_table=True,
                                                 timestamped=True))
        node = self.topology.add("table_source", [src.name], name=f"table-{store}", store=store,
                                 topic=topic, key_serde=spec.key_serde)  # looks rows up by store key bytes
        return KTable(self, node.name, ks, vs, store=store)

    def global_table(self, topic: str, key_serde: Serde | None = None, value_serde: Serde | None = None,
                     name: str | None = None) -> GlobalKTable:
        """A :class:`GlobalKTable` of ``topic``: every partition of it on every worker (Kafka Streams'
        ``GlobalKTable``), for ``stream.join(global_table, joiner, key_selector=...)``.

        Its rows live in a store called ``name`` (default: the topic), loaded whole
        from the topic before any task processes a record and kept current while the
        app runs; a ``None`` value deletes the key. No changelog: a restart reads the
        topic from the store's checkpoint on. A record without a key, or one its serdes
        cannot read, is a bad record (``on_error`` decides).
        """
        if not isinstance(topic, str) or not topic:
            raise TypeError("global_table() needs a topic name")
        ks = key_serde or self.default_key_serde
        vs = value_serde or self.default_value_serde
        store = name or topic
        self._check_new_source(topic)
        self.topology.add_global_store(StoreSpec(store, "global", ks, vs, changelog=topic, source_table=True))
        return GlobalKTable(self, store, topic, ks, vs)

    def _check_new_source(self, topic: str) -> None:
        for node in self.topology.sources():
            if node.params["topic"] == topic:
                raise _config.ConfigError(
                    f"topic {topic!r} is already a source of this app: reuse the stream/table object"
                )
        if topic in self.topology.global_topics():
            raise _config.ConfigError(
                f"topic {topic!r} is already the topic of a global table of this app: reuse that object"
            )

    def store(self, name: str) -> Any:
        """Read-only view of store ``name`` over the partitions this process owns (interactive queries).

        ``view[key]``, ``view.get(key)``, ``view.items()``, ``len(view)``; values as users see them
        (an aggregation's row, a table's value). A global table's store holds every partition.
        """
        from streamlet.runtime.store_view import store_view

        topo = self.topology
        if name not in topo.stores and name not in topo.global_stores:
            raise KeyError(f"no store named {name!r}; stores: {sorted([*topo.stores, *topo.global_stores])}")
        if self._runner is None or self._runner.tasks is None:
            raise _config.ConfigError("app.store() reads the stores of a running app: call it while app.run() runs")
        return store_view(topo, name, self._runner.tasks, self._runner.global_stores)

    def metrics(self) -> dict[str, int]:
        """Counters of the running (or last) run, Prometheus-style: ``input_truncated_records``,
        ``changelog_truncated_records``, ``partition_mismatches``, ... (``{}`` before a run)."""
        return self._metrics.snapshot() if self._metrics is not None else {}

    def state(self) -> dict[str, Any]:
        """Where this worker is: ``{"state": ..., "ready": bool, "tasks": {task id: state}}``.

        ``state`` is ``"not_running"`` (before or after :meth:`run`), ``"starting"`` (no
        partitions assigned yet), ``"restoring"`` (some assigned task restores its stores) or
        ``"running"``; ``ready`` is true only while running: every assigned task is RUNNING
        (Kafka Streams' task states CREATED, RESTORING, RUNNING, SUSPENDED, CLOSED). A
        rebalance that brings tasks with stores to restore makes it false again until they are
        restored.
        """
        from streamlet.runtime.observability import worker_state

        return worker_state(self._runner)

    # -- inspection ---------------------------------------------------------
    def describe(self, format: str = "text") -> str:
        """The topology as text (Kafka Streams style) or as a Mermaid flowchart (``format='mermaid'``)."""
        if format == "mermaid":
            return describe_mermaid(self.topology)
        if format == "text":
            return describe_text(self.topology)
        raise ValueError("format must be 'text' or 'mermaid'")

    # -- running ------------------------------------------------------------
    def embedded_broker(self) -> "MockCluster":
        """The in-process embedded broker of ``brokers='embedded'`` (started on first use)."""
        from streamlet.broker.mock import MockCluster

        if not self.config.embedded:
            raise _config.ConfigError(
                f"this app uses brokers={self.config.brokers!r}, not the embedded broker"
            )
        if self._embedded is None:
            self._embedded = MockCluster(brokers=1)
        return self._embedded

    def run(self) -> None:
        """Process until SIGTERM / SIGINT / :meth:`stop`; then flush, commit and leave the group."""
        from streamlet.runtime.runner import Runner

        self._stop.clear()
        self._runner = Runner(self)
        self._metrics = self._runner.metrics
        self._runner.run()

    def stop(self) -> None:
        """Ask :meth:`run` to finish its batch, commit and return. Safe from any thread or callback."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def close(self) -> None:
        """Release the clients of the last run and the embedded broker, if this app started one."""
        if self._runner is not None:
            import gc

            self._runner = None
            gc.collect()  # the clients go before the broker they talk to
        if self._embedded is not None:
            self._embedded.close()
            self._embedded = None
