"""RocksDBStore: durability of data + checkpoint, and the corrupt / foreign / locked directories."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from streamlet.errors import StateError
from streamlet.state import RocksDBStore

OWNER = "app/0/s"


def open_store(path: Path, owner: str = OWNER, **kw) -> RocksDBStore:
    return RocksDBStore(path, "s", owner, **kw)


def holder(path: Path, seconds: float) -> subprocess.Popen:
    """Another process that opens the store, says so, and holds it for ``seconds``."""
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time
        from streamlet.state import RocksDBStore
        s = RocksDBStore({str(path)!r}, "s", {OWNER!r})
        print("open", flush=True)
        time.sleep({seconds})
        s.close()
        print("closed", flush=True)
        time.sleep(30)
    """)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "open"
    return proc


def test_reopen_keeps_data_and_checkpoint(tmp_path: Path) -> None:
    s = open_store(tmp_path / "db")
    s.write({b"k": b"v", b"gone": b"x"}, {"cl": 10})
    s.write({b"gone": None}, {"cl": 11})
    s.close()
    s = open_store(tmp_path / "db")
    assert s.get(b"k") == b"v" and s.get(b"gone") is None and s.offsets() == {"cl": 11}
    s.close()


def test_a_killed_process_keeps_its_last_write_with_its_checkpoint(tmp_path: Path) -> None:
    """Data and checkpoint go in one WriteBatch through the WAL: SIGKILL right after the write keeps both."""
    path = tmp_path / "db"
    code = textwrap.dedent(f"""
        import os, signal
        from streamlet.state import RocksDBStore
        s = RocksDBStore({str(path)!r}, "s", {OWNER!r})
        for i in range(100):
            s.write({{b"k%d" % j: b"%d" % i for j in range(100)}}, {{"cl": (i + 1) * 100}})
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    assert subprocess.run([sys.executable, "-c", code]).returncode == -9
    s = open_store(path)
    assert s.offsets() == {"cl": 10_000}
    assert all(v == b"99" for _, v in s.items()) and len(list(s.items())) == 100
    s.close()


def test_closing_releases_the_lock_even_with_an_unfinished_items_iterator(tmp_path: Path) -> None:
    s = open_store(tmp_path / "db")
    s.write({b"k%04d" % i: b"v" for i in range(3000)})
    it = s.items()
    next(it)  # suspended mid-iteration
    s.close()
    started = time.monotonic()
    again = open_store(tmp_path / "db", lock_timeout_s=5)
    assert time.monotonic() - started < 1 and again.get(b"k0000") == b"v"
    again.close()
    del it


def test_corrupt_directory_is_wiped_with_a_warning(tmp_path: Path, caplog) -> None:
    path = tmp_path / "db"
    s = open_store(path)
    s.write({b"k": b"v"}, {"cl": 5})
    s.close()
    for f in path.iterdir():
        if f.name.startswith(("MANIFEST", "CURRENT")):
            f.write_bytes(b"garbage")
    with caplog.at_level(logging.WARNING, logger="streamlet.state"):
        s = open_store(path)
    assert "cannot be opened" in caplog.text and "wiping it" in caplog.text
    assert s.get(b"k") is None and s.offsets() == {}  # empty: restored from the changelog
    s.write({b"k": b"new"})
    assert s.get(b"k") == b"new"
    s.close()


@pytest.mark.parametrize("kind", ["garbage files", "a file"])
def test_something_else_where_the_store_should_be_is_wiped(tmp_path: Path, caplog, kind: str) -> None:
    path = tmp_path / "db"
    if kind == "a file":
        path.write_bytes(b"not a database")
    else:
        path.mkdir()
        (path / "notes.txt").write_text("hello")
        (path / "000001.sst").write_bytes(b"\x00" * 100)
    with caplog.at_level(logging.WARNING, logger="streamlet.state"):
        s = open_store(path)
    assert "not a database: wiping it" in caplog.text
    assert s.offsets() == {} and list(s.items()) == []
    assert path.is_dir() and not (path / "notes.txt").exists()
    s.close()


def test_foreign_directory_is_wiped_with_a_warning(tmp_path: Path, caplog) -> None:
    path = tmp_path / "db"
    s = open_store(path, owner="other-app/0/s")
    s.write({b"k": b"v"}, {"cl": 5})
    s.close()
    with caplog.at_level(logging.WARNING, logger="streamlet.state"):
        s = open_store(path)
    assert "belongs to 'other-app/0/s', not 'app/0/s'" in caplog.text
    assert s.get(b"k") is None and s.offsets() == {}
    s.close()
    caplog.clear()
    s = open_store(path)  # now it is ours: no warning, nothing wiped
    assert caplog.text == "" and s.offsets() == {}
    s.close()


def test_a_database_without_owner_marker_is_foreign(tmp_path: Path, caplog) -> None:
    from rocksdict import Options, Rdict

    opts = Options(raw_mode=True)
    db = Rdict(str(tmp_path / "db"), opts)
    db[b"k"] = b"someone else's"
    db.close()
    del db
    with caplog.at_level(logging.WARNING, logger="streamlet.state"):
        s = open_store(tmp_path / "db")
    assert "holds data but no owner marker" in caplog.text and s.get(b"k") is None
    s.close()


def test_a_lock_released_within_the_timeout_keeps_the_data(tmp_path: Path, caplog) -> None:
    path = tmp_path / "db"
    s = open_store(path)
    s.write({b"k": b"kept"}, {"cl": 3})
    s.close()
    proc = holder(path, 0.7)
    try:
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="streamlet.state"):
            s = open_store(path, lock_timeout_s=10)
        assert 0.3 < time.monotonic() - started < 5  # waited for the other process, no longer
        assert caplog.text == ""
        assert s.get(b"k") == b"kept" and s.offsets() == {"cl": 3}
        s.close()
    finally:
        proc.kill()
        proc.wait()


def test_locked_directory_is_moved_aside_after_a_bounded_wait(tmp_path: Path, caplog) -> None:
    path = tmp_path / "db"
    s = open_store(path)
    s.write({b"k": b"v"}, {"cl": 3})
    s.close()
    proc = holder(path, 60)
    try:
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="streamlet.state"):
            s = open_store(path, lock_timeout_s=0.5)
        assert time.monotonic() - started < 5
        assert "still locked after" in caplog.text and "moving it aside" in caplog.text
        assert s.get(b"k") is None and s.offsets() == {}  # fresh: restored from the changelog
        s.write({b"k": b"new"})
        s.close()
        asides = [p for p in tmp_path.iterdir() if p.name.startswith("db.locked-")]
        assert len(asides) == 1
        # still held: a later open leaves it alone
        open_store(path).close()
        assert asides[0].exists()
    finally:
        proc.kill()
        proc.wait()
    # once nobody holds it, the next open removes it
    s = open_store(path)
    assert not asides[0].exists() and s.get(b"k") == b"new"
    s.close()


def test_same_process_double_open_is_a_clear_error_after_the_wait(tmp_path: Path) -> None:
    """RocksDB keys this process's locks by path: moving the directory aside cannot help, and a store
    opened twice in one process is a bug to report, not a state directory to repair."""
    first = open_store(tmp_path / "db")
    first.write({b"k": b"v"})
    try:
        started = time.monotonic()
        with pytest.raises(StateError, match="already open in this process"):
            open_store(tmp_path / "db", lock_timeout_s=0.3)
        assert time.monotonic() - started < 3
        assert first.get(b"k") == b"v"  # the open store is untouched
    finally:
        first.close()
    open_store(tmp_path / "db").close()  # closed: opens at once


def _flip_data_block_byte(path: Path) -> None:
    sst = max(path.glob("*.sst"), key=lambda f: f.stat().st_size)
    size = sst.stat().st_size
    with open(sst, "r+b") as f:
        f.seek(size // 3)
        byte = f.read(1)
        f.seek(size // 3)
        f.write(bytes([byte[0] ^ 0xFF]))


def test_corrupt_block_is_a_store_fault_and_the_store_is_wiped_at_close(tmp_path: Path) -> None:
    from streamlet.errors import StoreCorruptedError

    path = tmp_path / "s"
    s = open_store(path)
    keys = [b"k%05d" % i for i in range(20_000)]
    s.write({k: b"v" * 100 for k in keys}, {"changelog": 20_000})
    s.close()
    _flip_data_block_byte(path)

    s = open_store(path)
    assert s.offsets() == {"changelog": 20_000}  # the open itself reads no data block
    failed = []
    for k in keys:
        try:
            s.get(k)
        except StoreCorruptedError as exc:
            failed.append(exc)
    assert failed and s.corrupted
    assert failed[0].store == "s" and "Corruption" in failed[0].detail and str(path) in str(failed[0])
    # rocksdict's iterator ends quietly on a read error; items() does not
    with pytest.raises(StoreCorruptedError):
        list(s.items())
    s.close()
    assert not path.exists()  # wiped: the next open starts empty and is restored from the changelog
    s = open_store(path)
    assert s.offsets() == {} and list(s.items()) == []
    s.close()


def test_items_of_a_healthy_store_end_without_error(tmp_path: Path) -> None:
    s = open_store(tmp_path / "s")
    s.write({b"a": b"1", b"b": b"2", b"c": b"3"})
    assert list(s.items()) == [(b"a", b"1"), (b"b", b"2"), (b"c", b"3")]
    assert list(s.items(b"b", b"c")) == [(b"b", b"2")]
    assert list(s.items(b"x")) == []
    assert not s.corrupted
    s.close()
