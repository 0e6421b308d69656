"""The Schema Registry side of registry serdes (:mod:`streamlet.serde.avro`): which client, which
subject, and what a registry error means.

The client is confluent-kafka's ``SchemaRegistryClient``:

* ``"mock://NAME"`` — its in-process mock (``SchemaRegistryClient.new_client``).
  One mock per client instance in confluent-kafka; here every serde of this
  process given the same ``mock://`` URL shares one, so that the key and
  value serdes, and a test that registers schemas, see the same registry;
* ``"http://host:port"`` (or a dict of the client's settings: ``url``,
  ``basic.auth.user.info``, ...) — a real registry, or the one
  ``streamlet broker --schema-registry`` serves;
* a client object (anything with ``lookup_schema``, ``register_schema``,
  ``get_schema``, ``get_latest_version``);
* ``None`` — the URL in ``STREAMLET_SCHEMA_REGISTRY_URL``.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Callable, Optional

from confluent_kafka.serialization import MessageField, SerializationContext

from streamlet.errors import (
    ConfigError,
    SchemaNotRegisteredError,
    SchemaRegistryError,
    SchemaRegistryUnavailableError,
    UnknownSchemaIdError,
)

#: the environment variable that names the registry when a serde is given none
ENV_URL = "STREAMLET_SCHEMA_REGISTRY_URL"

#: ``fn(ctx, record_name) -> subject``: confluent-kafka's subject name strategy signature
SubjectNameStrategy = Callable[[Optional[SerializationContext], Optional[str]], Optional[str]]

_MOCKS: dict[str, Any] = {}
_MOCKS_LOCK = threading.Lock()
_CLIENT_METHODS = ("lookup_schema", "register_schema", "get_schema", "get_latest_version")


def registry_client(registry: Any = None) -> tuple[Any, str]:
    """``(client, url)`` for ``registry`` (see the module docstring for what it may be)."""
    if registry is None:
        registry = os.environ.get(ENV_URL)
        if not registry:
            raise ConfigError(f"serde.avro() needs a schema registry: pass registry='http://host:port' "
                              f"(or 'mock://name' for an in-process one), or set {ENV_URL}")
    if all(callable(getattr(registry, m, None)) for m in _CLIENT_METHODS):
        conf = getattr(registry, "config", None)
        url = conf.get("url") if isinstance(conf, dict) else None
        return registry, str(url or type(registry).__name__)
    if isinstance(registry, str):
        conf: dict[str, Any] = {"url": registry}
    elif isinstance(registry, dict):
        conf = dict(registry)
    else:
        raise ConfigError(f"registry must be a URL, a dict of SchemaRegistryClient settings or a client, "
                          f"not {type(registry).__name__}")
    url = str(conf.get("url", ""))
    if not url:
        raise ConfigError("the schema registry settings need a 'url'")
    from confluent_kafka.schema_registry import SchemaRegistryClient

    if url.startswith("mock://"):
        with _MOCKS_LOCK:
            client = _MOCKS.get(url)
            if client is None:
                client = _MOCKS[url] = SchemaRegistryClient.new_client(conf)
        return client, url
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"schema registry URL {url!r} must start with http://, https:// or mock://")
    return SchemaRegistryClient.new_client(conf), url


def forget_mock(url: str) -> None:
    """Drop the shared mock registry of ``url`` (tests start from an empty one)."""
    with _MOCKS_LOCK:
        _MOCKS.pop(url, None)


# -- subjects ---------------------------------------------------------------------------------------
def _topic(ctx: Optional[SerializationContext], record_name: Optional[str]) -> Optional[str]:
    assert ctx is not None
    return f"{ctx.topic}-{MessageField(ctx.field).value}"


def _record(ctx: Optional[SerializationContext], record_name: Optional[str]) -> Optional[str]:
    return record_name


def _topic_record(ctx: Optional[SerializationContext], record_name: Optional[str]) -> Optional[str]:
    assert ctx is not None
    return f"{ctx.topic}-{record_name}"


STRATEGIES: dict[str, SubjectNameStrategy] = {
    "topic": _topic, "record": _record, "topic_record": _topic_record, "topic-record": _topic_record}


def subject_strategy(strategy: str | SubjectNameStrategy) -> tuple[SubjectNameStrategy, bool]:
    """``(fn(ctx, record_name) -> subject, needs a record name)`` for a strategy name (``"topic"``,
    ``"record"``, ``"topic_record"``) or a callable with confluent-kafka's signature."""
    if callable(strategy):
        return strategy, False
    fn = STRATEGIES.get(str(strategy))
    if fn is None:
        raise ConfigError(f"unknown subject name strategy {strategy!r}: use 'topic' (<topic>-key / "
                          "<topic>-value), 'record' (the record's full name), 'topic_record' "
                          "(<topic>-<full name>) or a callable fn(ctx, record_name) -> subject")
    return fn, fn is not _topic


# -- errors -----------------------------------------------------------------------------------------
def _status(exc: BaseException) -> tuple[int, int]:
    return int(getattr(exc, "http_status_code", 0) or 0), int(getattr(exc, "error_code", 0) or 0)


def registry_error(exc: BaseException, what: str, url: str, *, subject: str | None = None,
                   schema_id: int | None = None) -> SchemaRegistryError:
    """The typed error for a failed registry call: unreachable (connection, timeout, 5xx, 408, 429)
    or refused (anything else); ``what`` says what was asked for."""
    status, code = _status(exc)
    detail = f"{type(exc).__name__}: {exc}"
    if status == 0 or status >= 500 or status in (408, 429):
        return SchemaRegistryUnavailableError(
            f"the schema registry at {url} could not be reached while {what} ({detail}); nothing past this "
            "record is committed: check the registry and restart", subject=subject, schema_id=schema_id, url=url)
    return SchemaRegistryError(f"the schema registry at {url} refused {what} ({detail})", subject=subject,
                               schema_id=schema_id, url=url)


def is_not_found(exc: BaseException) -> bool:
    """Whether a confluent-kafka registry error is a 404 (subject, version or schema not found)."""
    return _status(exc)[0] == 404


def not_registered(subject: str, url: str, exc: BaseException | None) -> SchemaNotRegisteredError:
    why = f" ({exc})" if exc is not None else ""
    return SchemaNotRegisteredError(
        f"the schema is not registered under subject {subject!r} in the schema registry at {url}{why}: "
        "register it first (serde.register(topic) or the registry's POST /subjects/<subject>/versions), "
        "or pass auto_register=True to serde.avro()", subject=subject, url=url)


def unknown_id(schema_id: int, url: str, exc: BaseException) -> UnknownSchemaIdError:
    return UnknownSchemaIdError(
        f"schema id {schema_id} is not in the schema registry at {url} ({exc}): the record was written "
        "with another registry, or its schema was deleted", schema_id=schema_id, url=url)
