"""RocksDB store on rocksdict: data in the default column family, the checkpoint beside it.

The changelog checkpoint lives in a ``streamlet`` column family and is
written in the same WriteBatch as the data it describes, so local data and
checkpoint can never disagree after a crash. The same column family records
the store's owner (application id + store name) to recognise a foreign
directory.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from typing import Iterator, Mapping

from rocksdict import Options, Rdict, WriteBatch

from streamlet.errors import StateError

log = logging.getLogger("streamlet.state")

_META = "streamlet"
_OWNER = b"owner"
_OFFSET = b"offset:"


def _options() -> Options:
    opts = Options(raw_mode=True)
    opts.create_if_missing(True)
    opts.create_missing_column_families(True)
    # write-heavy: larger memtables, background work on both cores
    opts.set_write_buffer_size(32 * 1024 * 1024)
    opts.increase_parallelism(2)
    return opts


class RocksDBStore:
    """One RocksDB database at ``path``, owned by ``owner`` (``<application id>/<store>``)."""

    def __init__(self, path: str, name: str, owner: str, lock_timeout_s: float = 10.0) -> None:
        self.path = str(path)
        self.name = name
        self.owner = owner
        self._db = self._open(lock_timeout_s)
        self._meta_handle = self._db.get_column_family_handle(_META)
        self._meta = self._db.get_column_family(_META)
        stored = self._meta.get(_OWNER)
        if stored is None:
            self._meta[_OWNER] = owner.encode()
        elif stored.decode(errors="replace") != owner:
            log.warning("state directory %s belongs to %r, not %r: wiping it; the store is "
                        "restored from its changelog", self.path, stored.decode(errors="replace"), owner)
            self._close_handles()
            shutil.rmtree(self.path, ignore_errors=True)
            self._db = self._open(lock_timeout_s)
            self._meta_handle = self._db.get_column_family_handle(_META)
            self._meta = self._db.get_column_family(_META)
            self._meta[_OWNER] = owner.encode()

    def _try_open(self) -> Rdict:
        return Rdict(self.path, _options(), column_families={_META: Options(raw_mode=True)})

    def _open(self, lock_timeout_s: float) -> Rdict:
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        deadline = time.monotonic() + lock_timeout_s
        while True:
            try:
                return self._try_open()
            except Exception as exc:  # rocksdict raises plain Exception with RocksDB's message
                message = str(exc)
                if "lock" in message.lower() and time.monotonic() < deadline:
                    time.sleep(0.2)  # the previous owner is still closing it
                    continue
                if "lock" in message.lower():
                    aside = f"{self.path}.locked-{int(time.time())}"
                    log.warning("state directory %s is locked by another process (%s); moving it to "
                                "%s and restoring from the changelog", self.path, message, aside)
                    os.replace(self.path, aside)
                else:
                    log.warning("state directory %s cannot be opened (%s): wiping it; the store is "
                                "restored from its changelog", self.path, message)
                    shutil.rmtree(self.path, ignore_errors=True)
                try:
                    return self._try_open()
                except Exception as again:
                    raise StateError(f"cannot open state store {self.name!r} at {self.path}: {again}; "
                                     "check the state_dir permissions and free disk space") from again

    def get(self, key: bytes) -> bytes | None:
        return self._db.get(key)

    def write(self, changes: Mapping[bytes, bytes | None], offsets: Mapping[str, int] | None = None) -> None:
        batch = WriteBatch(raw_mode=True)
        for key, value in changes.items():
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        if offsets:
            for topic, offset in offsets.items():
                batch.put(_OFFSET + topic.encode(), str(int(offset)).encode(), self._meta_handle)
        self._db.write(batch)

    def offsets(self) -> dict[str, int]:
        out = {}
        for key, value in self._meta.items(from_key=_OFFSET):
            if not key.startswith(_OFFSET):
                break
            out[key[len(_OFFSET):].decode()] = int(value)
        return out

    def items(self, start: bytes | None = None, end: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        it = self._db.items(from_key=start) if start is not None else self._db.items()
        for key, value in it:
            if end is not None and key >= end:
                break
            yield key, value

    def approximate_count(self) -> int:
        return int(self._db.property_int_value("rocksdb.estimate-num-keys") or 0)

    def _close_handles(self) -> None:
        self._meta = None  # type: ignore[assignment]
        self._meta_handle = None  # type: ignore[assignment]
        if self._db is not None:
            self._db.close()
            self._db = None  # type: ignore[assignment]

    def close(self) -> None:
        if self._db is not None:
            self._close_handles()
