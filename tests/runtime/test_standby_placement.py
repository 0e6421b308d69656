"""The standby placement function: deterministic, never on the active's worker, spread, capped."""

from __future__ import annotations

import pytest

from streamlet.runtime.standby_placement import WorkerInfo, place_standbys

TASKS = [f"{s}_{p}" for s in range(2) for p in range(12)]


def owners(workers: list[str]) -> dict[str, WorkerInfo]:
    """Tasks dealt round-robin to the workers as their active tasks."""
    active: dict[str, set[str]] = {w: set() for w in workers}
    for i, task in enumerate(TASKS):
        active[workers[i % len(workers)]].add(task)
    return {w: WorkerInfo(frozenset(a)) for w, a in active.items()}


def holders(placement: dict[str, set[str]], task: str) -> set[str]:
    return {w for w, tasks in placement.items() if task in tasks}


def test_same_inputs_give_the_same_placement_whatever_the_order() -> None:
    workers = owners(["w-a", "w-b", "w-c"])
    reordered = dict(reversed(list(workers.items())))
    assert place_standbys(TASKS, workers, 1) == place_standbys(list(reversed(TASKS)), reordered, 1)


@pytest.mark.parametrize("replicas", [1, 2])
def test_a_standby_is_never_on_the_worker_running_the_task(replicas: int) -> None:
    workers = owners(["w-a", "w-b", "w-c"])
    placement = place_standbys(TASKS, workers, replicas)
    for task in TASKS:
        found = holders(placement, task)
        assert len(found) == replicas
        runner = next(w for w, info in workers.items() if task in info.active)
        assert runner not in found


def test_replicas_are_capped_by_the_other_workers() -> None:
    placement = place_standbys(TASKS, owners(["w-a", "w-b"]), 3)
    assert all(len(holders(placement, t)) == 1 for t in TASKS)
    assert place_standbys(TASKS, owners(["w-a"]), 2) == {"w-a": set()}
    assert place_standbys(TASKS, owners(["w-a", "w-b"]), 0) == {"w-a": set(), "w-b": set()}
    # nobody runs the task yet (during a rebalance): still one worker left for the active
    idle = {w: WorkerInfo() for w in ("w-a", "w-b")}
    assert all(len(holders(place_standbys(TASKS, idle, 5), t)) == 1 for t in TASKS)


def test_standbys_spread_over_the_workers() -> None:
    names = [f"worker-{i}" for i in range(4)]
    tasks = [f"0_{p}" for p in range(400)]
    placement = place_standbys(tasks, {w: WorkerInfo() for w in names}, 1)
    counts = sorted(len(t) for t in placement.values())
    assert sum(counts) == 400
    assert counts[0] >= 60 and counts[-1] <= 140  # 100 each on average; hashing, not exact


def test_a_caught_up_copy_wins_over_the_hash() -> None:
    workers = {"w-a": WorkerInfo(frozenset({"0_0"}), {"0_0": 50_000}), "w-b": WorkerInfo(), "w-c": WorkerInfo()}
    plain = place_standbys(["0_0"], workers, 1)
    loser = next(w for w in ("w-b", "w-c") if "0_0" not in plain[w])
    workers[loser] = WorkerInfo(frozenset(), {"0_0": 49_000})  # within the acceptable lag
    assert place_standbys(["0_0"], workers, 1)[loser] == {"0_0"}
    workers[loser] = WorkerInfo(frozenset(), {"0_0": 1_000})  # too far behind: the hash decides again
    assert place_standbys(["0_0"], workers, 1) == plain


def test_a_worker_leaving_moves_only_the_standbys_it_held() -> None:
    names = [f"worker-{i}" for i in range(5)]
    tasks = [f"0_{p}" for p in range(100)]
    before = place_standbys(tasks, {w: WorkerInfo() for w in names}, 1)
    after = place_standbys(tasks, {w: WorkerInfo() for w in names[:-1]}, 1)
    for w in names[:-1]:
        assert before[w] <= after[w]


def test_negative_replicas_are_refused() -> None:
    with pytest.raises(ValueError):
        place_standbys(TASKS, owners(["w-a"]), -1)
