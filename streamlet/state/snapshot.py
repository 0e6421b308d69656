"""Copies, taken on another thread, of dicts and lists that a task's thread writes.

Interactive queries (``app.store()``, the HTTP side) read store caches from
their own threads while the record loop writes them, with no lock on the
record loop. Readers never iterate a live dict or list: they copy it in one
call (``dict(d)``, ``list(d)``, ``sorted(d)``) and read the copy. Under
CPython's GIL such a copy is not interrupted by Python code; where a writer
does change the size meanwhile (a build without the GIL, a copy that runs
Python code), the copy raises ``RuntimeError`` and is taken again.
"""

from __future__ import annotations

from typing import Callable, TypeVar

T = TypeVar("T")

#: copies tried before the last error is raised (each attempt is one C-level pass over the container)
TRIES = 100


def copy_while_written(copy: Callable[[], T]) -> T:
    """``copy()`` (e.g. ``lambda: dict(values)``), taken again when a write changed the container's size
    during it ("dictionary changed size during iteration", "dict mutated during update")."""
    for _ in range(TRIES - 1):
        try:
            return copy()
        except RuntimeError:
            continue
    return copy()
