"""What the runtime needs from the application it runs.

``streamlet.App`` satisfies :class:`Application`; the runner types its ``app``
with this protocol, so the runtime never depends on the app above it.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from streamlet.config import Config
from streamlet.topology.graph import Topology


@runtime_checkable
class Application(Protocol):
    """An application to run: its settings, its topology, a stop flag and the embedded broker."""

    config: Config
    topology: Topology

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` was called: the run finishes its batch, commits and returns."""
        ...

    def stop(self) -> None:
        """Ask the run to stop (any thread)."""
        ...

    def embedded_broker(self) -> Any:
        """The in-process embedded broker (``brokers="embedded"``), started on first use."""
        ...
