"""``KStream.split()``: route each record to the first matching branch (Kafka Streams ``BranchedKStream``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from streamlet.errors import TopologyError

if TYPE_CHECKING:
    from streamlet.dsl.stream import KStream


class BranchedStreams:
    """Collects branches; ``default_branch()`` or ``no_default_branch()`` returns them by name."""

    def __init__(self, stream: "KStream", prefix: str) -> None:
        self._stream = stream
        self._prefix = prefix
        topo = stream._app.topology
        self._split = topo.add("split", [stream._node], name=f"{prefix}split" if prefix else None)
        self._branches: dict[str, "KStream"] = {}
        self._closed = False

    def _add(self, predicate: Callable[[Any, Any], bool] | None, name: str | None) -> None:
        from streamlet.dsl.stream import KStream

        if self._closed:
            raise TopologyError("this split() is finished: add branches before default_branch()")
        branch_name = self._prefix + (name if name is not None else str(len(self._branches) + 1))
        if branch_name in self._branches:
            raise TopologyError(f"split() has two branches named {branch_name!r}")
        s = self._stream
        node = s._app.topology.add("branch", [self._split.name], fn=predicate, branch_name=branch_name)
        self._branches[branch_name] = KStream(s._app, node.name, s.key_serde, s.value_serde, s.key_changed)

    def branch(self, predicate: Callable[[Any, Any], bool], name: str | None = None) -> "BranchedStreams":
        """Add a branch for records where ``predicate(key, value)`` is true (and no earlier branch matched)."""
        if not callable(predicate):
            raise TypeError("branch() expects a predicate function (key, value) -> bool")
        self._add(predicate, name)
        return self

    def default_branch(self, name: str | None = None) -> dict[str, "KStream"]:
        """Add a branch for records no predicate matched; returns every branch by name."""
        self._add(None, name if name is not None else "0")
        self._closed = True
        return dict(self._branches)

    def no_default_branch(self) -> dict[str, "KStream"]:
        """Drop records no predicate matched; returns every branch by name."""
        self._closed = True
        return dict(self._branches)
