"""The worker's HTTP side put together: routes over the running worker, its metrics page, and the
consumer lag from librdkafka's statistics (``application_server="host:port"``, DESIGN §8).

Kubernetes probes ``/health`` (liveness: the poll loop made progress within
``max.poll.interval.ms``, the limit after which Kafka itself drops the member)
and ``/ready`` (readiness: every assigned task running, none restoring).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Optional
from urllib.parse import quote

import orjson

from streamlet.errors import ConfigError
from streamlet.partitioner import murmur2_partition
from streamlet.runtime.http_routes import Routes
from streamlet.runtime.http_side import HttpSide
from streamlet.runtime.prometheus import counter_samples, render
from streamlet.runtime.store_view import store_view

log = logging.getLogger("streamlet.http")

#: librdkafka's statistics period while the HTTP side runs (the consumer lag of /metrics)
STATS_INTERVAL_MS = 5000


def parse_server(value: str) -> tuple[str, int]:
    """``(host, port)`` of an ``application_server`` setting, or a :class:`ConfigError` saying how."""
    host, sep, port = str(value).rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"application_server={value!r} must be HOST:PORT, the address other workers and "
                          "Kubernetes probes reach this worker's HTTP side at (e.g. "
                          "'orders-0.orders:8080', or STREAMLET_APPLICATION_SERVER)")
    return host, int(port)


class Observability:
    """Serves ``/health``, ``/ready``, ``/metrics`` and ``/stores`` for ``runner`` while it runs."""

    def __init__(self, runner: Any, server: str) -> None:
        self.runner = runner
        self.advertised = server
        self.host, self.port = parse_server(server)
        self.last_poll: Optional[float] = None
        #: (topic, partition) -> records behind the end (librdkafka statistics)
        self.lag: dict[tuple[str, int], int] = {}
        self.http: HttpSide | None = None
        #: the worker's membership (:class:`~streamlet.runtime.standby.StandbyTasks`): who runs which task
        self._members: Any = None
        #: store -> (sub-topology, partition count): which task holds a key
        self._store_tasks: dict[str, tuple[int, int]] = {}
        interval = runner.config.client_config.get("max.poll.interval.ms", 300_000)
        self.liveness_timeout_s = int(interval) / 1000.0

    def consumer_settings(self) -> dict[str, Any]:
        return {"statistics.interval.ms": STATS_INTERVAL_MS, "stats_cb": self.on_stats}

    def on_stats(self, text: str) -> None:
        """librdkafka's statistics (on the loop's thread, every few seconds): the consumer lag."""
        try:
            stats = orjson.loads(text)
        except orjson.JSONDecodeError:
            return
        lag: dict[tuple[str, int], int] = {}
        for topic, t in stats.get("topics", {}).items():
            for p, info in t.get("partitions", {}).items():
                n = info.get("consumer_lag", -1)
                if int(p) >= 0 and n is not None and n >= 0 and info.get("fetch_state") not in ("none", None):
                    lag[(topic, int(p))] = int(n)
        self.lag = lag

    def start(self) -> None:
        app = self.runner.app
        topology = app.topology
        specs = {**topology.stores, **topology.global_stores}
        routes = Routes(self.state, self.store, specs, self.metrics_text, lambda: self.last_poll,
                        owner=self.owner, liveness_timeout_s=self.liveness_timeout_s)
        bind = "0.0.0.0" if self.host not in ("127.0.0.1", "localhost", "::1") else self.host
        self.http = HttpSide(bind, self.port, routes).start()

    def stop(self) -> None:
        if self.http is not None:
            self.http.stop()
            self.http = None

    # -- interactive queries across workers ----------------------------------------------------------
    def members(self, members: Any, partitions: dict[str, int]) -> None:
        """Where the other workers' HTTP sides are: the members they publish (with their tasks)."""
        self._members = members
        topology = self.runner.app.topology
        topics_of_sub = topology.topics_of_subtopology()
        for sub, group in enumerate(topology.subtopologies()):
            if sub in topics_of_sub:
                for spec in topology.stores_of(group):
                    self._store_tasks[spec.name] = (sub, partitions.get(topics_of_sub[sub][0], 0))

    def owner(self, store: str, key: Any) -> Any:
        """``None`` when this worker holds ``key``'s partition of ``store`` (or it is global), else a
        callable answering the query from the worker that does (or a 503 saying it is not known)."""
        where = self._store_tasks.get(store)
        tasks = self.runner.tasks
        if where is None or tasks is None:
            return None
        sub, count = where
        spec = self.runner.app.topology.stores[store]
        try:
            data = spec.key_serde.serialize(key)
        except Exception:
            return None  # the local lookup answers the 400
        task_id = f"{sub}_{murmur2_partition(data, count)}" if count > 1 else f"{sub}_0"
        if any(t.task_id == task_id for t in list(tasks.tasks.values())):
            return None
        server = self._members.server_of(task_id) if self._members is not None else None
        if server is None:
            return lambda: (503, "application/json", orjson.dumps(
                {"error": f"key {key!r} of store {store!r} is in task {task_id}, which no worker is known to run "
                          "now (a rebalance, or workers without application_server): try again"}) + b"\n")
        return lambda: ask(server, store, key)

    # -- what the routes read ----------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return worker_state(self.runner)

    def store(self, name: str) -> Any:
        runner, topology = self.runner, self.runner.app.topology
        if runner.tasks is None and name not in topology.global_stores:
            raise RuntimeError("no tasks yet")
        return store_view(topology, name, runner.tasks, runner.global_stores)

    def metrics_text(self) -> str:
        runner = self.runner
        samples: list[tuple[str, list[tuple[str, Any]], float]] = [("streamlet_up", [], 1)]
        samples.append(("streamlet_ready", [], 1 if runner.ready.is_set() else 0))
        samples.append(("streamlet_records_processed_total", [], runner.processed))
        tasks = runner.tasks
        if tasks is not None:
            by_state: dict[str, int] = {}
            for state in tasks.states().values():
                by_state[str(state)] = by_state.get(str(state), 0) + 1
            samples += [("streamlet_tasks", [("state", s)], n) for s, n in sorted(by_state.items())]
            samples += self._store_sizes(tasks)
        policy = getattr(runner, "policy", None)
        if policy is not None:
            samples.append(("streamlet_records_skipped_total", [], policy.skipped))
            samples.append(("streamlet_records_dead_lettered_total", [], policy.dead_lettered))
        latency = getattr(runner.committer, "latency", None)
        if latency is not None:
            samples.append(("streamlet_commits_total", [], latency.count))
            samples.append(("streamlet_commit_latency_seconds_sum", [], round(latency.total, 6)))
            samples.append(("streamlet_commit_latency_seconds_max", [], round(latency.longest, 6)))
        samples += [("streamlet_consumer_lag", [("topic", t), ("partition", p)], n)
                    for (t, p), n in sorted(self.lag.items())]
        progress = getattr(runner.state, "progress", None)
        for (store, partition), (done, total) in sorted(getattr(progress, "restores", {}).items()):
            samples.append(("streamlet_restore_records", [("store", store), ("partition", partition)], done))
            samples.append(("streamlet_restore_records_expected", [("store", store), ("partition", partition)],
                            total))
        samples += counter_samples(runner.metrics)
        return render(samples)

    def _store_sizes(self, tasks: Any) -> list[tuple[str, list[tuple[str, Any]], float]]:
        out = []
        for task in sorted(list(tasks.tasks.values()), key=lambda t: t.task_id):
            for name, store in sorted(task.ctx.stores.items()):
                keys = _estimated_keys(store)
                if keys is not None:
                    out.append(("streamlet_store_estimated_keys", [("store", name), ("task", task.task_id)], keys))
        return out

    def loop_polled(self) -> None:
        self.last_poll = time.monotonic()


