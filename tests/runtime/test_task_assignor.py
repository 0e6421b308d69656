"""The KIP-441 placement function: actives to caught-up copies, balance through warm-ups, standbys."""

from __future__ import annotations

import random

import pytest

from streamlet.runtime.task_assignor import MemberState, assign_tasks

TASKS = [f"0_{p}" for p in range(12)]


def owners(result) -> dict[str, str]:
    out = {}
    for worker, tasks in result.active.items():
        for t in tasks:
            assert t not in out, f"{t} active twice"
            out[t] = worker
    return out


def loads(result) -> list[int]:
    return sorted(len(t) for t in result.active.values())


def test_every_task_has_exactly_one_active_and_loads_are_balanced_from_scratch() -> None:
    result = assign_tasks(TASKS, {"a": MemberState(), "b": MemberState(), "c": MemberState()})
    assert set(owners(result)) == set(TASKS)
    assert loads(result) == [4, 4, 4]
    assert not result.probe


def test_caught_up_previous_owners_keep_their_tasks() -> None:
    offsets = {t: 1000 for t in TASKS}
    members = {"a": MemberState(frozenset(TASKS[:6]), {t: 1000 for t in TASKS[:6]}),
               "b": MemberState(frozenset(TASKS[6:]), {t: 1000 for t in TASKS[6:]})}
    result = assign_tasks(TASKS, members)
    assert result.active == {"a": set(TASKS[:6]), "b": set(TASKS[6:])}
    assert offsets  # same inputs, nothing moved


def test_a_dead_workers_tasks_go_to_the_workers_with_their_caught_up_standbys() -> None:
    # c died; a kept caught-up standbys of c's first two tasks, b of the other two
    c_tasks = TASKS[8:]
    members = {
        "a": MemberState(frozenset(TASKS[:4]), {**{t: 500 for t in TASKS[:4]}, c_tasks[0]: 900, c_tasks[1]: 900}),
        "b": MemberState(frozenset(TASKS[4:8]), {**{t: 500 for t in TASKS[4:8]}, c_tasks[2]: 900, c_tasks[3]: 900}),
    }
    result = assign_tasks(TASKS, members, acceptable_lag=0)
    got = owners(result)
    assert [got[t] for t in c_tasks] == ["a", "a", "b", "b"]
    assert loads(result) == [6, 6]


def test_a_lagging_previous_owner_gives_way_to_a_caught_up_copy() -> None:
    members = {"a": MemberState(frozenset(["0_0"]), {"0_0": 10}),
               "b": MemberState(frozenset(), {"0_0": 50_000})}
    result = assign_tasks(["0_0"], members)
    assert owners(result) == {"0_0": "b"}


def test_a_new_empty_worker_gets_warm_ups_not_cold_actives_then_the_tasks_after_catching_up() -> None:
    held = {t: 1_000_000 for t in TASKS}
    members = {"a": MemberState(frozenset(TASKS[:6]), {t: held[t] for t in TASKS[:6]}),
               "b": MemberState(frozenset(TASKS[6:]), {t: held[t] for t in TASKS[6:]}),
               "new": MemberState()}
    first = assign_tasks(TASKS, members, max_warmups=2)
    assert first.active["new"] == set()  # no task restores from scratch while a caught-up copy runs it
    assert owners(first) == {t: ("a" if t in TASKS[:6] else "b") for t in TASKS}
    assert len(first.warmup["new"]) == 2 and first.probe
    # the probing rebalance: the warm-ups caught up, so those two tasks move with no restore
    warmed = first.warmup["new"]
    members["new"] = MemberState(frozenset(), {t: held[t] for t in warmed})
    second = assign_tasks(TASKS, members, max_warmups=2)
    assert second.active["new"] == warmed
    assert second.probe  # still unbalanced (2 of 4): two more warm-ups
    assert not (second.warmup["new"] & warmed)


def test_balance_converges_through_probing_rebalances() -> None:
    held = {t: 100 for t in TASKS}
    members = {"a": MemberState(frozenset(TASKS), dict(held)), "b": MemberState(), "c": MemberState()}
    for _ in range(10):
        result = assign_tasks(TASKS, members, max_warmups=2)
        if not result.probe:
            break
        members = {w: MemberState(frozenset(result.active[w]),
                                  {t: 100 for t in result.active[w] | result.warmup[w]})
                   for w in members}
    assert not result.probe
    assert loads(result) == [4, 4, 4]


@pytest.mark.parametrize("replicas", [0, 1, 2, 5])
def test_standbys_are_never_on_the_active_and_capped_by_the_workers_left(replicas: int) -> None:
    members = {w: MemberState() for w in "abc"}
    result = assign_tasks(TASKS, members, replicas=replicas)
    got = owners(result)
    for task in TASKS:
        holders = [w for w in "abc" if task in result.standby[w] or task in result.warmup[w]]
        assert got[task] not in holders
        assert len(holders) == min(replicas, 2)


def test_standbys_go_to_the_least_lagging_worker() -> None:
    members = {"a": MemberState(frozenset(["0_0"]), {"0_0": 100_000}),
               "b": MemberState(frozenset(), {"0_0": 10}),
               "c": MemberState(frozenset(), {"0_0": 99_000})}
    result = assign_tasks(["0_0"], members, replicas=1)
    assert result.standby["c"] == {"0_0"} and not result.standby["b"]


def test_the_same_inputs_give_the_same_placement_in_any_order() -> None:
    rng = random.Random(7)
    members = {f"w{i}": MemberState(frozenset(rng.sample(TASKS, 3)), {t: rng.randrange(0, 30_000) for t in
                                                                       rng.sample(TASKS, 6)})
               for i in range(4)}
    base = assign_tasks(TASKS, members, replicas=1)
    for _ in range(5):
        names = list(members)
        rng.shuffle(names)
        shuffled = {n: members[n] for n in names}
        again = assign_tasks(reversed(TASKS), shuffled, replicas=1)
        assert (again.active, again.standby, again.warmup) == (base.active, base.standby, base.warmup)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="no members"):
        assign_tasks(TASKS, {})
    with pytest.raises(ValueError, match=">= 0"):
        assign_tasks(TASKS, {"a": MemberState()}, replicas=-1)
