"""Counters of what a worker saw, by name and labels (the Prometheus model).

For rare events — data loss found, partition mismatches, store resets — never
per record: the record loop keeps its own plain counters. ``app.metrics()``
reads them; the worker's ``/metrics`` endpoint will serve them.
"""

from __future__ import annotations

import threading


class Metrics:
    """``inc("input_truncated_records", 42, topic="events", partition=3)``; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}

    def inc(self, name: str, amount: int = 1, **labels: object) -> None:
        key = (name, tuple(sorted((k, str(v)) for k, v in labels.items())))
        with self._lock:
            self._counters[key] = self._counters.get(key, 0) + amount

    def get(self, name: str, **labels: object) -> int:
        """The sum over every series of ``name`` whose labels include ``labels``."""
        wanted = {(k, str(v)) for k, v in labels.items()}
        with self._lock:
            return sum(v for (n, ls), v in self._counters.items() if n == name and wanted <= set(ls))

    def snapshot(self) -> dict[str, int]:
        """``{'name{label="value",...}': count}``, as Prometheus would show the series."""
        with self._lock:
            items = list(self._counters.items())
        out = {}
        for (name, labels), value in sorted(items):
            inner = ",".join(f'{k}="{v}"' for k, v in labels)
            out[f"{name}{{{inner}}}" if inner else name] = value
        return out

    def items(self) -> list[tuple[tuple[str, tuple[tuple[str, str], ...]], int]]:
        """``((name, labels), count)`` of every series."""
        with self._lock:
            return list(self._counters.items())
