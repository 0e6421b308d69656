"""GlobalKTable: a table whose every partition is on every worker (Kafka Streams' ``GlobalKTable``).

It is only a handle: a global table is not part of any sub-topology (it
makes no tasks and joins no consumer group). The runtime loads its whole
topic into a local store before any task processes a record and keeps it
current while the app runs (:mod:`streamlet.runtime.global_stores`); a
stream looks rows up in it with a key selector (``stream.join(global_table,
joiner, key_selector=...)``), with no repartition and no co-partitioning.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamlet.serde.base import Serde

if TYPE_CHECKING:
    from streamlet.topology.builder import TopologyBuilder


class GlobalKTable:
    """A table replicated whole to every worker, for lookups by any key.

        >>> countries = app.global_table("countries")
        >>> orders.join(countries, lambda o, c: {**o, "vat": c["vat"]},
        ...             key_selector=lambda k, o: o["country"]).to("orders-with-vat")
    """

    def __init__(self, app: "TopologyBuilder", store: str, topic: str, key_serde: Serde,
                 value_serde: Serde) -> None:
        self._app = app
        self.topic = topic
        self.key_serde = key_serde
        self.value_serde = value_serde
        #: the store holding its rows (``app.store(name)`` reads it; Kafka Streams' queryableStoreName)
        self.store_name = store

    def __repr__(self) -> str:
        return f"<GlobalKTable {self.topic} store={self.store_name}>"
