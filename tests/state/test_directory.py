"""StateDirectory: layout, store kinds, owners per partition, wipe."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from streamlet.errors import StateError
from streamlet.state import InMemoryStore, RocksDBStore, StateDirectory


def test_layout_and_open(tmp_path: Path) -> None:
    d = StateDirectory(tmp_path, "my-app")
    assert d.store_path(3, "counts") == tmp_path / "my-app" / "3" / "counts"
    s = d.open_store(3, "counts")
    assert isinstance(s, RocksDBStore) and s.name == "counts"
    s.write({b"a": b"1"}, {"my-app-counts-changelog": 1})
    s.close()
    assert (tmp_path / "my-app" / "3" / "counts" / "CURRENT").is_file()
    s = d.open_store(3, "counts")
    assert s.get(b"a") == b"1" and s.offsets() == {"my-app-counts-changelog": 1}
    s.close()
    m = d.open_store(3, "counts", in_memory=True)
    assert isinstance(m, InMemoryStore) and m.get(b"a") is None and m.path is None


def test_wipe(tmp_path: Path) -> None:
    d = StateDirectory(tmp_path, "my-app")
    d.open_store(0, "counts").close()
    (tmp_path / "my-app" / "0" / "counts.locked-20250101T000000-1").mkdir()
    d.open_store(0, "other").close()
    d.wipe(0, "counts")
    assert sorted(p.name for p in (tmp_path / "my-app" / "0").iterdir()) == ["other"]
    d.wipe(5, "never-opened")  # nothing there: fine


def test_a_store_copied_from_another_partition_is_foreign(tmp_path: Path, caplog) -> None:
    import shutil

    d = StateDirectory(tmp_path, "my-app")
    s = d.open_store(1, "counts")
    s.write({b"k": b"partition 1"}, {"cl": 9})
    s.close()
    (tmp_path / "my-app" / "2").mkdir()
    shutil.copytree(d.store_path(1, "counts"), d.store_path(2, "counts"))
    with caplog.at_level(logging.WARNING, logger="streamlet.state"):
        s = d.open_store(2, "counts")
    assert "belongs to 'my-app/1/counts'" in caplog.text
    assert s.get(b"k") is None and s.offsets() == {}
    s.close()


def test_a_store_whose_rows_have_another_format_is_wiped_and_restored(tmp_path: Path, caplog) -> None:
    """A source table's store written before its rows kept their times holds plain values: read as
    timestamped rows they would be garbage, so it is wiped (and restored from its topic)."""
    d = StateDirectory(tmp_path, "my-app")
    s = d.open_store(0, "users")
    s.write({b"k": b'{"plain": 1}'}, {"users": 7})
    s.close()
    with caplog.at_level(logging.WARNING, logger="streamlet.state"):
        s = d.open_store(0, "users", row_format="timestamped")
    assert "belongs to 'my-app/0/users', not 'my-app/0/users@timestamped'" in caplog.text
    assert s.get(b"k") is None and s.offsets() == {}
    s.write({b"k": b"\x00" * 8 + b"1"}, {"users": 1})
    s.close()
    caplog.clear()
    s = d.open_store(0, "users", row_format="timestamped")  # the same format: kept
    assert s.get(b"k") == b"\x00" * 8 + b"1" and s.offsets() == {"users": 1} and not caplog.text
    s.close()


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "../etc"])
def test_names_that_would_escape_the_directory_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(StateError, match="path separators"):
        StateDirectory(tmp_path, "app").store_path(0, name)
    with pytest.raises(StateError):
        StateDirectory(tmp_path, name)


def test_a_state_dir_that_cannot_hold_directories_is_a_state_error_naming_it(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "state"
    not_a_dir.write_text("a file where the state directory should be")
    with pytest.raises(StateError, match=r"cannot create the state directory .*state/app/0.*check state_dir"):
        StateDirectory(not_a_dir, "app").open_store(0, "s")


def test_a_store_path_taken_by_a_file_is_wiped_and_reopened(tmp_path: Path, caplog) -> None:
    path = StateDirectory(tmp_path, "app").store_path(0, "s")
    path.parent.mkdir(parents=True)
    path.write_text("junk")
    store = StateDirectory(tmp_path, "app").open_store(0, "s")
    try:
        store.write({b"k": b"v"}, {"app-s-changelog": 1})
        assert store.get(b"k") == b"v"
    finally:
        store.close()
    assert "is a file, not a database" in caplog.text
