"""RocksDB store on rocksdict: data in the default column family, the checkpoint beside it.

The changelog checkpoint lives in a ``streamlet`` column family and is
written in the same WriteBatch as the data it describes, so local data and
checkpoint can never disagree after a crash. The same column family records
the store's owner (``<application id>/<partition>/<store>`` as given by
:class:`~streamlet.state.directory.StateDirectory`) to recognise a foreign
directory.

Opening never crash-loops and never serves wrong data; each case logs a
warning and ends with a store whose checkpoint is empty, so the runtime
restores it from its changelog:

* unreadable / corrupt directory (garbage files, a file where the directory
  should be, a broken MANIFEST) → wiped, opened empty;
* foreign directory (another owner's marker, or data without any marker) →
  wiped, opened empty;
* locked by another live process (RocksDB's ``LOCK``) → retried for
  ``lock_timeout_s`` (the previous owner is usually just closing it), then
  renamed aside to ``<store>.locked-<time>-<pid>`` and opened fresh; aside
  directories nobody holds any more are removed on later opens. Still open
  in *this* process after the wait → :class:`~streamlet.errors.StateError`
  (a store opened twice is a bug; RocksDB keeps this process's lock on the
  path even if the directory is moved).

Corruption found later — a bad block checksum on a read, a failed write or
iteration, an error at close — raises
:class:`~streamlet.errors.StoreCorruptedError` (any other RocksDB error a
:class:`~streamlet.errors.StateError`), never a record error, and marks the
store: closing a corrupted store deletes its directory, so the next open
restores it from its changelog.
"""

from __future__ import annotations

import gc
import logging
import os
import shutil
import time
import weakref
from pathlib import Path
from typing import Iterator, Mapping, Sequence

from rocksdict import ReadOptions, Rdict, WriteBatch

from streamlet.errors import StateError, StoreCorruptedError
from streamlet.state.rocksdb_options import _META, _options, configure_memory, open_database
from streamlet.state.store import Staging

#: ``configure_memory`` and ``_options`` are re-exported: ``streamlet.state`` and the benchmarks import them
#: from here (benchmarks/compare.py runs today's benchmarks on versions from before rocksdb_options.py)
__all__ = ["RocksDBStore", "configure_memory", "open_database", "_options"]

log = logging.getLogger("streamlet.state")

_OWNER = b"owner"
_OFFSET = b"offset:"
_PAGE = 1024  # items() reads this many entries per native iterator (see items())

#: stores made of an adopted spare, by path: RocksDB does not know their lock by that path
_adopted: dict[str, "weakref.ref[RocksDBStore]"] = {}


def _is_lock_error(message: str) -> bool:
    # RocksDB: "IO error: While lock file: <path>/LOCK: Resource temporarily
    # unavailable" (another process), "IO error: lock hold by current process,
    # ...: <path>/LOCK: No locks available" (this one). Corruption messages
    # mention "block", so match the LOCK file, not the word.
    return "LOCK:" in message and ("lock file" in message or "lock hold" in message)


def _lock_held(lock_file: Path) -> bool:
    """Whether any process holds a POSIX lock on ``lock_file`` (Linux ``/proc/locks``).

    Read-only: opening the file to probe with fcntl would drop this process's
    own locks on it. Unknown (other systems) counts as held.
    """
    try:
        st = os.stat(lock_file)
    except FileNotFoundError:
        return False
    except OSError:
        return True
    wanted = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        with open("/proc/locks") as f:
            return any(wanted in line.split() for line in f)
    except OSError:
        return True


def _remove(path: str) -> None:
    if os.path.islink(path) or os.path.isfile(path):
        os.unlink(path)
    elif os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)


