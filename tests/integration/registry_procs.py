"""Schema registries for the integration tests, chosen by ``--registry embedded|apicurio|all``.

* ``embedded``: the registry that ``streamlet broker --schema-registry`` serves (or, in-process,
  :class:`~streamlet.broker.registry.RegistryServer`);
* ``apicurio``: Apicurio Registry (:mod:`streamlet.testing.apicurio`), an independent registry with
  a Confluent-compatible API, built from Maven Central once per machine. One JVM serves the whole
  session (started by the first test that asks for it); each test gets it with no subjects. When it
  cannot be built or started here, its tests are skipped with the reason.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from streamlet.errors import KafkaBrokerError
from streamlet.testing.apicurio import ApicurioRegistry, ApicurioRegistryError, build_dir
from streamlet.testing.kafka_jars import find_java

#: ``--registry`` choice → the registry kinds the tests run against
REGISTRY_KINDS = {"embedded": ["embedded"], "apicurio": ["apicurio"], "all": ["embedded", "apicurio"]}

_SESSION: ApicurioRegistry | None = None
#: why Apicurio cannot run in this session: its tests are skipped with it rather than trying again
_UNAVAILABLE: KafkaBrokerError | None = None


def prepare_apicurio() -> None:
    """Find Java and build the registry now (before the first test, outside its timeout)."""
    global _UNAVAILABLE
    try:
        find_java()
        build_dir()
    except KafkaBrokerError as exc:  # no Java or Maven, or a failed build (ApicurioRegistryError)
        _UNAVAILABLE = exc


def shared_apicurio(log_dir: Path) -> ApicurioRegistry:
    """The session's registry, emptied of the subjects of earlier tests (started on first use; its log:
    ``log_dir/apicurio.log``). Skips the test when Apicurio cannot be built or started here."""
    global _SESSION, _UNAVAILABLE
    if _UNAVAILABLE is not None:
        pytest.skip(f"Apicurio Registry is not available here: {_UNAVAILABLE}")
    if _SESSION is None or _SESSION.proc is None or _SESSION.proc.poll() is not None:
        if _SESSION is not None:
            _SESSION.stop()  # the JVM died: the test that follows gets a new one
        try:
            _SESSION = ApicurioRegistry(log_path=log_dir / "apicurio.log").start()
        except ApicurioRegistryError as exc:
            _UNAVAILABLE = exc
            pytest.skip(f"Apicurio Registry could not be started: {exc}")
    _SESSION.reset()
    return _SESSION


def stop_shared_apicurio() -> float | None:
    """Stop the session's registry, if one was started; its start time in seconds."""
    global _SESSION
    if _SESSION is None:
        return None
    started = _SESSION.timings.get("total", 0.0)
    _SESSION.stop()
    _SESSION = None
    return started
