"""The Kafka Streams side of ``stateless``, ``stateful``, ``join``, ``window`` and ``table-join`` (``--broker kafka``).

``tools/kstreams-bench/`` is a Maven project with one Java application
(``dev.streamlet.bench.KStreamsBench``) doing each case's work with Kafka
Streams 4.4: one stream thread, at-least-once, streamlet's commit interval,
default caching, a fresh application id per run, the input read from the
earliest offset. It is built once into ``$XDG_CACHE_HOME/streamlet/
kstreams-bench-<version>/jars`` (the application's jar and its runtime
jars; rebuilt when the pom or the Java source changes; ``~/.m2`` caches the
downloads), with the helpers of :mod:`streamlet.testing.kafka_jars`.

The measured span is the application's own (it prints one JSON line): from
the first records fetched by its main consumer (or a store restore starting,
or the client reaching RUNNING, whichever comes first) until the expected
outputs are acknowledged by the broker (``stateless``, ``join``: a producer
interceptor counts them) or, for ``stateful``, ``window`` and ``table-join``,
until a commit covering every input offset has completed (the last input
record asks for that commit, as streamlet's side commits right after its
last batch; ``table-join``'s source tables count the records they read and
a wall-clock punctuation asks for the commit once all were read).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.harness import ROOT, BenchError, SideResult

PROJECT = Path(ROOT) / "tools" / "kstreams-bench"
MAIN = "dev.streamlet.bench.KStreamsBench"


def jars_dir() -> Path:
    """The folder of the application's jar and its dependencies, built with Maven if missing or stale."""
    from streamlet.errors import KafkaBrokerError
    from streamlet.testing.maven_app import app_jars

    try:
        return app_jars(PROJECT, "Kafka Streams side of the benchmarks")
    except KafkaBrokerError as exc:
        raise BenchError(str(exc)) from None


def check_tools() -> None:
    """Fail early, with the fix, when java or (for a first build) mvn is missing."""
    from streamlet.errors import KafkaBrokerError
    from streamlet.testing.kafka_jars import find_java

    try:
        find_java()
    except KafkaBrokerError as exc:
        raise BenchError(str(exc)) from None
    jars_dir()


def run_kstreams(case: str, p: dict[str, Any], timeout: float = 600.0) -> SideResult:
    """One run of the Kafka Streams application for ``case`` with the side params ``p``."""
    from streamlet.config import Config
    from streamlet.testing.kafka_jars import find_java

    state = tempfile.mkdtemp(prefix=f"bench-kstreams-{case}-")
    args = {"case": case, "bootstrap": p["bootstrap"], "input": p["input"], "output": p.get("output", ""),
            "users": p.get("users", ""), "records": p["records"], "expected": p.get("expected", p["records"]),
            "threshold": p.get("threshold", 0), "app": p["group"], "state": state,
            "commit_ms": Config("bench").commit_interval_ms, "timeout_s": int(timeout),
            "window_ms": p.get("window_ms", 0), "emit_interval_ms": p.get("emit_interval_ms", ""),
            "left": p.get("left", ""), "right": p.get("right", "")}
    cmd = [find_java(), "-Xmx1g", "-XX:+UseG1GC", "-cp", f"{jars_dir()}{os.sep}*", MAIN,
           *(f"{k}={v}" for k, v in args.items())]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 60, cwd=ROOT)
    finally:
        shutil.rmtree(state, ignore_errors=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise BenchError(f"Kafka Streams side of {case} failed (exit {proc.returncode}):\n"
                         f"{proc.stderr[-3000:]}")
    out = json.loads(lines[-1])
    return SideResult("kafka_streams", out.pop("records"), out.pop("seconds"), out.pop("peak_rss_mb", 0.0),
                      out)
