"""Spare stores: empty databases opened ahead and adopted by stores that do not exist yet."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from streamlet.errors import StateError
from streamlet.state import StateDirectory
from streamlet.state.rocksdb import open_database
from streamlet.state.spares import SPARES, SpareStores


def _wait_ready(d: StateDirectory, n: int) -> None:
    deadline = time.monotonic() + 30
    while d.spares is None or d.spares.ready < n:
        assert time.monotonic() < deadline, "spares not opened in 30 s"
        time.sleep(0.01)


def test_a_new_store_adopts_a_spare_and_ends_up_a_plain_directory(tmp_path: Path) -> None:
    d = StateDirectory(tmp_path, "app")
    assert d.is_new()
    d.open_spares(2)
    _wait_ready(d, 2)
    spares = tmp_path / "app" / SPARES
    assert len(list(spares.iterdir())) == 2

    s = d.open_store(3, "counts")
    assert d.spares is not None and d.spares.ready == 1  # adopted, not opened
    assert not d.is_new()
    s.write({b"k": b"v"}, {"app-counts-changelog": 7})
    path = d.store_path(3, "counts")
    assert path.is_dir() and not path.is_symlink()
    assert sum(1 for e in spares.iterdir() if e.is_symlink()) == 1  # RocksDB's own path, until close
    s.close()
    assert not any(e.is_symlink() for e in spares.iterdir())

    d.close_spares()
    assert not spares.exists()  # the unused spare is deleted, then the empty directory
    again = StateDirectory(tmp_path, "app").open_store(3, "counts")
    assert again.get(b"k") == b"v" and again.offsets() == {"app-counts-changelog": 7}
    again.close()


def test_a_store_on_disk_is_opened_not_replaced_by_a_spare(tmp_path: Path) -> None:
    d = StateDirectory(tmp_path, "app")
    s = d.open_store(0, "counts")
    s.write({b"k": b"kept"}, {})
    s.close()
    assert not d.is_new()
    d.open_spares(d.missing([(0, "counts"), (1, "counts")]))  # only partition 1's store is missing
    _wait_ready(d, 1)
    s = d.open_store(0, "counts")
    assert s.get(b"k") == b"kept" and d.spares is not None and d.spares.ready == 1
    s.close()
    d.close_spares()


def test_fill_target_can_be_lowered_while_filling(tmp_path: Path) -> None:
    spares = SpareStores(tmp_path / SPARES)
    spares.fill(40)
    spares.fill(3)
    deadline = time.monotonic() + 30
    while spares._thread is not None:  # stops at the new target (or just past it)
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert 3 <= spares.ready < 40
    spares.close()
    assert not (tmp_path / SPARES).exists()


def test_an_adopted_store_cannot_be_opened_twice_in_this_process(tmp_path: Path) -> None:
    d = StateDirectory(tmp_path, "app", lock_timeout_s=0.2)
    d.open_spares(1)
    _wait_ready(d, 1)
    s = d.open_store(0, "counts")
    with pytest.raises(StateError, match="already open in this process"):
        StateDirectory(tmp_path, "app", lock_timeout_s=0.2).open_store(0, "counts")
    s.close()
    StateDirectory(tmp_path, "app").open_store(0, "counts").close()  # closed: opens again
    d.close_spares()


def test_spares_left_by_a_process_that_is_gone_are_swept(tmp_path: Path) -> None:
    root = tmp_path / SPARES
    root.mkdir()
    open_database(str(root / "999999-0")).close()  # closed: nobody holds its LOCK
    os.symlink(tmp_path / "gone", root / "999999-1")  # an adopted spare's link, store gone
    held = open_database(str(root / f"{os.getpid()}-9"))  # open here: its LOCK is held
    try:
        spares = SpareStores(root)
        assert [e.name for e in root.iterdir()] == [f"{os.getpid()}-9"]
        spares.close()
    finally:
        held.close()


def test_without_symlinks_a_spare_is_dropped_and_the_store_opened_as_usual(tmp_path: Path, monkeypatch) -> None:
    d = StateDirectory(tmp_path, "app")
    d.open_spares(1)
    _wait_ready(d, 1)

    def no_symlinks(*args: object) -> None:
        raise OSError("Operation not permitted")

    monkeypatch.setattr(os, "symlink", no_symlinks)
    s = d.open_store(0, "counts")
    s.write({b"k": b"v"}, {})
    s.close()
    assert d.spares is not None and d.spares.ready == 0
    d.close_spares()
    assert not (tmp_path / "app" / SPARES).exists()  # the spare was deleted
    again = d.open_store(0, "counts")
    assert again.get(b"k") == b"v"
    again.close()



def test_at_most_max_spares_are_opened(tmp_path: Path) -> None:
    from streamlet.state.spares import MAX_SPARES

    d = StateDirectory(tmp_path, "app")
    d.open_store(0, "counts").close()  # on disk: not counted
    d.open_spares(d.missing([(p, "counts") for p in range(MAX_SPARES + 10)]))
    assert d.spares is not None and d.spares._target == MAX_SPARES
    d.open_spares(d.missing([(p, "counts") for p in range(3)]))  # the exact need, known later: 2
    assert d.spares._target == 2
    d.close_spares()
