"""Stores opened ahead: a restarted worker's existing stores, opened while it joins the group."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from streamlet.state import StateDirectory


def _wait_opened(d: StateDirectory, n: int) -> None:
    deadline = time.monotonic() + 30
    while d.preopened._thread is not None and d.preopened._thread.is_alive():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert len(d.preopened._stores) == n


def test_existing_stores_are_opened_ahead_and_the_unassigned_ones_closed(tmp_path: Path) -> None:
    first = StateDirectory(tmp_path, "app")
    for p in range(3):
        s = first.open_store(p, "counts")
        s.write({b"k": b"%d" % p}, {"app-counts-changelog": p})
        s.close()
    d = StateDirectory(tmp_path, "app", lock_timeout_s=0.2)
    d.preopened.start([(p, "counts") for p in range(4)])  # partition 3 has no store: not created
    _wait_opened(d, 3)
    assert not d.store_path(3, "counts").exists()
    d.preopened.settle([(0, "counts"), (1, "counts")])  # the assignment: partitions 0 and 1
    s0 = d.open_store(0, "counts")
    assert s0.get(b"k") == b"0" and s0.offsets() == {"app-counts-changelog": 0}
    other = StateDirectory(tmp_path, "app", lock_timeout_s=0.2).open_store(2, "counts")  # closed: free
    assert other.get(b"k") == b"2"
    other.close()
    s0.close()
    d.close_spares()
    d.preopened.close()  # partition 1's store, never taken, is closed too
    StateDirectory(tmp_path, "app", lock_timeout_s=0.2).open_store(1, "counts").close()


def test_a_locked_or_foreign_store_is_not_opened_ahead(tmp_path: Path) -> None:
    d = StateDirectory(tmp_path, "app")
    held = d.open_store(0, "counts")  # its LOCK is held (here by this process: counts as another)
    d.open_store(1, "counts").close()
    shutil.copytree(d.store_path(1, "counts"), d.store_path(2, "counts"))  # partition 1's, not 2's
    ahead = StateDirectory(tmp_path, "app")
    ahead.preopened.start([(0, "counts"), (1, "counts"), (2, "counts")])
    _wait_opened(ahead, 1)
    assert list(ahead.preopened._stores) == [(1, "counts")]
    ahead.preopened.close()
    held.close()
