"""Opens and restores the stores of newly assigned tasks on a thread of its own.

Kafka Streams' state updater (KIP-869): while one task restores, the tasks
that are ready keep processing, and the record loop keeps calling the
consumer — a long restore neither stalls the other partitions nor exceeds
``max.poll.interval.ms``. The stores of every queued task are opened ahead
on a few threads, with their changelogs' watermarks (a ListOffsets round
trip each, which releases the interpreter), while this one restores them in
order. rocksdict holds the interpreter for the whole of a RocksDB open
(~7-10 ms, a dozen fsyncs for a new store), so opens do not overlap the
record loop: a first start has its new stores adopt spare databases opened
before the assignment (:mod:`streamlet.state.spares`).

Hand-over is one lock: the record loop :meth:`add`\\ s tasks, takes the
restored ones with :meth:`take_ready` (and activates them), and
:meth:`remove`\\ s a task that is revoked before it is ready — which waits
until this thread has let go of the task's stores and closes them. This
thread uses only the restore consumer, never the record loop's (a source
table's committed offset is read at assignment, on the loop's thread).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from streamlet.runtime.state_manager import discard
from streamlet.state.restore import RestoreCancelled

log = logging.getLogger("streamlet.state")

#: threads that open RocksDB stores and ask for their changelogs' watermarks ahead of the restores
#: (a ListOffsets round trip releases the interpreter; a RocksDB open does not)
OPEN_THREADS = 4


class StateUpdater:
    """The restoring tasks of this process; ``state`` is the :class:`StateManager` that opens them."""

    def __init__(self, state: Any) -> None:
        self.state = state
        self._lock = threading.Condition()
        self._queue: deque[Any] = deque()
        self._current: Any = None
        self._cancel = threading.Event()  # set: drop the current task
        self._ready: list[tuple[Any, dict[str, Any]]] = []
        self._error: BaseException | None = None
        self._closed = False
        self._thread: threading.Thread | None = None
        #: stores being opened ahead, per queued task (futures of its caches, in store order)
        self._opening: dict[Any, list[Future]] = {}
        self._pool: ThreadPoolExecutor | None = None

    # -- the record loop's side --------------------------------------------------------
    def add(self, tasks: list[Any]) -> None:
        """Queue tasks to open and restore, in order."""
        if not tasks:
            return
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(OPEN_THREADS, thread_name_prefix="streamlet-store-open")
            for task in tasks:
                self._opening[task] = [self._pool.submit(self.state.open_ahead, spec, task.partition)
                                       for spec in task.store_specs]
            self._queue.extend(tasks)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="streamlet-state-updater", daemon=True)
                self._thread.start()
            self._lock.notify_all()

    def take_ready(self) -> list[tuple[Any, dict[str, Any]]]:
        """The tasks restored since the last call, with their store caches; raises what the
        updater's thread raised (a store that cannot be opened or restored stops the worker)."""
        if not self._ready and self._error is None:
            return []
        with self._lock:
            if self._error is not None:
                error, self._error = self._error, None
                raise error
            ready, self._ready = self._ready, []
        return ready

    @property
    def busy(self) -> bool:
        """Some task is queued, restoring, or restored and not taken yet (or an error waits)."""
        return bool(self._queue or self._current is not None or self._ready or self._error is not None)

    def remove(self, task: Any) -> None:
        """``task`` was revoked before it became active: stop restoring it and close its stores."""
        with self._lock:
            if task in self._queue:
                self._queue.remove(task)
                discard(self._opening.pop(task, []))
                return
            if self._current is task:
                self._cancel.set()
                while self._current is task:
                    self._lock.wait()
            for i, (t, caches) in enumerate(self._ready):
                if t is task:
                    del self._ready[i]
                    _close(caches)
                    return

    def close(self) -> None:
        """Stop the thread (cancelling the current restore) and close what it opened."""
        with self._lock:
            self._closed = True
            self._queue.clear()
            for futures in self._opening.values():
                discard(futures)
            self._opening.clear()
            self._cancel.set()
            self._lock.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(30)
        if self._pool is not None:
            self._pool.shutdown(wait=True)  # the stores opened meanwhile are closed by discard()
        with self._lock:
            for _, caches in self._ready:
                _close(caches)
            self._ready = []

    # -- the updater's thread ------------------------------------------------------------
    def _run(self) -> None:
        state = self.state
        while True:
            with self._lock:
                while not self._queue and not self._closed:
                    state.progress.close()
                    self._lock.wait()
                if self._closed:
                    self._current = None
                    self._lock.notify_all()
                    return
                task = self._current = self._queue.popleft()
                opening = self._opening.pop(task, None)
                self._cancel.clear()
            caches: dict[str, Any] | None = None
            try:
                caches = state.open_and_restore(task, self._cancel, opening)
            except RestoreCancelled:
                log.info("task %s: restore stopped (revoked or shutting down)", task.task_id)
            except BaseException as exc:  # handed to the record loop, which stops the worker
                with self._lock:
                    self._error = exc
            with self._lock:
                if caches is not None:
                    if self._cancel.is_set():
                        _close(caches)
                    else:
                        self._ready.append((task, caches))
                self._current = None
                self._lock.notify_all()


def _close(caches: dict[str, Any]) -> None:
    for cache in caches.values():
        cache.close()
