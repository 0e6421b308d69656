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


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "../etc"])
def test_names_that_would_escape_the_directory_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(StateError, match="path separators"):
        StateDirectory(tmp_path, "app").store_path(0, name)
    with pytest.raises(StateError):
        StateDirectory(tmp_path, name)
