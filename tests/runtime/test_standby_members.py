"""The member view of standby placement: what each worker published, who is live."""

from __future__ import annotations

import time

import orjson

from streamlet.runtime.standby_members import MemberView, encode, standby_topic
from streamlet.runtime.standby_placement import WorkerInfo


def test_records_of_other_workers_are_kept_until_their_ttl_or_tombstone() -> None:
    view = MemberView("me", ttl_s=10)
    assert view.apply(b"w1", encode({"0_0"}, {"0_0": 7}), now=100.0)
    assert not view.apply(b"w1", encode({"0_0"}, {"0_0": 7}), now=101.0)  # same content: no change
    assert view.apply(b"w2", encode(set(), {}), now=101.0)
    mine = WorkerInfo(frozenset({"0_1"}))
    assert view.live(mine, now=105.0) == {"w1": WorkerInfo(frozenset({"0_0"}), {"0_0": 7}),
                                          "w2": WorkerInfo(), "me": mine}
    assert view.apply(b"w2", None)  # a clean stop
    assert set(view.live(mine, now=112.0)) == {"me"}  # w1 silent for 11 s: gone


def test_own_old_records_and_unreadable_ones_are_ignored() -> None:
    view = MemberView("me")
    assert not view.apply(b"me", encode({"0_0"}, {}))
    assert not view.apply(b"w1", b"not json")
    assert not view.apply(None, encode(set(), {}))
    ancient = orjson.dumps({"active": ["0_0"], "offsets": {}, "ts": int((time.time() - 3600) * 1000)})
    assert not view.apply(b"w1", ancient)  # a worker long gone, read at start-up
    assert set(view.live(WorkerInfo())) == {"me"}


def test_the_topic_is_named_after_the_application() -> None:
    assert standby_topic("orders-app") == "orders-app-standby-offsets"
