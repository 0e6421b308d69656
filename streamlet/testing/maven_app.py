"""Build a small Maven application of the source tree once per machine: its jar and runtime jars.

The Kafka Streams programs under ``tools/`` (the differential test's reference, the benchmark's
side) are built like Kafka's own jars (:mod:`streamlet.testing.kafka_jars`): into
``$XDG_CACHE_HOME/streamlet/<project>-<kafka version>/jars`` under a lock, with a marker holding
the hash of the pom and the Java sources (rebuilt when they change), Maven offline first (``~/.m2``)
and then from Maven Central. The pom takes the build directory as ``-Dapp.build.dir``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any, Callable

from streamlet.errors import KafkaBrokerError
from streamlet.testing.kafka_jars import MARKER, _locked, find_mvn, kafka_version

log = logging.getLogger("streamlet.testing.kafka")


def run_maven(base: list[str], tmp: Path, error: type[KafkaBrokerError]) -> "subprocess.CompletedProcess[str]":
    """Run Maven command ``base`` offline first (what ``~/.m2`` has), then against Maven Central; the
    last run (its return code tells). ``tmp`` is removed when Maven cannot be run at all."""
    out = None
    for cmd in ([*base[:1], "-o", *base[1:]], base):
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        except (OSError, subprocess.TimeoutExpired) as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise error(f"`{' '.join(cmd)}` failed: {exc}") from exc
        if out.returncode == 0:
            break
    assert out is not None
    return out


def stop_process(proc: "subprocess.Popen[Any] | None", timeout: float) -> None:
    """SIGTERM ``proc`` (a JVM), SIGKILL it after ``timeout`` seconds."""
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _digest(project: Path) -> str:
    if not (project / "pom.xml").is_file():
        raise FileNotFoundError(f"{project}/pom.xml is missing: it is built from a source checkout of streamlet")
    h = hashlib.sha256()
    for path in [project / "pom.xml", *sorted((project / "src").rglob("*.java"))]:
        h.update(str(path.relative_to(project)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def cache_dir(name: str) -> Path:
    """``$XDG_CACHE_HOME/streamlet/<name>`` (``~/.cache/streamlet/<name>`` without the variable)."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "streamlet" / name


def cached_build(folder: Path, digest: str, build: Callable[[Path, str], None]) -> Path:
    """``folder`` as built by ``build(folder, digest)``, which must leave a marker file holding ``digest``
    in it; built only when the marker is missing or holds another digest. The build runs under an
    exclusive lock (``.<folder name>.lock`` beside it) and the marker is checked again under the lock:
    processes asking at once build once, the others wait and use it."""
    marker = folder / MARKER
    if marker.is_file() and marker.read_text().strip() == digest:
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with _locked(folder.parent / f".{folder.name}.lock"):
        if not (marker.is_file() and marker.read_text().strip() == digest):  # else built meanwhile
            build(folder, digest)
    return folder


def app_jars(project: Path, what: str, error: type[KafkaBrokerError] = KafkaBrokerError) -> Path:
    """The folder of ``project``'s jar (``<project name>-1.jar``) and its runtime jars, built if missing
    or stale; ``what`` names it in errors, raised as ``error``."""
    folder = cache_dir(f"{project.name}-{kafka_version()}") / "jars"
    try:
        digest = _digest(project)
    except FileNotFoundError as exc:
        raise error(f"the {what} cannot be built: {exc}") from exc
    return cached_build(folder, digest, lambda into, digest: _build(project, into, digest, what, error))


def _build(project: Path, folder: Path, digest: str, what: str, error: type[KafkaBrokerError]) -> None:
    try:
        mvn = find_mvn()
    except KafkaBrokerError as exc:
        raise error(f"the {what} needs Maven: {exc}") from exc
    tmp = folder.parent / f".jars.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    base = [mvn, "-q", "-B", "-f", str(project / "pom.xml"), f"-Dapp.build.dir={tmp / 'build'}",
            "package", "dependency:copy-dependencies", "-DincludeScope=runtime", f"-DoutputDirectory={tmp / 'jars'}"]
    log.warning("building the %s (%s) into %s, once", what, project.name, folder)
    out = run_maven(base, tmp, error)
    jar = tmp / "build" / f"{project.name}-1.jar"
    if out is None or out.returncode != 0 or not jar.is_file():
        shutil.rmtree(tmp, ignore_errors=True)
        text = (out.stdout + out.stderr) if out else ""
        errors = [line for line in text.splitlines() if line.startswith("[ERROR] /")]  # compiler errors
        tail = "\n".join(dict.fromkeys(errors))[:3000] if errors else text[-3000:]
        raise error(f"`{' '.join(base)}` failed (a compile error, or no Maven Central?); its output:\n{tail}")
    shutil.copy2(jar, tmp / "jars" / jar.name)
    (tmp / "jars" / MARKER).write_text(digest + "\n")
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp / "jars", folder)
    shutil.rmtree(tmp, ignore_errors=True)
