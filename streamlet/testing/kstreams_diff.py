"""Kafka Streams as the reference: run ``tools/kstreams-diff`` (TopologyTestDriver) from Python.

The Maven project ``tools/kstreams-diff`` holds named Kafka Streams topologies and a main class that
runs them on JSON-line records (see its ``Main.java``). :func:`classpath` builds it once per machine
with the helpers of :mod:`streamlet.testing.kafka_jars` (``java`` and ``mvn`` checks, a lock, a
marker): its jar and runtime dependencies go to ``$XDG_CACHE_HOME/streamlet/kstreams-diff-<kafka
version>/jars``, rebuilt when the pom or a Java source changes; Maven runs offline first, then online.
:class:`ReferenceDriver` keeps one JVM for many cases.
"""

from __future__ import annotations

import logging
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import orjson

from streamlet.errors import KafkaBrokerError
from streamlet.testing.kafka_jars import find_java
from streamlet.testing.maven_app import app_jars

log = logging.getLogger("streamlet.testing.kstreams_diff")

#: the Maven project (a source checkout: it is not shipped in the package)
PROJECT = Path(__file__).resolve().parents[2] / "tools" / "kstreams-diff"
MAIN_CLASS = "dev.streamlet.kdiff.Main"


class KStreamsReferenceError(KafkaBrokerError):
    """The Kafka Streams reference could not be built or run (no Java, no Maven, a failed case)."""


@dataclass(frozen=True)
class OutRecord:
    """One output record: what both sides are compared on."""

    topic: str
    key: Any
    value: Any
    timestamp: int


def jars_dir() -> Path:
    """The folder of the reference's jar and its runtime jars, built with Maven when stale."""
    return app_jars(PROJECT, "Kafka Streams reference", KStreamsReferenceError)


class ReferenceDriver:
    """One JVM running Kafka Streams topologies: :meth:`run` sends a case, returns its outputs."""

    def __init__(self) -> None:
        try:
            java = find_java()
        except KafkaBrokerError as exc:
            raise KStreamsReferenceError(f"the Kafka Streams reference needs Java: {exc}") from exc
        self._cases = 0
        self._proc = subprocess.Popen([java, "-Xmx256m", "-XX:TieredStopAtLevel=1", "-cp",
                                       f"{jars_dir()}/*", MAIN_CLASS],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def run(self, topology: str, records: Iterable[dict[str, Any]]) -> list[OutRecord]:
        """Run ``records`` (dicts: topic, key, value, timestamp) through ``topology`` on a fresh driver."""
        self._cases += 1
        case = f"{topology}-{self._cases}"
        lines = [orjson.dumps({"case": case, "topology": topology})]
        lines += [orjson.dumps(r) for r in records]
        lines.append(orjson.dumps({"end": case}))
        assert self._proc.stdin is not None and self._proc.stdout is not None
        try:
            self._proc.stdin.write(b"\n".join(lines) + b"\n")
            self._proc.stdin.flush()
        except BrokenPipeError as exc:
            raise KStreamsReferenceError(f"the reference JVM died: {self._stderr()}") from exc
        out: list[OutRecord] = []
        while True:
            line = self._proc.stdout.readline()
            if not line:
                raise KStreamsReferenceError(f"the reference JVM died during case {case}: {self._stderr()}")
            msg = orjson.loads(line)
            if "done" in msg:
                return out
            if "error" in msg:
                self._proc.stdout.readline()  # its "done"
                raise KStreamsReferenceError(f"Kafka Streams failed on case {case}: {msg['error']}")
            out.append(OutRecord(msg["topic"], msg["key"], msg["value"], msg["timestamp"]))

    def _stderr(self) -> str:
        self.close()
        return (self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else "")[-3000:]

    def close(self) -> None:
        if self._proc.poll() is None:
            if self._proc.stdin:
                self._proc.stdin.close()
            try:
                self._proc.wait(30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def __enter__(self) -> "ReferenceDriver":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
