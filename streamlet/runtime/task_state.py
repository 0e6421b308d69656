"""The life cycle of a task, as Kafka Streams' ``Task.State``: one table of allowed transitions.

::

    CREATED ──▶ RESTORING ──▶ RUNNING
       │            │            │
       └────────────┴──▶ SUSPENDED ──▶ CLOSED
                            │
                            └──▶ RESTORING   (a corrupted store: restored again)

A task processes records only while RUNNING; a task without stores passes
through RESTORING at once. Every change goes through :meth:`TaskState.to`,
which refuses a transition the table does not allow.
"""

from __future__ import annotations

import enum
import logging
from typing import Callable

from streamlet.errors import TaskStateError

log = logging.getLogger("streamlet.tasks")


class State(enum.Enum):
    CREATED = "created"
    RESTORING = "restoring"
    RUNNING = "running"
    SUSPENDED = "suspended"
    CLOSED = "closed"


ALLOWED: dict[State, frozenset[State]] = {
    State.CREATED: frozenset({State.RESTORING, State.SUSPENDED}),
    State.RESTORING: frozenset({State.RUNNING, State.SUSPENDED}),
    State.RUNNING: frozenset({State.SUSPENDED}),
    State.SUSPENDED: frozenset({State.RESTORING, State.CLOSED}),
    State.CLOSED: frozenset(),
}

#: told ``(task id, old state, new state)`` after each transition
Listener = Callable[[str, State, State], None]


class TaskState:
    """The state of one task; ``listener`` hears every transition (the task manager's readiness)."""

    __slots__ = ("task_id", "state", "listener")

    def __init__(self, task_id: str, listener: Listener | None = None) -> None:
        self.task_id = task_id
        self.state = State.CREATED
        self.listener = listener

    def to(self, new: State) -> None:
        old = self.state
        self.check(new)
        self.state = new
        log.debug("task %s: %s -> %s", self.task_id, old.name, new.name)
        if self.listener is not None:
            self.listener(self.task_id, old, new)

    def check(self, new: State) -> None:
        """Raise :class:`TaskStateError` unless the task may go to ``new`` (before work that leads there)."""
        old = self.state
        if new not in ALLOWED[old]:
            allowed = ", ".join(sorted(s.name for s in ALLOWED[old])) or "none: it is closed"
            raise TaskStateError(
                f"task {self.task_id} cannot go from {old.name} to {new.name} (allowed from {old.name}: "
                f"{allowed}); this is a bug in streamlet: please report it with the worker's log")

    @property
    def running(self) -> bool:
        return self.state is State.RUNNING

    def __repr__(self) -> str:
        return self.state.name
