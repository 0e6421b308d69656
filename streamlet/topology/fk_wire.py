"""What a foreign-key join writes to its internal topics and its subscription store (KIP-213).

* A **subscription** ``(hash, instruction, partition, left key bytes)`` goes from the left table's
  task to the right table's, keyed by the foreign key: the hash of the left row it was sent for
  (``None`` for a deleted row), what the right side is to do, and the left partition the answer
  goes back to. The subscription store holds the same tuple under :func:`combined_key`.
* A **response** ``(hash, right value, partition, quiet)`` goes back, keyed by the left key: the
  right row (``None``: no row) and the hash of the left row the subscription was sent for.
  ``quiet``: there is no right row and the left row never joined one since it last changed (the
  answer to an inner join's subscription that Kafka Streams leaves unanswered): it emits nothing,
  but deletes a joined row an earlier, dropped answer should have deleted.

The left side joins a response only if its hash is that of the left row it holds now (a stale or
duplicate response is dropped): :func:`value_hash`.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Any, Callable

from streamlet.serde.base import FunctionSerde
from streamlet.serde.context import VALUE, serializer_for, deserializer_for

#: Kafka Streams' SubscriptionWrapper.Instruction
DELETE_KEY_NO_PROPAGATE = 0  #: unsubscribe, answer nothing (the foreign key changed)
DELETE_KEY_AND_PROPAGATE = 1  #: unsubscribe and answer "no right row" (left row deleted)
PROPAGATE_NULL_IF_NO_FK_VAL_AVAILABLE = 2  #: subscribe; answer with the right row or "none"
PROPAGATE_ONLY_IF_FK_VAL_AVAILABLE = 3  #: subscribe; answer only if the right row exists

_VERSION = 0
_SUB = struct.Struct(">BBiB")  # version, instruction, partition, hash length
_RESP = struct.Struct(">BiBB")  # version, partition, hash length, flags (_HAS_VALUE, _QUIET)
_HAS_VALUE, _QUIET = 1, 2
_LEN = struct.Struct(">I")

Subscription = tuple  # (hash | None, instruction, partition, left key bytes)
Response = tuple  # (hash | None, right value | None, partition, quiet)


def value_hasher(serde: Any, topic: str) -> Callable[[Any], bytes | None]:
    """``hash(value)``: 16 bytes of BLAKE2b over ``value``'s bytes written by ``serde`` (``None``:
    ``None``), as Kafka Streams hashes the left value's serialized bytes (Murmur3 there)."""
    ser = serializer_for(serde, topic, VALUE)
    blake2b = hashlib.blake2b

    def value_hash(value: Any) -> bytes | None:
        if value is None:
            return None
        return blake2b(ser(value, None), digest_size=16).digest()

    return value_hash


def _encode_subscription(s: Subscription) -> bytes:
    h, instruction, partition, key = s
    h = h or b""
    return _SUB.pack(_VERSION, instruction, partition, len(h)) + h + key


def _decode_subscription(data: bytes) -> Subscription:
    version, instruction, partition, n = _SUB.unpack_from(data)
    if version != _VERSION:
        raise ValueError(f"foreign-key join subscription of unknown version {version}")
    start = _SUB.size
    h = data[start:start + n] if n else None
    return (h, instruction, partition, data[start + n:])


def subscription_serde() -> FunctionSerde:
    """The serde of subscriptions (subscription topic values, subscription store values)."""
    return FunctionSerde("fk-subscription", _encode_subscription, _decode_subscription, ("fk-subscription", 0))


def response_serde(right_value_serde: Any, topic: str) -> FunctionSerde:
    """The serde of responses, the right value written by the right table's value serde."""
    ser = serializer_for(right_value_serde, topic, VALUE)
    de = deserializer_for(right_value_serde, topic, VALUE)

    def encode(r: Response) -> bytes:
        h, value, partition, quiet = r
        h = h or b""
        if value is None:
            return _RESP.pack(_VERSION, partition, len(h), _QUIET if quiet else 0) + h
        return _RESP.pack(_VERSION, partition, len(h), _HAS_VALUE) + h + ser(value, None)

    def decode(data: bytes) -> Response:
        version, partition, n, flags = _RESP.unpack_from(data)
        if version != _VERSION:
            raise ValueError(f"foreign-key join response of unknown version {version}")
        start = _RESP.size
        h = data[start:start + n] if n else None
        value = de(data[start + n:], None) if flags & _HAS_VALUE else None
        return (h, value, partition, bool(flags & _QUIET))

    return FunctionSerde("fk-response", encode, decode)


def combined_key(fk: bytes, key: bytes) -> bytes:
    """The subscription store key: the foreign key's length and bytes, then the left key's bytes
    (Kafka Streams' CombinedKeySchema), so the subscriptions of one foreign key are one key range."""
    return _LEN.pack(len(fk)) + fk + key


def prefix_range(fk: bytes) -> tuple[bytes, bytes | None]:
    """``(start, end)``: the store keys of foreign key ``fk`` are ``start <= key < end``."""
    start = _LEN.pack(len(fk)) + fk
    end = start.rstrip(b"\xff")
    if not end:
        return start, None
    return start, end[:-1] + bytes([end[-1] + 1])

