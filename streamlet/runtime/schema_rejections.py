"""Output records the broker rejected for their schema, re-mapped and re-sent once by their value
serde's On-Error Resolve policy (DESIGN §7) before the error policy sees them.

A broker that validates schema ids (Confluent Server with
``confluent.value.schema.validation=true``) answers ``INVALID_RECORD`` for a
record whose id is not valid for its subject — after a ksqlDB CTAS changed the
subject, say. librdkafka reports it for every record of the batch. Each one
whose topic's value serde has the policy (``serde.avro``) is handed to it: it
looks the subject up once (however many records and tasks hit it), re-maps a
generic value to the registry's schema when the change is harmless and the
record is produced again, to the same partition with the same key and
timestamp. The rest, and the ones the policy blocks, go to the error policy
(:meth:`streamlet.runtime.error_policy.ErrorPolicy.rejected`): nothing is
committed past a record that was not delivered.

A re-sent record carries no headers: librdkafka's delivery report does not
return them.
"""

from __future__ import annotations

from typing import Any, Callable

from confluent_kafka import KafkaError

from streamlet.errors import DeliveryError, SchemaRegistryError

Rejected = list[tuple[KafkaError, Any]]


class SchemaRejections:
    """``on_rejected`` for the committer: re-send what the value serdes' policies re-map, pass the
    rest to ``then``."""

    def __init__(self, serdes: dict[str, Any], produce: Callable[..., None],
                 then: Callable[[Rejected], None]) -> None:
        self.serdes, self.produce, self.then = serdes, produce, then
        self.resent = 0

    @classmethod
    def wrap(cls, topology: Any, produce: Callable[..., None], then: Callable[[Rejected], None],
             metrics: Any = None) -> Callable[[Rejected], None]:
        """``then`` itself when no sink's value serde has a schema policy. The policies of the sinks'
        serdes count into ``metrics`` (the worker's)."""
        serdes = {}
        for node in topology.sinks():
            for part in ("key_serde", "value_serde"):
                resolver = getattr(node.params.get(part), "resolver", None)
                if resolver is not None and metrics is not None:
                    resolver.metrics = metrics
            if getattr(node.params.get("value_serde"), "resolver", None) is not None:
                serdes[node.params["topic"]] = node.params["value_serde"]
        return cls(serdes, produce, then) if serdes else then

    def __call__(self, records: Rejected) -> None:
        rest: Rejected = []
        memo: dict[Any, Any] = {}  # one verdict per topic and schema id for the burst
        blocked: SchemaRegistryError | None = None
        for err, msg in records:
            serde = self.serdes.get(msg.topic())
            data = None
            if serde is not None and err.code() == KafkaError.INVALID_RECORD and msg.value() is not None:
                try:
                    data = serde.resolver.rejected(msg.topic(), msg.value(), f"{err.name()}: {err.str()}", memo)
                except SchemaRegistryError as exc:
                    if not exc.record_fault:  # the registry is down: stop, commit nothing past it
                        raise DeliveryError(f"an output record the broker rejected for topic {msg.topic()!r} "
                                            f"could not be re-sent: {exc}") from exc
                    blocked = blocked or exc  # logged and counted by the policy; the error policy blocks it
            if data is None:
                rest.append((err, msg))
                continue
            ts = msg.timestamp()[1]
            self.produce(msg.topic(), data, msg.key(), msg.partition(), ts if ts > 0 else 0, None)
            self.resent += 1
        if not rest:
            return
        try:
            self.then(rest)
        except DeliveryError as exc:
            if blocked is None:
                raise
            raise DeliveryError(f"{exc}. The schema policy (subject {blocked.subject!r}) did not re-send them: "
                                f"{blocked}") from exc
