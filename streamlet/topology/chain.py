"""What compiled chains are made of: the forward signature, fan-out, and the two failures a chain
raises (see docs/architecture.md, "Record walk").

Each node of a task is compiled into a ``forward(key, value)`` closure that
calls its children directly: no graph walk, no dispatch and no allocation
per record. Values are not copied where the graph branches: user functions
must not mutate a value they receive in place.
"""

from __future__ import annotations

from typing import Any, Callable

Forward = Callable[[Any, Any], None]
SourceFn = Callable[[Any], None]


class DeserializationFailure(Exception):
    """Raised by a source when the key or value bytes cannot be deserialized."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


class RunFailure(Exception):
    """Raised by a generated run function (``fn.run``) when processing record ``msg`` failed.

    ``stage`` is ``"deserialize"`` or ``"process"``; ``cause`` the original exception.
    """

    def __init__(self, msg: Any, cause: BaseException, stage: str) -> None:
        super().__init__(str(cause))
        self.msg = msg
        self.cause = cause
        self.stage = stage


def fan_out(downs: list[Forward]) -> Forward:
    """One forward that calls every child in order."""
    if not downs:
        return lambda k, v: None
    if len(downs) == 1:
        return downs[0]
    if len(downs) == 2:
        a, b = downs

        def two(k: Any, v: Any) -> None:
            a(k, v)
            b(k, v)

        return two
    children = tuple(downs)

    def many(k: Any, v: Any) -> None:
        for d in children:
            d(k, v)

    return many
