"""Apicurio Registry for tests: an independent Schema Registry with a Confluent-compatible API.

    from streamlet.testing.apicurio import ApicurioRegistry

    with ApicurioRegistry() as registry:                # seconds: start one per test session
        serde = sl.serde.avro(SCHEMA, registry=registry.url)   # http://127.0.0.1:PORT/apis/ccompat/v7
        ...
        registry.reset()                                # every subject gone, for the next test

Maven Central has no runnable Apicurio: its registry application module is a Quarkus application
whose last build step (augmentation) is left to whoever packages it. The Maven project
``tools/apicurio`` (a source checkout: it is not shipped in the package) depends on that module and
runs the Quarkus build over it. :func:`build_dir` does so once per machine, like the Kafka broker's
jars (:mod:`streamlet.testing.kafka_jars`): into ``$XDG_CACHE_HOME/streamlet/apicurio-<version>``
under a lock, with a marker holding the hash of the pom and the Java sources (rebuilt when they
change), Maven offline first (``~/.m2``) and then from Maven Central. It needs Java 17+ and Maven.

The registry keeps its data in memory (an in-memory H2 database), listens on a free loopback port,
and logs to a file (``log_path``).
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from streamlet.errors import KafkaBrokerError
from streamlet.testing.kafka import free_port, log_tail
from streamlet.testing.kafka_jars import MARKER, find_java
from streamlet.testing.maven_app import _digest, cache_dir, cached_build, run_maven, stop_process

__all__ = ["ApicurioRegistry", "ApicurioRegistryError", "build_dir", "apicurio_version", "CCOMPAT_PATH"]

log = logging.getLogger("streamlet.testing.apicurio")

#: the Maven project that assembles the registry
PROJECT = Path(__file__).resolve().parents[2] / "tools" / "apicurio"
#: the Confluent-compatible API (Confluent Schema Registry's REST API, v7) under the registry's root
CCOMPAT_PATH = "/apis/ccompat/v7"
RUNNER = "apicurio-registry-runner-1-runner.jar"


class ApicurioRegistryError(KafkaBrokerError):
    """Apicurio Registry could not be built, started or used (no Java, no Maven, a failed start)."""


def apicurio_version() -> str:
    """The Apicurio Registry version the pom asks for."""
    try:
        text = (PROJECT / "pom.xml").read_text()
    except OSError as exc:
        raise ApicurioRegistryError(f"{PROJECT}/pom.xml is missing: Apicurio Registry is built from a source "
                                    f"checkout of streamlet ({exc})") from exc
    match = re.search(r"<apicurio\.version>([^<]+)</apicurio\.version>", text)
    if not match:
        raise ApicurioRegistryError(f"{PROJECT}/pom.xml names no <apicurio.version>")
    return match.group(1).strip()


def build_dir() -> Path:
    """The folder of the runnable registry (its runner jar and ``lib/``), built with Maven when missing
    or stale (see the module doc)."""
    folder = cache_dir(f"apicurio-{apicurio_version()}")
    try:
        digest = _digest(PROJECT)
    except FileNotFoundError as exc:
        raise ApicurioRegistryError(f"Apicurio Registry cannot be built: {exc}") from exc
    return cached_build(folder, digest, _build)


def _build(folder: Path, digest: str) -> None:
    mvn = shutil.which("mvn")
    if not mvn:
        raise ApicurioRegistryError("building Apicurio Registry needs Maven: no `mvn` on PATH; install Maven "
                                    "3.6 or newer (Debian/Ubuntu: `apt-get install maven`; macOS: `brew "
                                    "install maven`)")
    tmp = folder.parent / f".{folder.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    base = [mvn, "-q", "-B", "-f", str(PROJECT / "pom.xml"), f"-Dapp.build.dir={tmp}", "package"]
    log.warning("building Apicurio Registry %s (Quarkus build over its Maven Central jars) into %s, once",
                apicurio_version(), folder)
    out = run_maven(base, tmp, ApicurioRegistryError)
    if out is None or out.returncode != 0 or not (tmp / RUNNER).is_file():
        shutil.rmtree(tmp, ignore_errors=True)
        tail = ((out.stdout + out.stderr) if out else "")[-3000:]
        raise ApicurioRegistryError(f"`{' '.join(base)}` failed (no Maven Central?); its output "
                                    f"ends:\n{tail}")
    for name in os.listdir(tmp):  # keep the runnable part: the runner jar and lib/
        if name in (RUNNER, "lib"):
            continue
        if (tmp / name).is_dir():
            shutil.rmtree(tmp / name, ignore_errors=True)
        else:
            (tmp / name).unlink()
    (tmp / MARKER).write_text(digest + "\n")
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)


class ApicurioRegistry:
    """One Apicurio Registry (in-memory storage) on loopback; a context manager.

    ``log_path``: where it logs (default: in its temporary directory, removed at stop); ``heap``:
    the JVM's maximum heap; ``start_timeout``: seconds to wait for it to answer.
    """

    def __init__(self, *, heap: str = "512m", log_path: str | os.PathLike[str] | None = None,
                 start_timeout: float = 120.0) -> None:
        self.heap = heap
        self.start_timeout = start_timeout
        self._log_path = Path(log_path) if log_path else None
        self.dir: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        #: seconds spent in each step of the last :meth:`start` (build, jvm) and in all
        self.timings: dict[str, float] = {}

    @property
    def root(self) -> str:
        """``http://127.0.0.1:PORT``: the registry's root (its own APIs, ``/health``)."""
        if not self.port:
            raise ApicurioRegistryError("Apicurio Registry is not started: call start() or use "
                                        "`with ApicurioRegistry()`")
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The Confluent-compatible API: the URL to give confluent-kafka's SchemaRegistryClient."""
        return self.root + CCOMPAT_PATH

    @property
    def log_path(self) -> Path:
        if self._log_path is None and self.dir is None:
            raise ApicurioRegistryError("Apicurio Registry has no log: it is not started; pass log_path= "
                                        "to keep one")
        return self._log_path or self.dir / "apicurio.log"  # type: ignore[operator]

    def start(self) -> "ApicurioRegistry":
        """Build the registry if needed, start its JVM and wait until its Confluent API answers."""
        if self.proc is not None and self.proc.poll() is None:
            raise ApicurioRegistryError(f"this Apicurio Registry is already running at {self.root}")
        began = time.monotonic()
        java = find_java()
        folder = build_dir()
        self.timings = {"build": time.monotonic() - began}
        self.dir = Path(tempfile.mkdtemp(prefix="streamlet-apicurio-"))
        if self._log_path:
            self._log_path.parent.mkdir(parents=True, exist_ok=True)
        atexit.register(self.stop)
        try:
            for attempt in range(3):
                if self._start_once(java, folder, last=attempt == 2):
                    break
        except BaseException:
            self.stop()
            raise
        self.timings["total"] = time.monotonic() - began
        return self

    def _start_once(self, java: str, folder: Path, last: bool) -> bool:
        """One try on a fresh port; False if the port was taken meanwhile (and not ``last``)."""
        assert self.dir is not None
        self.port = free_port()
        t = time.monotonic()
        out = open(self.log_path, "ab")
        env = {**os.environ, "HTTP_PORT": str(self.port), "REGISTRY_LOG_LEVEL": "WARN"}
        self.proc = subprocess.Popen(
            [java, f"-Xmx{self.heap}", "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true",
             "-Dquarkus.http.host=127.0.0.1", f"-Dquarkus.http.port={self.port}",
             "-jar", str(folder / RUNNER)],
            cwd=self.dir, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        out.close()
        try:
            self._wait_ready(time.monotonic() + self.start_timeout)
        except ApicurioRegistryError:
            if not last and self.proc.poll() is not None and "in use" in log_tail(self.log_path, 20000):
                return False
            raise
        self.timings["jvm"] = time.monotonic() - t
        return True

    def _wait_ready(self, deadline: float) -> None:
        assert self.proc is not None
        while True:
            if self.proc.poll() is not None:
                exited = f"the registry's JVM exited ({self.proc.returncode})"
                raise ApicurioRegistryError(self._failure(exited))
            try:
                if self.request("GET", "/subjects") == []:
                    return
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise ApicurioRegistryError(self._failure(f"the registry did not answer within "
                                                          f"{self.start_timeout:.0f} s"))
            time.sleep(0.2)

    def _failure(self, what: str) -> str:
        return f"{what} (Apicurio Registry {apicurio_version()}); its log ends:\n{log_tail(self.log_path)}"

    # -- use -----------------------------------------------------------------------------

    def request(self, method: str, path: str, body: object = None, timeout: float = 10.0) -> object:
        """One call to the Confluent-compatible API (``path`` under :attr:`url`); its JSON answer.

        Raises ``urllib.error.HTTPError`` for an error status, ``OSError`` if it cannot be reached.
        """
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/vnd.schemaregistry.v1+json"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read() or b"null")

    def reset(self) -> None:
        """Delete every artifact (subject) for good, with its versions and compatibility level, and the
        global rules. Through Apicurio's own API: the Confluent API's delete only disables versions
        (an id stays taken, a level stays set)."""
        native = self.root + "/apis/registry/v2"
        while True:
            found = self._call("GET", native + "/search/artifacts?limit=500")
            assert isinstance(found, dict)
            artifacts = found.get("artifacts") or []
            if not artifacts:
                break
            for a in artifacts:
                group = urllib.parse.quote(a.get("groupId") or "default", safe="")
                artifact = urllib.parse.quote(a["id"], safe="")
                self._call("DELETE", f"{native}/groups/{group}/artifacts/{artifact}")
        self._call("DELETE", native + "/admin/rules")

    def _call(self, method: str, url: str) -> object:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=10) as resp:
            return json.loads(resp.read() or b"null")

    # -- stop ----------------------------------------------------------------------------

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the JVM (SIGTERM; SIGKILL after ``timeout``) and remove its directory."""
        atexit.unregister(self.stop)
        stop_process(self.proc, timeout)
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
        self.port = 0

    def __enter__(self) -> "ApicurioRegistry":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
