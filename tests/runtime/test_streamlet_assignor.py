"""streamlet's assignor: join bytes in, assignment bytes out, with the cooperative hand-over."""

from __future__ import annotations

from streamlet.runtime.streamlet_assignor import Assignment, JoinInfo, plan

TASKS = [f"0_{p}" for p in range(4)]


def run(joins: dict[str, JoinInfo], replicas: int = 0, lag: int = 10_000, warmups: int = 2) -> dict[str, Assignment]:
    out = plan({m: j.encode() for m, j in joins.items()}, TASKS, replicas, lag, warmups)
    return {m: Assignment.decode(b) for m, b in out.items()}


def test_round_trip_of_join_and_assignment_bytes() -> None:
    j = JoinInfo("w1", frozenset({"0_1"}), 7, {"0_1": 42})
    assert JoinInfo.decode(j.encode()) == j
    a = Assignment(frozenset({"0_1"}), frozenset({"0_2"}), frozenset({"0_3"}), True, False)
    assert Assignment.decode(a.encode()) == a
    assert Assignment.decode(b"") == Assignment()


def test_first_assignment_spreads_every_task() -> None:
    got = run({"m1": JoinInfo("a"), "m2": JoinInfo("b")})
    assert sorted(len(a.active) for a in got.values()) == [2, 2]
    assert set().union(*(a.active for a in got.values())) == set(TASKS)
    assert not any(a.again for a in got.values())


def test_a_task_another_live_member_runs_is_held_back_for_one_round() -> None:
    # a ran everything; b is caught up on 0_0 and 0_1 (its warm-ups): they move, in two rounds
    offsets = {t: 1_000 for t in TASKS}
    first = run({"m1": JoinInfo("a", frozenset(TASKS), 3, offsets),
                 "m2": JoinInfo("b", frozenset(), 3, {"0_0": 1_000, "0_1": 1_000})})
    assert first["m1"].active == {"0_2", "0_3"} and first["m1"].again  # a gives them up...
    assert first["m2"].active == frozenset()  # ...and b does not run them while a may still
    # round two: a no longer claims them, so b gets them; a's other tasks never stopped
    second = run({"m1": JoinInfo("a", frozenset({"0_2", "0_3"}), 4, offsets),
                  "m2": JoinInfo("b", frozenset(), 4, {"0_0": 1_000, "0_1": 1_000})})
    assert second["m2"].active == {"0_0", "0_1"} and second["m1"].active == {"0_2", "0_3"}
    assert not second["m1"].again and not second["m2"].again


def test_a_dead_members_tasks_are_free_at_once_and_go_to_standby_holders() -> None:
    # c died (not in the join): its tasks 0_2, 0_3 are claimed by nobody; a holds their standbys
    got = run({"m1": JoinInfo("a", frozenset({"0_0"}), 5, {"0_0": 500, "0_2": 900, "0_3": 900}),
               "m2": JoinInfo("b", frozenset({"0_1"}), 5, {"0_1": 500})}, lag=0)
    assert got["m1"].active == {"0_0", "0_2"} or got["m1"].active == {"0_0", "0_3"} \
        or got["m1"].active == {"0_0", "0_2", "0_3"}
    assert set().union(*(a.active for a in got.values())) == set(TASKS)
    assert not any(a.again for a in got.values())


def test_the_newest_generations_claim_wins() -> None:
    # b was dropped and came back still claiming 0_1, which a got in a later generation
    got = run({"m1": JoinInfo("a", frozenset({"0_0", "0_1"}), 9, {"0_0": 10, "0_1": 10}),
               "m2": JoinInfo("b", frozenset({"0_1", "0_2", "0_3"}), 4, {"0_1": 10, "0_2": 10, "0_3": 10})})
    assert "0_1" in got["m1"].active and "0_1" not in got["m2"].active


def test_a_worker_id_seen_twice_gets_tasks_once() -> None:
    got = run({"m1": JoinInfo("a"), "m2": JoinInfo("b"), "m3": JoinInfo("b")})
    assert len(got["m1"].active) + len(got["m2"].active) + len(got["m3"].active) == 4
    assert not (got["m2"].active and got["m3"].active)  # one of b's two members only


def test_standbys_ride_in_the_assignment() -> None:
    got = run({"m1": JoinInfo("a"), "m2": JoinInfo("b")}, replicas=1)
    for mine, other in (("m1", "m2"), ("m2", "m1")):
        assert got[mine].standby == got[other].active
