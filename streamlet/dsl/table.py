"""KTable: the latest value per key, as a changelog of updates (Kafka Streams' ``KTable``).

Table processors pass *changes* downstream: ``(key, (new_value, old_value))``.
A ``None`` new value is a deletion (tombstone).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from streamlet.errors import TopologyError
from streamlet.serde.base import Serde

if TYPE_CHECKING:
    from streamlet.topology.builder import TopologyBuilder
    from streamlet.dsl.grouped import KGroupedTable
    from streamlet.dsl.stream import KStream


class KTable:
    """A table: one current value per key, updated by each record of its changelog.

        >>> users = app.table("users")                       # store "users"
        >>> adults = users.filter(lambda k, v: v["age"] >= 18)
        >>> adults.to_stream().to("adult-users")
    """

    def __init__(self, app: "TopologyBuilder", node: str, key_serde: Serde, value_serde: Serde,
                 store: str | None = None) -> None:
        self._app = app
        self._node = node
        self.key_serde = key_serde
        self.value_serde = value_serde
        #: the store holding this table's rows, when it is materialized
        self.store_name = store

    def _then(self, kind: str, fn: Any, name: str | None, value_serde: Serde | None = None,
              **params: Any) -> "KTable":
        if not callable(fn):
            raise TypeError(f"{kind}() expects a function, got {type(fn).__name__}")
        node = self._app.topology.add(kind, [self._node], fn=fn, name=name, **params)
        return KTable(self._app, node.name, self.key_serde, value_serde or self.value_serde)

    def filter(self, predicate: Callable[[Any, Any], bool], name: str | None = None) -> "KTable":
        """Rows for which ``predicate(key, value)`` holds; a row that stops matching is deleted downstream."""
        return self._then("table_filter", predicate, name)

    def filter_not(self, predicate: Callable[[Any, Any], bool], name: str | None = None) -> "KTable":
        return self._then("table_filter", predicate, name, negate=True)

    def map_values(self, fn: Callable[[Any], Any], name: str | None = None,
                   value_serde: Serde | None = None) -> "KTable":
        """Each row's value through ``fn(value)``; the key stays."""
        return self._then("table_map_values", fn, name, value_serde)

    def to_stream(self, name: str | None = None) -> "KStream":
        """Every change of this table as an event (ksqlDB ``EMIT CHANGES``); deletions are ``None`` values."""
        from streamlet.dsl.stream import KStream

        node = self._app.topology.add("to_stream", [self._node], name=name)
        return KStream(self._app, node.name, self.key_serde, self.value_serde)

    def to(self, topic: str, key_serde: Serde | None = None, value_serde: Serde | None = None,
           name: str | None = None) -> None:
        """Write every change to ``topic`` (``to_stream().to(topic)``)."""
        self.to_stream().to(topic, key_serde=key_serde, value_serde=value_serde, name=name)

    def group_by(self, fn: Callable[[Any, Any], Any], key_serde: Serde | None = None,
                 name: str | None = None) -> "KGroupedTable":
        """Re-key rows by ``fn(key, value)`` for an aggregation; a row that changes group is
        subtracted from its old group and added to the new one."""
        from streamlet.dsl.grouped import KGroupedTable

        if not callable(fn):
            raise TypeError("group_by() expects a function (key, value) -> new key")
        node = self._app.topology.add("table_group_by", [self._node], fn=fn, name=name)
        return KGroupedTable(self._app, node.name, key_serde or self.key_serde, self.value_serde)

    def _join(self, other: "KTable", joiner: Callable[[Any, Any], Any], how: str, name: str | None) -> "KTable":
        if not isinstance(other, KTable):
            raise TypeError(f"{how} join of a table needs another KTable, got {type(other).__name__}; "
                            "to join a stream with a table: stream.join(table, joiner)")
        if other._app is not self._app:
            raise TopologyError("a table–table join needs two tables of the same App")
        if not callable(joiner):
            raise TypeError("join() expects a joiner function (left_value, right_value) -> value")
        topo = self._app.topology
        base = name or f"{how}-join-{len(topo.nodes)}"
        params = {"how": how}
        left = topo.add("table_join", [self._node], fn=joiner, name=f"{base}-left", other=other._node,
                        side="left", peers=[other._node], **params)
        right = topo.add("table_join", [other._node], fn=joiner, name=f"{base}-right", other=self._node,
                         side="right", peers=[self._node], **params)
        merged = topo.add("table_join_merge", [left.name, right.name], fn=joiner, name=name or base,
                          left=self._node, right=other._node, **params)
        return KTable(self._app, merged.name, self.key_serde, self._app.default_value_serde)

    def _fk_join(self, other: "KTable", joiner: Callable[[Any, Any], Any], foreign_key: Callable[[Any], Any],
                 how: str, name: str | None) -> "KTable":
        from streamlet.dsl.fk_join import foreign_key_join

        if not isinstance(other, KTable):
            raise TypeError(f"a foreign-key join needs another KTable, got {type(other).__name__}")
        if other._app is not self._app:
            raise TopologyError("a table–table join needs two tables of the same App")
        if not callable(joiner):
            raise TypeError("join() expects a joiner function (left_value, right_value) -> value")
        return foreign_key_join(self, other, joiner, foreign_key, how, name)

    def join(self, other: "KTable", joiner: Callable[[Any, Any], Any], name: str | None = None,
             foreign_key: Callable[[Any], Any] | None = None) -> "KTable":
        """Inner table–table join, re-evaluated when either side changes: ``joiner(left, right)`` while
        both tables hold the key; a row deleted on either side deletes the result (a tombstone).

            >>> users.join(accounts, lambda u, a: {**u, "plan": a["plan"]}).to("user-plans")

        With ``foreign_key=fn`` (and a ``name=``, required), a foreign-key join (Kafka Streams'
        KIP-213): each left row is joined with the other table's row whose key is ``fn(left_value)``,
        kept up to date when either row changes; the result is keyed by the left key::

            >>> orders.join(customers, lambda o, c: {**o, "tier": c["tier"]},
            ...             foreign_key=lambda o: o["customer"], name="order-customers")
        """
        if foreign_key is not None:
            return self._fk_join(other, joiner, foreign_key, "inner", name)
        return self._join(other, joiner, "inner", name)

    def left_join(self, other: "KTable", joiner: Callable[[Any, Any], Any], name: str | None = None,
                  foreign_key: Callable[[Any], Any] | None = None) -> "KTable":
        """Every row of this table joined with the other's row for its key, ``None`` when it has none:
        ``joiner(left, right_or_None)``; a change on the other side re-emits the left row.
        ``foreign_key=fn`` (with ``name=``): the other's row whose key is ``fn(left_value)``, as
        :meth:`join` — a left row without a foreign key or without a matching row is
        ``joiner(left, None)``."""
        if foreign_key is not None:
            return self._fk_join(other, joiner, foreign_key, "left", name)
        return self._join(other, joiner, "left", name)

    def outer_join(self, other: "KTable", joiner: Callable[[Any, Any], Any], name: str | None = None) -> "KTable":
        """Rows of either table: ``joiner(left_or_None, right_or_None)`` while either holds the key."""
        return self._join(other, joiner, "outer", name)

    def __repr__(self) -> str:
        return f"<KTable {self._node} store={self.store_name}>"
