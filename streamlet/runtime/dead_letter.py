"""Dead-letter records never fail for their size (docs/architecture.md, "Errors").

:func:`fit` cuts a record down to the producer's ``message.max.bytes``: the
value first, then the key, then the record's own headers, each cut marked
in headers that give the original size::

    streamlet.value.truncated = b"true"     streamlet.value.size = b"5242880"
    streamlet.key.truncated   = b"true"     streamlet.key.size   = b"..."
    streamlet.headers.dropped = b"3"        (the record's own headers, not streamlet's)

:func:`dead_letter_produce` writes them on the worker's producer: a record
the broker still rejects (the dead-letter topic's ``max.message.bytes`` is
lower) is sent once more with its value dropped (empty); any other failure
stops the worker with a :class:`~streamlet.errors.DeliveryError` naming the
dead-letter topic — never a raw ``KafkaException``.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from confluent_kafka import KafkaError, KafkaException

from streamlet.errors import DeliveryError, StreamletError
from streamlet.runtime.produce_errors import RECORD_ERRORS

log = logging.getLogger("streamlet.errors")

VALUE_TRUNCATED, VALUE_SIZE = "streamlet.value.truncated", "streamlet.value.size"
KEY_TRUNCATED, KEY_SIZE = "streamlet.key.truncated", "streamlet.key.size"
HEADERS_DROPPED = "streamlet.headers.dropped"
#: record framing, batch header and header length prefixes, with room to spare
FRAMING = 512
#: the longest ``streamlet.error`` header
MAX_ERROR_BYTES = 8192

Header = tuple[str, bytes]


def _size(headers: list[Header]) -> int:
    return sum(len(name) + len(value or b"") + 10 for name, value in headers)


def fit(key: bytes | None, value: bytes | None, own: list[Header], added: list[Header], limit: int,
        drop_value: bool = False) -> tuple[bytes | None, bytes | None, list[Header]]:
    """``(key, value, headers)`` of a dead-letter record within ``limit`` bytes.

    ``own`` are the record's headers, ``added`` streamlet's (the error...);
    ``drop_value`` empties the value whatever its size."""
    budget = limit - FRAMING
    key_len, value_len = len(key or b""), len(value or b"")
    if not drop_value and key_len + value_len + _size(own) + _size(added) <= budget:
        return key, value, own + added
    marks: list[Header] = []
    if _size(own) + _size(added) > budget // 4:
        marks.append((HEADERS_DROPPED, str(len(own)).encode()))
        own = []
    if key_len > budget // 4:
        marks += [(KEY_TRUNCATED, b"true"), (KEY_SIZE, str(key_len).encode())]
        key = key[: budget // 4]  # type: ignore[index]
    room = budget - len(key or b"") - _size(own) - _size(added) - _size(marks) - 64
    if drop_value or value_len > room:
        marks += [(VALUE_TRUNCATED, b"true"), (VALUE_SIZE, str(value_len).encode())]
        value = b"" if drop_value else (value or b"")[: max(room, 0)]
    return key, value, own + added + marks


def error_header(text: str) -> bytes:
    """The ``streamlet.error`` header: the error's text, at most :data:`MAX_ERROR_BYTES`."""
    data = text.encode("utf-8", "replace")
    return data if len(data) <= MAX_ERROR_BYTES else data[: MAX_ERROR_BYTES - 3] + b"..."


def dead_letter_produce(producer: Any, limit: int,
                        on_fatal: Callable[[StreamletError], None]) -> Callable[..., None]:
    """``produce(topic, value, key, partition, timestamp, headers)`` for dead-letter records (already
    :func:`fit`): waits on a full queue; a rejected record is sent once more with its value dropped;
    a record lost for good is a :class:`DeliveryError` given to ``on_fatal`` (the committer) and raised
    where it can be."""

    def send(topic: str, value: Any, key: Any, partition: int = -1, timestamp: int = 0,
             headers: Any = None, retried: bool = False) -> None:
        def rejected(err: KafkaError) -> None:
            if not retried and err.code() in RECORD_ERRORS:
                log.warning("the dead-letter record for %r was rejected (%s): sent again without its value",
                            topic, err.name())
                send(topic, b"", key, partition, timestamp, _dropped(headers, value), retried=True)
                return
            raise DeliveryError(f"a record could not be written to the dead-letter topic {topic!r}: "
                                f"{err.name()}: {err.str()}; check that the topic exists and accepts "
                                "writes. Input offsets after the last commit were not committed")

        def on_delivery(err: KafkaError | None, msg: Any) -> None:
            if err is not None:
                try:
                    rejected(err)
                except StreamletError as exc:
                    on_fatal(exc)

        while True:
            try:
                producer.produce(topic, value, key, partition, on_delivery=on_delivery, timestamp=timestamp,
                                 headers=headers)
                return
            except BufferError:
                producer.poll(0.05)
            except KafkaException as exc:
                err = exc.args[0] if exc.args else KafkaError(KafkaError._FAIL)
                try:
                    rejected(err)
                except StreamletError as error:
                    on_fatal(error)
                    raise error from exc
                return

    return send


def _dropped(headers: list[Header] | None, value: Any) -> list[Header]:
    """``headers`` for the record sent again with its value dropped (keeping the original size)."""
    headers = list(headers or [])
    size = next((v for n, v in headers if n == VALUE_SIZE), str(len(value or b"")).encode())
    return [h for h in headers if h[0] not in (VALUE_TRUNCATED, VALUE_SIZE)] + [
        (VALUE_TRUNCATED, b"true"), (VALUE_SIZE, size)]
