"""The tools a real Kafka broker needs: ``java``, and a folder of Kafka's jars that Maven builds once.

Maven Central serves Apache Kafka as jars, not as its ``.tgz`` distribution, so the broker's
classpath is put together by the small Maven project ``tools/kafka/pom.xml`` (shipped in this
package as ``kafka_build/``) with ``mvn dependency:copy-dependencies``. The folder is kept
between runs (``~/.m2`` caches the downloads) and Maven is not run again once it is complete:

* default: ``$XDG_CACHE_HOME/streamlet/kafka-<version>/jars`` (``~/.cache/...``), rebuilt when
  the pom changes;
* ``STREAMLET_KAFKA_JARS=DIR`` (or ``jars=`` in code): that folder, used as it is when it holds
  a ``kafka_2.13-*.jar`` (e.g. a Kafka distribution's ``libs/``), else built into.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
import shutil
import subprocess
from importlib import resources
from pathlib import Path
from typing import Iterator

from streamlet.errors import KafkaBrokerError

log = logging.getLogger("streamlet.testing.kafka")

#: environment variable naming the jar folder (overrides the per-user cache)
JARS_ENV = "STREAMLET_KAFKA_JARS"
#: written into a folder that Maven filled completely: the hash of the pom it came from
MARKER = ".streamlet-complete"
#: the oldest Java that runs a Kafka 4 broker
MIN_JAVA = 17

JAVA_HINT = ("install a Java runtime, version 17 or newer (Debian/Ubuntu: `apt-get install "
             "openjdk-17-jre-headless`; macOS: `brew install openjdk@17`), or set JAVA_HOME to one")
MAVEN_HINT = ("install Maven 3.6 or newer (Debian/Ubuntu: `apt-get install maven`; macOS: `brew install "
              f"maven`), or set {JARS_ENV} to a folder that already holds Kafka's jars (e.g. the libs/ "
              "folder of a Kafka distribution)")


def build_file(name: str) -> Path:
    """A file of the Maven project (``pom.xml``, ``log4j2.xml``)."""
    path = Path(str(resources.files("streamlet.testing") / "kafka_build" / name))
    if not path.is_file():
        raise KafkaBrokerError(f"{path} is missing from the streamlet package: reinstall streamlet "
                               f"(it is tools/kafka/{name} of the source tree)")
    return path


def kafka_version() -> str:
    """The Kafka version the pom asks for."""
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", build_file("pom.xml").read_text())
    if not match:
        raise KafkaBrokerError(f"{build_file('pom.xml')} names no <kafka.version>")
    return match.group(1).strip()


def find_java() -> str:
    """The ``java`` command (``$JAVA_HOME/bin/java``, else on PATH), checked to be Java 17+."""
    home = os.environ.get("JAVA_HOME")
    java = os.path.join(home, "bin", "java") if home else shutil.which("java")
    if not java or not os.access(java, os.X_OK):
        where = f"JAVA_HOME={home} has no bin/java" if home else "no `java` on PATH"
        raise KafkaBrokerError(f"a real Kafka broker needs Java: {where}; {JAVA_HINT}")
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise KafkaBrokerError(f"`{java} -version` failed ({exc}); {JAVA_HINT}") from exc
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    major = (int(match.group(2) or 0) if match.group(1) == "1" else int(match.group(1))) if match else 0
    if major < MIN_JAVA:
        raise KafkaBrokerError(f"{java} is Java {major or '(unknown version)'}, Kafka {kafka_version()} "
                               f"needs {MIN_JAVA} or newer; {JAVA_HINT}")
    return java


def find_mvn() -> str:
    mvn = shutil.which("mvn")
    if not mvn:
        raise KafkaBrokerError(f"building the Kafka broker's jars needs Maven: no `mvn` on PATH; "
                               f"{MAVEN_HINT}")
    return mvn


def default_jars_dir() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "streamlet" / f"kafka-{kafka_version()}" / "jars"


def _pom_hash() -> str:
    return hashlib.sha256(build_file("pom.xml").read_bytes()).hexdigest()


def _has_kafka(folder: Path) -> bool:
    return folder.is_dir() and any(folder.glob("kafka_2.13-*.jar"))


def jars_dir(jars: str | os.PathLike[str] | None = None) -> Path:
    """The folder of the broker's jars, built with Maven first if needed (see the module doc)."""
    chosen = jars or os.environ.get(JARS_ENV)
    if chosen:
        folder = Path(chosen).expanduser().resolve()
        if _has_kafka(folder):
            return folder
        if folder.exists() and any(folder.iterdir()):
            source = "jars=" if jars else f"{JARS_ENV}="
            raise KafkaBrokerError(f"{source}{folder} holds files but no kafka_2.13-*.jar: empty it (it is "
                                   "then built with Maven) or point it at a folder of Kafka's jars")
        _build(folder)
        return folder
    folder = default_jars_dir()
    marker = folder / MARKER
    if marker.is_file() and marker.read_text().strip() == _pom_hash():
        return folder
    _build(folder)
    return folder


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (other processes building the same folder wait)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _build(folder: Path) -> None:
    """Fill ``folder`` with Kafka's runtime jars: Maven into a sibling, renamed when complete."""
    digest = _pom_hash()
    with _locked(folder.parent / f".{folder.name}.lock"):
        marker = folder / MARKER
        if marker.is_file() and marker.read_text().strip() == digest:
            return  # another process built it meanwhile
        mvn = find_mvn()
        tmp = folder.parent / f".{folder.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        cmd = [mvn, "-q", "-B", "-f", str(build_file("pom.xml")), "dependency:copy-dependencies",
               "-DincludeScope=runtime", f"-DoutputDirectory={tmp}"]
        log.warning("building the Kafka %s broker's jars with Maven into %s (once; ~/.m2 caches the "
                    "downloads): %s", kafka_version(), folder, " ".join(cmd))
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        except (OSError, subprocess.TimeoutExpired) as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise KafkaBrokerError(f"`{' '.join(cmd)}` failed: {exc}") from exc
        if out.returncode != 0 or not _has_kafka(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
            tail = (out.stdout + out.stderr)[-3000:]
            raise KafkaBrokerError(
                f"`{' '.join(cmd)}` exited {out.returncode} without Kafka's jars (does this machine reach "
                f"Maven Central, https://repo.maven.apache.org?); its output ends:\n{tail}")
        (tmp / MARKER).write_text(digest + "\n")
        if folder.exists():
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
            else:
                shutil.rmtree(folder)  # the default cache of an older pom (chosen folders never get here)
        os.replace(tmp, folder)
