"""Builds a stream–stream windowed join into the topology (``KStream.join / left_join / outer_join`` with
another KStream and ``sl.JoinWindows``); the processors are :mod:`streamlet.topology.stream_join`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from streamlet.dsl.join_windows import JoinWindows
from streamlet.errors import TopologyError
from streamlet.serde.builtin import bytes_
from streamlet.topology.graph import InternalTopic, StoreSpec

if TYPE_CHECKING:
    from streamlet.dsl.stream import KStream

#: Kafka Streams' windowstore.changelog.additional.retention.ms: a buffer's changelog keeps records
#: this long after the join's retention (it expires by time: the buffers' range deletions are not logged)
CHANGELOG_EXTRA_RETENTION_MS = 86_400_000


def join_streams(left: "KStream", right: "KStream", joiner: Callable[[Any, Any], Any], windows: Any,
                 how: str, name: str | None) -> "KStream":
    """``left`` joined with ``right`` within ``windows`` (``how``: inner, left or outer)."""
    from streamlet.dsl.stream import KStream

    if not isinstance(windows, JoinWindows):
        raise TypeError(f"a stream–stream join needs sl.JoinWindows(before, after, grace) as its third "
                        f"argument, got {windows!r}; e.g. sl.JoinWindows.of(timedelta(minutes=5), grace=0)")
    if right._app is not left._app:
        raise TopologyError("a stream–stream join needs two streams of the same App")
    if not callable(joiner):
        raise TypeError("join() expects a joiner function (left_value, right_value) -> value")
    app = left._app
    topo = app.topology
    base = name or f"KSTREAM-{how.upper()}JOIN-{len(topo.nodes) + 1:04d}"
    # both sides must be partitioned by the join key: a re-keyed side goes through a repartition topic
    if left.key_changed:
        left = left.repartition(name=f"{base}-left")
    if right.key_changed:
        right = right.repartition(name=f"{base}-right")

    def store(suffix: str, config: dict[str, str]) -> str:
        store_name = f"{base}-{suffix}"
        changelog = f"{app.application_id}-{store_name}-changelog"
        topo.add_internal_topic(InternalTopic(changelog, "changelog", config=config))
        topo.add_store(StoreSpec(store_name, "join-window" if suffix != "outer-shared-join-store" else "join-outer",
                                 bytes_(), bytes_(), changelog))
        return store_name

    expiring = {"cleanup.policy": "compact,delete",
                "retention.ms": str(windows.retention + CHANGELOG_EXTRA_RETENTION_MS)}
    left_store = store("this-join-store", expiring)
    right_store = store("other-join-store", expiring)
    outer_store = store("outer-shared-join-store", {}) if how != "inner" else None
    params = dict(join=base, how=how, before=windows.before, after=windows.after, grace=windows.grace,
                  left_store=left_store, right_store=right_store, outer_store=outer_store,
                  key_serde=left.key_serde, left_value_serde=left.value_serde,
                  right_value_serde=right.value_serde)
    this = topo.add("stream_join", [left._node], fn=joiner, name=f"{base}-this-join", side="left",
                    store=left_store, value_serde=left.value_serde, peers=[right._node], **params)
    other = topo.add("stream_join", [right._node], fn=joiner, name=f"{base}-other-join", side="right",
                     store=right_store, value_serde=right.value_serde, peers=[left._node], **params)
    merged = topo.add("stream_join_merge", [this.name, other.name], name=base, store=outer_store, **params)
    return KStream(app, merged.name, left.key_serde, app.default_value_serde)
