"""The settings of the On-Error Resolve producer policy of ``serde.avro`` (DESIGN §7,
docs/avro-and-schema-registry.md).

    >>> import streamlet as sl
    >>> policy = sl.serde.SchemaPolicy(schema_check="lenient", topic_patterns=["orders-*"])
    >>> serde = sl.serde.avro(ORDER, registry="http://sr:8081", schema_policy=policy)  # doctest: +SKIP

In the normal path the producer never asks the registry anything once a
schema id is cached. Only a failed send is looked at: it is classified as
``schema.conflict``, ``sr.unreachable`` or ``data.invalid``, and the parts
switched on here decide what follows. The parts can be switched on one by
one, in the order users roll them out:

1. observe only (``follow=False``): classify, log and count; the record is
   blocked as before;
2. resolve and follow (``follow=True``): one lookup of the subject's latest
   schema; a generic value follows a harmless change and is re-sent;
3. the circuit breaker (``breaker=CircuitBreaker(...)``) and the one-re-send
   limit (``max_resends=1``).
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from streamlet.errors import ConfigError

#: ``fn(topic, field, record_name) -> subject``: where the policy looks the schema up
SubjectResolver = Callable[[str, str, Optional[str]], str]

CHECKS = ("strict", "lenient")


@dataclass(frozen=True)
class Backoff:
    """How a ``lenient`` policy waits for an unreachable registry: ``initial`` seconds, doubling up
    to ``maximum``; after ``give_up_after`` seconds the record is blocked. Keep ``give_up_after``
    well below the consumer's ``max.poll.interval.ms`` (300 s): the task waits in the record loop."""

    initial: float = 0.2
    maximum: float = 5.0
    give_up_after: float = 60.0

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum or self.give_up_after <= 0:
            raise ConfigError(f"schema_lookup_backoff needs 0 < initial <= maximum and give_up_after > 0, got "
                              f"{self}")

    def delays(self) -> Any:
        """The waits before each retry, until ``give_up_after`` is spent."""
        spent, delay = 0.0, self.initial
        while spent + delay <= self.give_up_after:
            yield delay
            spent += delay
            delay = min(delay * 2, self.maximum)


@dataclass(frozen=True)
class CircuitBreaker:
    """Per topic x subject: ``threshold`` conflicts within ``window`` seconds open the circuit; while
    open, sends to that topic's subject are rejected fast (:class:`~streamlet.errors.SchemaCircuitOpenError`,
    through ``on_error``) for ``cooldown`` seconds; then one send tries the registry again. A
    restarted worker starts closed."""

    threshold: int = 3
    window: float = 60.0
    cooldown: float = 30.0

    def __post_init__(self) -> None:
        if self.threshold < 1 or self.window <= 0 or self.cooldown <= 0:
            raise ConfigError(f"CircuitBreaker needs threshold >= 1, window > 0 and cooldown > 0, got {self}")


@dataclass(frozen=True)
class SchemaPolicy:
    """What a producer does when a send fails for its schema (the On-Error Resolve policy).

    ``resolve_schema_on_error_only`` (default): the registry is asked only after
    a failed send. ``resolve_schema_at_produce``: every send asks for the
    subject's latest schema (through the registry client's latest-version
    cache: ``latest.cache.ttl.secs``) and follows a harmless change at once;
    setting both is a start-up error.

    ``schema_check``: what an unreachable registry does — ``"strict"`` blocks
    at once, ``"lenient"`` holds the record and retries the lookup with
    ``schema_lookup_backoff``, then re-sends once with a mapping verified
    against the registry. ``subject_resolver(topic, field, record_name)``: the
    subject to look up (default: the serde's subject name strategy).
    ``topic_patterns``: globs or ``re.Pattern``\\ s of the topics the policy
    applies to (default: all); other topics block every failure as before.
    """

    resolve_schema_on_error_only: bool = True
    resolve_schema_at_produce: bool = False
    schema_check: str = "strict"
    subject_resolver: Optional[SubjectResolver] = None
    schema_lookup_backoff: Backoff = field(default_factory=Backoff)
    topic_patterns: Optional[tuple[Any, ...]] = None
    #: look the subject up and follow a harmless change (False: observe only)
    follow: bool = True
    #: re-sends of one failed record (0: follow for the next records, block this one)
    max_resends: int = 1
    breaker: Optional[CircuitBreaker] = field(default_factory=CircuitBreaker)

    def __post_init__(self) -> None:
        if self.resolve_schema_on_error_only and self.resolve_schema_at_produce:
            raise ConfigError("SchemaPolicy: resolve_schema_on_error_only and resolve_schema_at_produce are "
                              "exclusive: pass resolve_schema_on_error_only=False with "
                              "resolve_schema_at_produce=True")
        if self.schema_check not in CHECKS:
            raise ConfigError(f"SchemaPolicy: schema_check must be 'strict' or 'lenient', not "
                              f"{self.schema_check!r}")
        if self.subject_resolver is not None and not callable(self.subject_resolver):
            raise ConfigError("SchemaPolicy: subject_resolver must be a callable (topic, field, record_name) "
                              "-> subject")
        if not isinstance(self.schema_lookup_backoff, Backoff):
            raise ConfigError("SchemaPolicy: schema_lookup_backoff must be a Backoff(initial=, maximum=, "
                              "give_up_after=)")
        if isinstance(self.max_resends, bool) or not isinstance(self.max_resends, int) or self.max_resends < 0:
            raise ConfigError(f"SchemaPolicy: max_resends must be an int >= 0, not {self.max_resends!r}")
        if self.topic_patterns is not None:
            patterns = (self.topic_patterns,) if isinstance(self.topic_patterns, (str, re.Pattern)) \
                else tuple(self.topic_patterns)
            for p in patterns:
                if not isinstance(p, (str, re.Pattern)):
                    raise ConfigError(f"SchemaPolicy: topic_patterns are globs or re.Pattern, not {p!r}")
            object.__setattr__(self, "topic_patterns", patterns)

    def applies_to(self, topic: str) -> bool:
        """Whether the policy covers ``topic`` (``topic_patterns``)."""
        if self.topic_patterns is None:
            return True
        return any(p.fullmatch(topic) if isinstance(p, re.Pattern) else fnmatch.fnmatchcase(topic, p)
                   for p in self.topic_patterns)


#: observe only: classify, log and count, never look up or re-send (the first rollout step)
OBSERVE_ONLY = SchemaPolicy(follow=False, max_resends=0, breaker=None)
