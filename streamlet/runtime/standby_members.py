"""The workers of an application as they publish themselves for standby placement.

Every worker with ``num_standby_replicas > 0`` writes, about once a second, one record keyed by its
worker id to the compacted single-partition topic ``<application id>-standby-offsets``: the tasks it
runs (active or restoring) and, per task whose stores it holds open, the sum of their changelog
checkpoints. Every such worker reads the whole topic (assigned, no group) into a
:class:`MemberView`; :func:`~streamlet.runtime.standby_placement.place_standbys` runs over the live
entries. A worker that stops cleanly writes a tombstone; a killed one is dropped once nothing came
from it for :data:`MEMBER_TTL_S`.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from typing import Any

import orjson

from streamlet.runtime.standby_placement import WorkerInfo

#: how often a worker publishes itself (and recomputes the placement)
PUBLISH_INTERVAL_S = 1.0
#: a worker nothing was read from for this long is taken as gone
MEMBER_TTL_S = 10.0


def standby_topic(application_id: str) -> str:
    """The compacted topic where workers publish their tasks and checkpoints."""
    return f"{application_id}-standby-offsets"


def new_worker_id() -> str:
    """An id for this process, unique in the group: host, pid and a random part."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def encode(active: set[str], offsets: dict[str, int], server: str | None = None) -> bytes:
    return orjson.dumps({"active": sorted(active), "offsets": offsets, "server": server,
                         "ts": int(time.time() * 1000)})


class MemberView:
    """The last record of each worker, and when it was read (local monotonic time)."""

    def __init__(self, me: str, ttl_s: float = MEMBER_TTL_S) -> None:
        self.me, self.ttl_s = me, ttl_s
        self._entries: dict[str, tuple[WorkerInfo, float]] = {}

    def apply(self, key: bytes | None, value: bytes | None, now: float | None = None) -> bool:
        """Take one record of the topic; True when it changed what is known of another worker."""
        if key is None:
            return False
        worker = key.decode(errors="replace")
        if worker == self.me:
            return False  # this worker's own entry is its live state, not what it wrote earlier
        if value is None:
            return self._entries.pop(worker, None) is not None
        try:
            data: Any = orjson.loads(value)
            published_ms = int(data.get("ts", 0))
            server = data.get("server")
            info = WorkerInfo(frozenset(data.get("active", ())),
                              {str(k): int(v) for k, v in (data.get("offsets") or {}).items()},
                              str(server) if server else None)
        except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
            return False  # not ours to understand: ignored
        if published_ms < (time.time() - 10 * self.ttl_s) * 1000:
            return False  # an old record read at start-up (a worker long gone, not compacted yet)
        old = self._entries.get(worker)
        self._entries[worker] = (info, time.monotonic() if now is None else now)
        return old is None or old[0] != info

    def live(self, mine: WorkerInfo, now: float | None = None) -> dict[str, WorkerInfo]:
        """The workers heard from within the TTL, and this one (``mine``)."""
        now = time.monotonic() if now is None else now
        for worker in [w for w, (_, seen) in self._entries.items() if now - seen > self.ttl_s]:
            del self._entries[worker]
        out = {w: info for w, (info, _) in self._entries.items()}
        out[self.me] = mine
        return out
