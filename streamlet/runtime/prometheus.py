"""The worker's ``/metrics`` page in the Prometheus text format (version 0.0.4).

Read from the HTTP side's thread; everything here is what the record loop
publishes anyway (counters, task states, the librdkafka statistics it polls
every ``statistics.interval.ms``) — nothing is computed per record for it.
The exposition is small enough to write out here rather than depend on
``prometheus_client``, whose registry would duplicate :class:`streamlet.metrics.Metrics`.

Names: ``streamlet_`` + the counter's name with ``.`` as ``_``; counters end in
``_total``. See docs/observability.md for every series.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

_NAME = re.compile(r"[^a-zA-Z0-9_:]")

#: (name, type, help) of the series the runner publishes besides its counters
SERIES = {
    "streamlet_up": ("gauge", "1 while the worker runs"),
    "streamlet_ready": ("gauge", "1 when every assigned task is running (readiness)"),
    "streamlet_tasks": ("gauge", "assigned tasks by state (CREATED, RESTORING, RUNNING, ...)"),
    "streamlet_records_processed_total": ("counter", "input records processed by this worker"),
    "streamlet_records_skipped_total": ("counter", "records skipped by on_error='skip'"),
    "streamlet_records_dead_lettered_total": ("counter", "records written to the dead-letter topic"),
    "streamlet_commits_total": ("counter", "commits (outputs flushed, stores checkpointed, offsets committed)"),
    "streamlet_commit_latency_seconds_sum": ("counter", "time spent in commits"),
    "streamlet_commit_latency_seconds_max": ("gauge", "the longest commit since the start"),
    "streamlet_consumer_lag": ("gauge", "records behind the partition's end, per input partition "
                                        "(librdkafka statistics)"),
    "streamlet_restore_records": ("gauge", "records restored so far, per store partition"),
    "streamlet_restore_records_expected": ("gauge", "records to restore, per store partition"),
    "streamlet_store_estimated_keys": ("gauge", "RocksDB's estimate of the keys of a store, per task"),
    "streamlet_rebalances_total": ("counter", "partition assignments and revocations"),
}


def metric_name(name: str) -> str:
    return "streamlet_" + _NAME.sub("_", name)


def _labels(labels: Iterable[tuple[str, Any]]) -> str:
    inner = ",".join(f'{_NAME.sub("_", str(k))}="{_escape(v)}"' for k, v in labels)
    return f"{{{inner}}}" if inner else ""


def _escape(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(samples: list[tuple[str, list[tuple[str, Any]], float]]) -> str:
    """``samples``: ``(series name, labels, value)``; types and help from :data:`SERIES` (a counter
    from :class:`~streamlet.metrics.Metrics` is a counter)."""
    by_name: dict[str, list[tuple[list[tuple[str, Any]], float]]] = {}
    for name, labels, value in samples:
        by_name.setdefault(name, []).append((labels, value))
    lines = []
    for name in sorted(by_name):
        kind, text = SERIES.get(name, ("counter", "a counter of the worker (docs/observability.md)"))
        lines.append(f"# HELP {name} {text}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in by_name[name]:
            number = int(value) if float(value).is_integer() else value
            lines.append(f"{name}{_labels(labels)} {number}")
    return "\n".join(lines) + "\n"


def counter_samples(metrics: Any) -> list[tuple[str, list[tuple[str, Any]], float]]:
    """The samples of a :class:`~streamlet.metrics.Metrics`: ``name{labels}`` -> ``streamlet_name_total``."""
    out = []
    for (name, labels), value in metrics.items():
        series = metric_name(name)
        out.append((series if series.endswith("_total") else series + "_total", list(labels), value))
    return out
