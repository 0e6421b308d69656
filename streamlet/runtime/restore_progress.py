"""A progress bar per store partition while stores restore, on an interactive terminal.

Workers in pods log instead (``restore_store`` logs the rate every few
seconds and a summary at the end); a person running ``streamlet run`` in a
terminal sees the restore move.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


class RestoreProgress:
    """``callback(store, partition)`` gives a ``progress(done, total)`` for ``restore_store``.

    :attr:`restores` keeps ``(done, total)`` of every store partition restored by this worker
    (the worker's ``/metrics`` shows them); the bar is drawn on a terminal only.
    """

    def __init__(self, console: Console | None = None, enabled: bool | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._console = console or Console(stderr=True)
        self._progress: Progress | None = None
        #: (store, partition) -> (records restored, records to restore)
        self.restores: dict[tuple[str, int], tuple[int, int]] = {}

    def callback(self, store: str, partition: int) -> Callable[[int, int], None] | None:
        restores = self.restores
        restores[(store, partition)] = (0, 0)
        if not self.enabled:
            def record(done: int, total: int) -> None:
                restores[(store, partition)] = (done, max(total, done))

            return record
        if self._progress is None:
            self._progress = Progress(TextColumn("restoring {task.description}"), BarColumn(),
                                      MofNCompleteColumn(), TimeRemainingColumn(),
                                      console=self._console, transient=False)
            self._progress.start()
        progress = self._progress
        task: Any = progress.add_task(f"{store} [{partition}]", total=None)

        def update(done: int, total: int) -> None:
            restores[(store, partition)] = (done, max(total, done))
            progress.update(task, completed=done, total=max(total, done))

        return update

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
