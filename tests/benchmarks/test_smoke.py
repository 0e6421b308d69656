"""Each built benchmark case runs end to end on a small data set (DESIGN §6: no timing asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUN = os.path.join(ROOT, "benchmarks", "run.py")
CONTRACT_KEYS = {"case", "records", "streamlet_rps", "baseline", "baseline_rps", "ratio", "peak_rss_mb",
                 "seconds"}

sys.path.insert(0, ROOT)
from benchmarks import cases  # noqa: E402


def _run(*args: str, timeout: float = 180, **more_env: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMLET_")} | more_env
    return subprocess.run([sys.executable, RUN, *args], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT, env=env)


#: cases of worker processes under a live load, with their own smoke tests below
CLUSTER_CASES = ("failover", "rolling-restart", "scaling")


@pytest.mark.integration
@pytest.mark.parametrize("case", [c for c in cases.built("embedded") if c not in CLUSTER_CASES])
def test_case_runs_and_prints_the_contract_line(case: str) -> None:
    proc = _run(case, "--records", "20000", "--partitions", "4")
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = proc.stdout.strip().splitlines()[-1]
    result = json.loads(last)
    assert CONTRACT_KEYS <= set(result)
    assert result["case"] == case and result["records"] == 20000
    assert result["streamlet_rps"] > 0 and result["baseline_rps"] > 0 and result["peak_rss_mb"] > 0


#: keys each case adds to the contract line (checked by the smoke test below)
CASE_KEYS = {"stateful": {"peak_rss_mb_quarter", "median_ratio", "flush_per_batch_rps", "group_by_rps",
                          "group_by_ratio"},
             "join": {"table_rows", "outputs"},
             "restore": {"raw_restore_rps", "target_rps"},
             "restart": {"phases", "wall_seconds", "target_seconds"},
             "window": {"windows", "outputs", "flush_per_batch_rps", "median_ratio", "target_ratio"},
             "table-join": {"left_updates", "right_updates", "joined_keys", "outputs", "baseline_outputs",
                            "target_ratio"},
             "avro": {"outputs", "fastavro_loop_rps", "median_ratio"},
             "http": {"median_ratio", "target_ratio", "probe", "probe_rounds", "baseline_peak_rss_mb"}}


@pytest.mark.integration
@pytest.mark.parametrize("case", sorted(CASE_KEYS))
def test_stateful_cases_report_their_own_keys(case: str) -> None:
    proc = _run(case, "--records", "20000", "--partitions", "4")
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert CONTRACT_KEYS <= set(result) and CASE_KEYS[case] <= set(result), result
    assert result["case"] == case and result["peak_rss_mb"] > 0


def test_unknown_and_unbuilt_cases_say_so() -> None:
    proc = _run("no-such-case")
    assert proc.returncode == 2 and "unknown benchmark case 'no-such-case'" in proc.stderr
    unbuilt = [c for c in cases.CASES if c not in cases.built()]
    if unbuilt:
        proc = _run(unbuilt[0])
        assert proc.returncode == 2 and "is not built yet" in proc.stderr


def test_data_that_the_embedded_broker_would_truncate_is_refused() -> None:
    proc = _run("stateless", "--records", "1000000", "--partitions", "2")
    assert proc.returncode == 2 and "does not fit the embedded broker" in proc.stderr


@pytest.mark.integration
@pytest.mark.kafka_only
@pytest.mark.parametrize("case", ["stateless", "stateful", "join", "window", "table-join"])
def test_case_runs_beside_kafka_streams_on_a_real_broker(case: str) -> None:
    """``--broker kafka``: a real broker, and the same work as a Kafka Streams application."""
    proc = _run(case, "--broker", "kafka", "--records", "5000", "--partitions", "4", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert CONTRACT_KEYS | {"kafka_streams_rps", "kafka_streams_ratio"} <= set(result), result
    assert result["case"] == case and result["records"] == 5000
    assert result["streamlet_rps"] > 0 and result["baseline_rps"] > 0
    assert result["kafka_streams_rps"] > 0 and result["kafka_streams_ratio"] > 0


@pytest.mark.integration
@pytest.mark.kafka_only
def test_avro_runs_on_a_real_broker_without_a_kafka_streams_side() -> None:
    """``avro --broker kafka``: a real broker and the embedded registry; no Kafka Streams twin."""
    proc = _run("avro", "--broker", "kafka", "--records", "5000", "--partitions", "4", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert CONTRACT_KEYS <= set(result) and "kafka_streams_rps" not in result, result
    assert result["case"] == "avro" and result["records"] == 5000 and result["outputs"] > 0


def _cluster_case(case: str, *args: str, **env: str) -> dict:
    proc = _run(case, "--records", "20000", "--partitions", "4", *args, timeout=900, **env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert CONTRACT_KEYS <= set(result) and result["case"] == case and result["records"] == 20000, result
    assert result["keys"] == 20000 and result["peak_rss_mb"] > 0
    return result


def _check_failover(result: dict) -> None:
    for standbys in ("standby_0", "standby_1"):
        run = result[standbys]
        assert run["victim_partitions"] >= 1 and run["changelog_records"] > 0, result
        assert 0 < run["kill_to_assigned_s"] <= run["seconds"], result
        assert run["live_records"] > 0
    # without a standby the survivors rebuild the victims' stores from the changelog's start
    assert result["standby_0"]["restored"] >= result["standby_0"]["changelog_records"], result
    assert result["seconds"] == result["standby_1"]["seconds"]


def _check_rolling(result: dict) -> None:
    assert result["records_lost"] == 0 and result["live_records"] > 0, result
    assert len(result["restarts"]) == 3 and result["longest_pause_s"] == result["seconds"] > 0, result
    assert 0 <= result["paused_partitions"] <= result["partitions"] == 4, result


@pytest.mark.integration
def test_failover_kills_a_worker_and_measures_both_standby_settings() -> None:
    """On the embedded broker (its group coordinator is the mock's: the figures are not Kafka's)."""
    _check_failover(_cluster_case("failover"))


@pytest.mark.integration
def test_rolling_restart_loses_no_record() -> None:
    _check_rolling(_cluster_case("rolling-restart"))


@pytest.mark.integration
@pytest.mark.kafka_only
def test_failover_on_a_real_broker() -> None:
    _check_failover(_cluster_case("failover", "--broker", "kafka"))


@pytest.mark.integration
@pytest.mark.kafka_only
def test_rolling_restart_on_a_real_broker() -> None:
    _check_rolling(_cluster_case("rolling-restart", "--broker", "kafka"))


def _check_scaling(result: dict, standbys: list[int]) -> None:
    assert result["records_lost"] == 0 and [r["standbys"] for r in result["runs"]] == standbys, result
    for run in result["runs"]:
        up, down, roll, loss = run["up"], run["down"], run["roll"], run["loss"]
        assert run["records_lost"] == 0 and run["live_records"] > 0, run
        # the 4th pod got partitions and restored their stores from the changelog (its state dir was empty)
        assert 1 <= up["partitions"] < 4 and up["restored"] > 0 and up["ready_s"] >= up["assigned_s"] > 0, run
        # after the SIGTERM of the 4th pod, the partitions it owned process on the others
        assert down["partitions"] >= 1 and down["processing_s"] >= down["exit_s"] > 0, run
        assert len(roll["pods"]) == 3 and roll["total_s"] >= max(p["ready_s"] for p in roll["pods"]), run
        assert loss["partitions"] >= 1 and loss["processing_s"] >= loss["assigned_s"] > 0, run
        assert loss["changelog_records"] > 0, run
    if 0 in standbys:  # no standby: the survivors restore the killed pod's stores from the changelog (all of it,
        # or the tail after a checkpoint where a survivor still has the store from owning it before the moves)
        none = next(r for r in result["runs"] if r["standbys"] == 0)["loss"]
        assert 0 < none["restored"] <= none["changelog_records"], result


@pytest.mark.integration
def test_scaling_measures_up_down_rolling_and_node_loss() -> None:
    """One standby setting on the embedded broker to stay short (its group coordinator is the mock's)."""
    _check_scaling(_cluster_case("scaling", BENCH_SCALING_STANDBYS="1"), [1])


@pytest.mark.integration
@pytest.mark.kafka_only
def test_scaling_on_a_real_broker() -> None:
    _check_scaling(_cluster_case("scaling", "--broker", "kafka", "--config", "session.timeout.ms=6000"), [1, 0])


def test_the_eos_case_needs_a_real_broker() -> None:
    proc = _run("eos", "--records", "1000", "--partitions", "2")
    assert proc.returncode == 2 and "needs a real broker (--broker kafka)" in proc.stderr


@pytest.mark.integration
@pytest.mark.kafka_only
def test_the_eos_case_measures_both_guarantees_on_a_real_broker() -> None:
    """``eos``: exactly-once against at-least-once in the same run; every side's counts add up."""
    proc = _run("eos", "--broker", "kafka", "--records", "5000", "--partitions", "4", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert CONTRACT_KEYS | {"group_by_ratio", "eos_1s_ratio", "target_ratio"} <= set(result), result
    assert result["case"] == "eos" and result["baseline"] == "at-least-once"
    assert result["streamlet_rps"] > 0 and result["baseline_rps"] > 0 and result["group_by_eos_rps"] > 0