def ask(server: str, store: str, key: Any) -> tuple[int, str, bytes]:
    """Answer a query from the worker at ``server`` (``local=true``: it answers from its own stores)."""
    import httpx2 as httpx

    text = key if isinstance(key, str) else orjson.dumps(key).decode()
    params = {"local": "true"} if isinstance(key, str) else {"local": "true", "key_format": "json"}
    try:
        r = httpx.get(f"http://{server}/stores/{quote(store, safe='')}/{quote(text, safe='')}", params=params,
                      timeout=10)
    except httpx.TransportError as exc:
        return 502, "application/json", orjson.dumps(
            {"error": f"the worker at {server} that holds the key did not answer: {exc}"}) + b"\n"
    return r.status_code, r.headers.get("content-type", "application/json"), r.content


def worker_state(runner: Any) -> dict[str, Any]:
    """``{"state": ..., "ready": bool, "tasks": {task id: state}}`` of a runner (``app.state()``):
    ``not_running``, ``starting`` (no partitions yet), ``restoring`` or ``running``."""
    tasks = runner.tasks if runner is not None else None
    if runner is None or runner.consumer is None or tasks is None:
        return {"state": "not_running", "ready": False, "tasks": {}}
    ready = runner.ready.is_set()
    state = "running" if ready else "restoring" if tasks.assigned_once else "starting"
    return {"state": state, "ready": ready, "tasks": tasks.states()}


def _estimated_keys(store: Any) -> Optional[int]:
    """RocksDB's estimate of the keys (``approximate_count``) of the database under a store's layers
    (metered -> caching -> change-logging -> RocksDB)."""
    for _ in range(8):
        if store is None:
            return None
        count = getattr(store, "approximate_count", None)
        if count is not None:
            try:
                return int(count())
            except Exception:  # closed under us by a rebalance: no figure this time
                return None
        inner = getattr(store, "inner", None)  # not `or`: a store's truth is its __len__, a full scan
        store = inner if inner is not None else getattr(store, "store", None)
    return None
