"""The task state machine: Kafka Streams' life cycle, and nothing else."""

from __future__ import annotations

import pytest

from streamlet.errors import StreamletError, TaskStateError
from streamlet.runtime.task_state import ALLOWED, State, TaskState


def test_the_life_of_a_task() -> None:
    seen = []
    s = TaskState("0_3", lambda task, old, new: seen.append((task, old.name, new.name)))
    assert s.state is State.CREATED and not s.running
    for new in (State.RESTORING, State.RUNNING, State.SUSPENDED, State.RESTORING, State.RUNNING,
                State.SUSPENDED, State.CLOSED):
        s.to(new)
    assert seen == [("0_3", "CREATED", "RESTORING"), ("0_3", "RESTORING", "RUNNING"),
                    ("0_3", "RUNNING", "SUSPENDED"), ("0_3", "SUSPENDED", "RESTORING"),
                    ("0_3", "RESTORING", "RUNNING"), ("0_3", "RUNNING", "SUSPENDED"),
                    ("0_3", "SUSPENDED", "CLOSED")]


@pytest.mark.parametrize("old, new", [(old, new) for old in State for new in State if new not in ALLOWED[old]])
def test_every_other_transition_is_refused_and_changes_nothing(old: State, new: State) -> None:
    s = TaskState("1_0")
    s.state = old
    with pytest.raises(TaskStateError, match=f"task 1_0 cannot go from {old.name} to {new.name}") as info:
        s.to(new)
    assert isinstance(info.value, StreamletError) and "report it" in str(info.value)
    assert s.state is old


def test_running_is_reached_only_through_restoring() -> None:
    assert State.RUNNING not in ALLOWED[State.CREATED] and State.RUNNING not in ALLOWED[State.SUSPENDED]
    assert ALLOWED[State.CLOSED] == frozenset()
