"""Kafka Streams as the reference: run ``tools/kstreams-diff`` (TopologyTestDriver) from Python.

The Maven project ``tools/kstreams-diff`` holds named Kafka Streams topologies and a main class that
runs them on JSON-line records (see its ``Main.java``). :func:`classpath` builds it once per machine
with the helpers of :mod:`streamlet.testing.kafka_jars` (``java`` and ``mvn`` checks, a lock, a
marker): its jar and runtime dependencies go to ``$XDG_CACHE_HOME/streamlet/kstreams-diff-<kafka
version>/jars``, rebuilt when the pom or a Java source changes; Maven runs offline first, then online.
:class:`ReferenceDriver` keeps one JVM for many cases.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import orjson

from streamlet.errors import KafkaBrokerError
from streamlet.testing.kafka_jars import MARKER, _locked, find_java, find_mvn, kafka_version

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


def _sources() -> list[Path]:
    if not (PROJECT / "pom.xml").is_file():
        raise KStreamsReferenceError(f"{PROJECT}/pom.xml is missing: the differential test runs from a "
                                     "source checkout of streamlet (tools/kstreams-diff)")
    return [PROJECT / "pom.xml", *sorted((PROJECT / "src").rglob("*.java"))]


def _digest() -> str:
    h = hashlib.sha256()
    for path in _sources():
        h.update(str(path.relative_to(PROJECT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def jars_dir() -> Path:
    """The folder of the reference's jar and its runtime jars, built with Maven when stale."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = Path(cache) / "streamlet" / f"kstreams-diff-{kafka_version()}" / "jars"
    digest = _digest()
    marker = folder / MARKER
    if marker.is_file() and marker.read_text().strip() == digest:
        return folder
    with _locked(folder.parent / ".jars.lock"):
        if marker.is_file() and marker.read_text().strip() == digest:
            return folder  # another process built it meanwhile
        _build(folder, digest)
    return folder


def _build(folder: Path, digest: str) -> None:
    try:
        mvn = find_mvn()
    except KafkaBrokerError as exc:
        raise KStreamsReferenceError(f"the Kafka Streams reference needs Maven: {exc}") from exc
    tmp = folder.parent / f".jars.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    base = [mvn, "-q", "-B", "-f", str(PROJECT / "pom.xml"), f"-Dkdiff.build.dir={tmp / 'build'}",
            "package", "dependency:copy-dependencies", "-DincludeScope=runtime",
            f"-DoutputDirectory={tmp / 'jars'}"]
    log.warning("building the Kafka Streams reference (tools/kstreams-diff) into %s, once", folder)
    out = None
    for cmd in ([*base[:1], "-o", *base[1:]], base):  # offline first (~/.m2), then Maven Central
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        except (OSError, subprocess.TimeoutExpired) as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise KStreamsReferenceError(f"`{' '.join(cmd)}` failed: {exc}") from exc
        if out.returncode == 0:
            break
    jar = tmp / "build" / "kstreams-diff-1.jar"
    if out is None or out.returncode != 0 or not jar.is_file():
        shutil.rmtree(tmp, ignore_errors=True)
        text = (out.stdout + out.stderr) if out else ""
        errors = [line for line in text.splitlines() if line.startswith("[ERROR] /")]  # compiler errors
        tail = "\n".join(dict.fromkeys(errors))[:3000] if errors else text[-3000:]
        raise KStreamsReferenceError(
            f"`{' '.join(base)}` failed (a compile error, or no Maven Central?); its output:\n{tail}")
    shutil.copy2(jar, tmp / "jars" / jar.name)
    (tmp / "jars" / MARKER).write_text(digest + "\n")
    shutil.rmtree(folder, ignore_errors=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp / "jars", folder)
    shutil.rmtree(tmp, ignore_errors=True)


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