class RocksDBStore(Staging):
    """One RocksDB database at ``path``, owned by ``owner``; a :class:`KeyValueStore`."""

    def __init__(self, path: str | os.PathLike[str], name: str, owner: str, *,
                 lock_timeout_s: float = 10.0) -> None:
        self.path = str(path)
        self.name = name
        self.owner = owner
        self.lock_timeout_s = lock_timeout_s
        self._db: Rdict | None = None
        self._meta: Rdict | None = None
        self._meta_handle = None
        self._link: str | None = None  # the spare's path, while an adopted database is open
        #: RocksDB reported corrupt data: the directory is deleted at close
        self.corrupted = False
        self._attach(self._open())
        self._sweep_aside()

    # -- opening ----------------------------------------------------------------------
    @classmethod
    def adopt(cls, spare: tuple[Rdict, str], path: str | os.PathLike[str], name: str, owner: str, *,
              lock_timeout_s: float = 10.0) -> "RocksDBStore":
        """A new store at ``path`` (which must not exist) made of an empty database opened ahead at
        ``spare[1]`` (:mod:`streamlet.state.spares`): the directory moves to ``path`` and a link
        stays at the spare's path, where RocksDB still names its files, until :meth:`close`.
        Raises OSError (the spare is then closed and deleted) if that cannot be done."""
        db, link = spare
        self = cls.__new__(cls)
        self.path, self.name, self.owner, self.lock_timeout_s = str(path), name, owner, lock_timeout_s
        self._db = self._meta = self._meta_handle = None
        self._link = None
        self.corrupted = False
        moved = False
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            os.rename(link, self.path)
            moved = True
            os.symlink(os.path.abspath(self.path), link)
        except OSError:
            # (no symlinks on this file system?) undo: the caller opens the store as usual
            if moved:
                _remove(self.path)
            db.close()
            _remove(link)
            raise
        self._link = link
        _adopted[self.path] = weakref.ref(self)
        self._attach(db)
        return self

    def _try_open(self) -> Rdict:
        ref = _adopted.get(self.path)
        if ref is not None and (other := ref()) is not None and other._db is not None:
            # RocksDB knows this process's lock by the spare's path, not this one
            raise StateError(f"IO error: lock hold by current process: {self.path}/LOCK: No locks available")
        return open_database(self.path)

    def _open(self) -> Rdict:
        parent = os.path.dirname(self.path)
        try:
            if parent:
                os.makedirs(parent, exist_ok=True)
        except OSError as exc:
            raise StateError(f"cannot create the state directory {parent} for store {self.name!r}: {exc}; "
                             "check state_dir, its permissions and free disk space") from exc
        self._wipe_if_not_a_database()
        deadline = time.monotonic() + self.lock_timeout_s
        collected = False
        while True:
            try:
                return self._try_open()
            except Exception as exc:  # rocksdict raises plain Exception with RocksDB's message
                message = str(exc)
            if not _is_lock_error(message):
                log.warning("state store %s at %s cannot be opened (%s): wiping it; it is restored "
                            "from its changelog", self.name, self.path, message)
                _remove(self.path)
                break
            if "current process" in message and not collected:
                collected = True
                gc.collect()  # a store of this process that nobody closed, waiting to be freed
                continue
            if time.monotonic() < deadline:
                time.sleep(0.1)  # the previous owner is usually just closing it
                continue
            if "current process" in message:
                # RocksDB remembers this process's locks by path: a directory moved
                # aside would leave the path locked all the same
                raise StateError(f"state store {self.name!r} at {self.path} is already open in this "
                                 f"process and was not closed within {self.lock_timeout_s:.1f} s; close() "
                                 "the previous store of this partition before opening it again")
            aside = f"{self.path}.locked-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
            log.warning("state store %s at %s is still locked after %.1f s (%s): moving it aside to %s "
                        "and opening it empty; it is restored from its changelog", self.name, self.path,
                        self.lock_timeout_s, message, aside)
            try:
                os.rename(self.path, aside)
            except OSError as exc:
                raise StateError(f"state store {self.name!r} at {self.path} is locked by another process and "
                                 f"cannot be moved aside: {exc}") from exc
            break
        try:
            return self._try_open()
        except Exception as exc:
            raise StateError(f"cannot open state store {self.name!r} at {self.path}: {exc}; check state_dir, "
                             "its permissions and free disk space") from exc

    def _wipe_if_not_a_database(self) -> None:
        """A file, or a directory of other files, where the store should be: RocksDB would open
        (create) a database beside the garbage, so remove it first."""
        path = self.path
        if os.path.isdir(path) and not os.path.islink(path):
            try:
                entries = os.listdir(path)
            except OSError:
                return  # unreadable: the open fails and handles it
            if not entries or "CURRENT" in entries or "LOCK" in entries:
                return
            what = f"a directory of {len(entries)} other files"
        elif os.path.lexists(path):
            what = "a file"
        else:
            return
        log.warning("state store %s at %s is %s, not a database: wiping it; it is restored from its "
                    "changelog", self.name, path, what)
        _remove(path)

    def _attach(self, db: Rdict) -> None:
        meta = db.get_column_family(_META)
        stored = meta.get(_OWNER)
        problem = None
        if stored is None:
            if self._has_data(db, meta):
                problem = "holds data but no owner marker"
        elif stored != self.owner.encode():
            problem = f"belongs to {stored.decode(errors='replace')!r}"
        if problem is not None:
            log.warning("state store %s at %s %s, not %r: wiping it; it is restored from its changelog",
                        self.name, self.path, problem, self.owner)
            del meta
            db.close()
            del db
            _remove(self.path)
            db = self._open()
            meta = db.get_column_family(_META)
            stored = None
        if stored is None:
            meta[_OWNER] = self.owner.encode()
        self._db, self._meta = db, meta
        self._meta_handle = db.get_column_family_handle(_META)

    @staticmethod
    def _has_data(db: Rdict, meta: Rdict) -> bool:
        for rdict in (db, meta):
            it = rdict.keys()
            for _ in it:
                return True
        return False

    def _sweep_aside(self) -> None:
        base = Path(self.path)
        try:
            asides = list(base.parent.glob(base.name + ".locked-*"))
        except OSError:
            return
        for aside in asides:
            if aside.is_dir() and not _lock_held(aside / "LOCK"):
                log.info("removing %s: moved aside earlier while locked, no process holds it now", aside)
                shutil.rmtree(aside, ignore_errors=True)

    # -- the store protocol -----------------------------------------------------------
    def _fault(self, exc: Exception, what: str) -> StateError:
        """The error to raise for a RocksDB failure: corruption marks the store (wiped at close)."""
        message = str(exc)
        if "Corruption" in message or "checksum" in message:
            self.corrupted = True
            return StoreCorruptedError(self.name, self.path, what, message)
        return StateError(f"state store {self.name!r} at {self.path}: {what} failed: {message}; check the "
                          "disk (space, permissions) under state_dir")

    def get(self, key: bytes) -> bytes | None:
        try:
            return self._db.get(key)  # type: ignore[union-attr]
        except Exception as exc:  # rocksdict raises plain Exception with RocksDB's status
            raise self._fault(exc, "read") from exc

    def write(self, changes: Mapping[bytes, bytes | None], offsets: Mapping[str, int] | None = None,
              ranges: Sequence[tuple[bytes, bytes]] = ()) -> None:
        if not changes and not offsets and not ranges:
            return
        batch = WriteBatch(raw_mode=True)
        put, delete = batch.put, batch.delete
        for start, end in ranges:  # one range tombstone each, before the changes
            batch.delete_range(start, end)
        for key, value in changes.items():
            if value is None:
                delete(key)
            else:
                put(key, value)
        if offsets:
            handle = self._meta_handle
            for topic, offset in offsets.items():
                put(_OFFSET + topic.encode(), b"%d" % offset, handle)
        try:
            self._db.write(batch)  # type: ignore[union-attr]
        except Exception as exc:
            raise self._fault(exc, "write") from exc

    def offsets(self) -> dict[str, int]:
        try:
            found = [(k, v) for k, v in self._meta.items(from_key=_OFFSET)]  # type: ignore[union-attr]
        except Exception as exc:
            raise self._fault(exc, "read of the checkpoint") from exc
        return {k[len(_OFFSET):].decode(): int(v) for k, v in found if k.startswith(_OFFSET)}

    def items(self, start: bytes | None = None, end: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        # Read in pages so that no native iterator outlives a page: an iterator
        # left open keeps the database (and its LOCK) alive after close(). Pages
        # are not one snapshot: a write between pages may show.
        cursor = start
        while True:
            opts = ReadOptions()
            if end is not None:
                opts.set_iterate_upper_bound(end)
            page = []
            try:
                it = self._db.items(from_key=cursor, read_opt=opts)  # type: ignore[union-attr]
                for entry in it:
                    page.append(entry)
                    if len(page) == _PAGE:
                        break
                del it
            except Exception as exc:
                raise self._fault(exc, "iteration") from exc
            if len(page) < _PAGE:
                # rocksdict's item iterator ends quietly on a read error: make sure it was the end
                self._check_end(page[-1][0] + b"\x00" if page else cursor, end)
            yield from page
            if len(page) < _PAGE:
                return
            cursor = page[-1][0] + b"\x00"  # the next key after the last one

    def _check_end(self, cursor: bytes | None, end: bytes | None) -> None:
        opts = ReadOptions()
        if end is not None:
            opts.set_iterate_upper_bound(end)
        probe = self._db.iter(opts)  # type: ignore[union-attr]
        try:
            if cursor is None:
                probe.seek_to_first()
            else:
                probe.seek(cursor)
            if not probe.valid():
                probe.status()
        except Exception as exc:
            raise self._fault(exc, "iteration") from exc
        finally:
            del probe

    def approximate_count(self) -> int:
        return int(self._db.property_int_value("rocksdb.estimate-num-keys") or 0)  # type: ignore[union-attr]

    def clear(self) -> None:
        """Delete everything, checkpoint included: the directory is wiped and re-created."""
        self._staged = None
        self.close()
        _remove(self.path)
        self._attach(self._open())

    def close(self) -> None:
        """Close the database; a corrupted store's directory is deleted (restored at its next open)."""
        db, self._db, self._meta, self._meta_handle = self._db, None, None, None
        if db is not None:
            try:
                db.close()  # flushes memtables: the next open replays no WAL
            except Exception as exc:
                self.corrupted = True
                log.warning("state store %s at %s failed to close (%s)", self.name, self.path, exc)
        link, self._link = self._link, None
        if link is not None:
            _adopted.pop(self.path, None)
            _remove(link)
        if self.corrupted:
            del db
            gc.collect()  # let go of the native handle before its files go
            log.warning("state store %s at %s is corrupted: wiped; it is restored from its changelog when "
                        "it is opened next", self.name, self.path)
            _remove(self.path)

    def __repr__(self) -> str:
        return f"<RocksDBStore {self.name} at {self.path}>"
