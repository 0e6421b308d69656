"""What the DSL needs from the application it builds a topology for.

``streamlet.App`` satisfies :class:`TopologyBuilder`; the DSL (``KStream``,
``KTable``, grouped streams) types its ``app`` with this protocol, so it
depends on the topology layer only, never on the app above it.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from streamlet.topology.graph import Topology


@runtime_checkable
class TopologyBuilder(Protocol):
    """An application under construction: the topology the DSL adds nodes to, and its defaults."""

    application_id: str
    topology: Topology
    #: serdes of keys and values where the DSL is given none
    default_key_serde: Any
    default_value_serde: Any
