"""What every windowed aggregation step (time, session, sliding) takes from its node and task."""

from __future__ import annotations

from typing import Any

from streamlet.errors import TopologyError
from streamlet.topology.aggregate import key_bytes_of
from streamlet.topology.chain import fan_out
from streamlet.topology.origin import InputSequence
from streamlet.topology.replay import replay_marks
from streamlet.topology.stateful import needs_old


class WindowStep:
    """The parts of a windowed aggregation step common to every window kind.

    ``down`` is None when nothing follows; ``want_old`` only with emit changes; ``seen`` / ``row_of``
    are the replay marks of :mod:`streamlet.topology.replay`.
    """

    def __init__(self, node: Any, ctx: Any, downs: list[Any], comp: Any) -> None:
        if len(comp.sources_of(node.name)) > 1:
            raise TopologyError(f"windowed aggregation {node.name!r} reads several topics: repartition the "
                                "merged stream first (.repartition())")
        self.name = node.name
        self.spec, self.windows = node.params["spec"], node.params["windows"]
        self.store = ctx.stores[node.params["store"]]
        self.get, self.put = self.store.get, self.store.put
        spec = self.spec
        self.initial, self.add, self.check = spec.initial, spec.add, spec.check_serializable
        self.present = spec.result or (lambda agg: agg)
        self.key_bytes = key_bytes_of(node, ctx, comp)
        self.kde = comp.topology.stores[node.params["store"]].key_serde.deserialize
        self.final = node.params["emit_final"]
        self.want_old = needs_old(comp, node.name) and not self.final
        self.down = fan_out(downs) if downs else None
        self.sequence = InputSequence()
        self.repartitioned = comp.reads_repartition(node.name)
        self.seen, self.row_of = replay_marks(self.repartitioned)
