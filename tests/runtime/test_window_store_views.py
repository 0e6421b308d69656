"""Interactive queries of session and sliding stores: by key and time range, reading only the
segments of the store that can hold the answer."""

from __future__ import annotations

from typing import Any

import pytest

import streamlet as sl
from streamlet.state.caching import CachingStore
from streamlet.testing import TestDriver
from streamlet.topology.join_buffer import segment_interval
from streamlet.topology.window_segments import ROW, split_row_key

MINUTE = 60_000


def test_the_store_views_read_only_the_segments_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    app = sl.App("views")
    grouped = app.stream("in").group_by_key()
    grouped.windowed_by(sl.Session(1_000, grace=0, retention=10 * MINUTE)).count(name="s")
    grouped.windowed_by(sl.Sliding(1_000, grace=0, retention=10 * MINUTE)).count(name="l")
    with TestDriver(app) as d:
        for ts in (0, 500, 5 * MINUTE, 5 * MINUTE + 200, 9 * MINUTE):
            d.send("in", "a", 1, timestamp=ts)
        d.send("in", "b", 1, timestamp=9 * MINUTE)
        sessions, sliding = d.store("s"), d.store("l")
        peeked: list[bytes] = []
        real_peek = CachingStore.peek

        def peek(self: CachingStore, key: bytes) -> Any:
            peeked.append(key)
            return real_peek(self, key)

        monkeypatch.setattr(CachingStore, "peek", peek)
        assert sessions.fetch("a") == [(sl.Windowed("a", 0, 500), 2), (sl.Windowed("a", 300_000, 300_200), 2),
                                       (sl.Windowed("a", 540_000, 540_000), 1)]
        peeked.clear()
        # sessions ending at 5 min or later and starting by 6 min: the segments of 5 to 9 min only
        assert sessions.fetch("a", 5 * MINUTE, 6 * MINUTE) == [(sl.Windowed("a", 300_000, 300_200), 2)]
        interval = segment_interval(10 * MINUTE)
        assert [split_row_key(k)[0] for k in peeked if k.startswith(ROW)] == list(
            range(5 * MINUTE // interval, 9 * MINUTE // interval + 1))
        assert sessions[sl.Windowed("a", 300_000, 300_200)] == 2
        peeked.clear()
        assert sliding.fetch("a", 4 * MINUTE, 5 * MINUTE) == [(sl.Windowed("a", 299_000, 300_000), 1),
                                                              (sl.Windowed("a", 299_200, 300_200), 2)]
        assert [split_row_key(k)[0] for k in peeked if k.startswith(ROW)] == list(
            range(4 * MINUTE // interval, 5 * MINUTE // interval + 1))
        assert sliding[sl.Windowed("a", 300_001, 301_001)] == 1
        assert sliding.fetch("b") == [(sl.Windowed("b", 539_000, 540_000), 1)]
        with pytest.raises(KeyError):
            sessions[sl.Windowed("a", 0, 499)]
