"""Case ``rolling-restart``: three workers restarted one by one under a steady load; records lost and the
longest processing pause.

The ``failover`` case's cluster: three ``streamlet run`` workers of the
counting app (``num_standby_replicas=1``, commit interval 100 ms,
``session.timeout.ms=6000``, ``heartbeat.interval.ms=500`` unless
``--config`` says otherwise), each with its HTTP side
(``STREAMLET_APPLICATION_SERVER``) and, when the installed streamlet has
static membership (``STREAMLET_INSTANCE_ID``), its own instance id
(``BENCH_ROLLING_STATIC=0``: dynamic members all the same). They
count ``records`` records over ``min(keys, records)`` keys first (the state
a restarted worker reopens from its kept state directory).

Then a steady load (2,000 records/s, record ``seq`` to partition ``seq %
partitions``, key ``live-<seq>``) runs while each worker in turn gets
SIGTERM, exits (it commits and leaves), is started again on the same state
directory and port, and answers ``GET /ready`` with 200 (every assigned
task running); 3 s between restarts, 3 s after the last. A consumer of the
output topic notes when each ``live-<seq>`` is first seen.

* records lost: live records never seen in the output (must be 0; the case
  fails otherwise); duplicates (seen twice) are reported;
* partitions paused: how many input partitions had a gap of 1 s or more, and
  per restart how many of those began between its SIGTERM and the next
  restart, and how many of them the restarted worker did not own (with
  static membership: none, the others keep their partitions);
* ``seconds``: the longest processing pause — the largest gap between two
  consecutive first sightings of one input partition's records, from the
  first SIGTERM to 3 s after the last restart (at 2,000 records/s over
  ``partitions`` partitions the normal gap is ``partitions`` / 2,000 s plus
  up to one commit interval: the count store's cache forwards on commit).

The JSON line: ``streamlet_rps`` is the live records processed per second
over the restart phase, ``baseline`` is the offered load (``baseline_rps``
= its records per second), ``seconds`` the longest pause.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from typing import Any

from benchmarks.cases import CaseResult, Options
from benchmarks.cases._cluster import OutputWatcher, SteadyLoad, Worker, stop_all, wait_until
from benchmarks.cases.failover import RATE, session_seconds, start_cluster, worker_env
from benchmarks.harness import BenchError, err_console, open_broker

BASELINE = "offered-load"
DEFAULT_KEYS = 1_000_000
STANDBYS = 1
APP, INPUT, OUTPUT = "bench-rolling", "bench-rolling-in", "bench-rolling-out"
SETTLE_S = 3.0
#: a partition whose longest gap is this long counts as paused (the normal gap is ~16 ms at 32 partitions)
PAUSED_S = 1.0


def static_membership() -> bool:
    """Whether the streamlet the workers run has static membership (``STREAMLET_INSTANCE_ID``)."""
    from streamlet import config

    return any(env == "STREAMLET_INSTANCE_ID" for env, _ in config._ENV.values())


def run(opts: Options) -> CaseResult:
    t_start = time.perf_counter()
    P = opts.partitions
    static = static_membership() and os.environ.get("BENCH_ROLLING_STATIC", "1") != "0"
    env = worker_env(opts, STANDBYS)
    directory = tempfile.mkdtemp(prefix="bench-rolling-")
    restarts: list[dict[str, float]] = []
    try:
        with open_broker({INPUT: P, OUTPUT: P}, opts.broker) as broker:
            err_console.print(f"rolling-restart: {env['STREAMLET_CONFIG']}, static membership: {static}")
            workers = start_cluster(opts, broker, directory, APP, INPUT, OUTPUT, env, http=True,
                                    instance_ids=static)
            try:
                watcher = OutputWatcher(broker.bootstrap, OUTPUT, P)
                watcher.start()
                steady = SteadyLoad(broker.bootstrap, INPUT, P, RATE)
                steady.start()
                time.sleep(SETTLE_S)
                began = time.time()
                seq0 = steady.seq
                for w in workers:
                    restarts.append(_restart(w, workers))
                    time.sleep(SETTLE_S)
                ended = time.time()
                seq1 = steady.seq
                produced = steady.stop()
                lost = watcher.wait_all(produced, 120 + session_seconds(opts))
                watcher.stop()
                for w in workers:
                    w.note_rss()
            finally:
                stop_all(workers)
    finally:
        if not os.environ.get("BENCH_KEEP_LOGS"):
            shutil.rmtree(directory, ignore_errors=True)
        else:
            err_console.print(f"logs kept in {directory}")
    if lost:
        raise BenchError(f"{lost} of {produced} live records never reached the output (records lost)")
    pause, partition, at = watcher.longest_gap(P, began, ended)
    pauses = watcher.pauses(P, began, ended, PAUSED_S)
    paused = len({p for p, _, _ in pauses})
    for i, r in enumerate(restarts):  # the pauses that began between this restart's SIGTERM and the next
        until = restarts[i + 1]["term"] if i + 1 < len(restarts) else ended
        hit = {p for p, t, _ in pauses if r["term"] - 0.5 <= t < until}
        r["paused"], r["paused_others"] = len(hit), len(hit - r.pop("owned"))  # type: ignore[arg-type]
    phase_s = ended - began
    processed_rps = sum(1 for t in watcher.seen.values() if began <= t <= ended) / phase_s
    during = next((i for i, r in enumerate(restarts) if r["term"] - 0.5 <= at <= r["ready"] + SETTLE_S), None)
    details = [("state", f"{opts.records:,} records, {min(opts.keys, opts.records):,} keys, {P} partitions, "
                         f"3 workers, {STANDBYS} standby"),
               ("session.timeout.ms / static membership", f"{session_seconds(opts) * 1000:.0f} / "
                                                          f"{'yes' if static else 'no'}"),
               ("steady load", f"{RATE:,} records/s, {produced:,} live records"),
               ("records lost", "0"), ("duplicates", f"{watcher.duplicates:,}"),
               ("longest pause (one partition)", f"{pause:.2f} s (partition {partition}"
                                                 + (f", during restart {during + 1})" if during is not None else ")")),
               (f"partitions paused ≥ {PAUSED_S:.0f} s", f"{paused} of {P}"),
               ("restart phase", f"{phase_s:.1f} s, {seq1 - seq0:,} records offered, {processed_rps:,.0f} rec/s "
                                 "processed")]
    for i, r in enumerate(restarts):
        details.append((f"restart {i + 1}: SIGTERM → exit / → ready", f"{r['exit'] - r['term']:.2f} s / "
                                                                       f"{r['ready'] - r['term']:.2f} s"))
        details.append((f"restart {i + 1}: partitions paused ≥ {PAUSED_S:.0f} s",
                        f"{r['paused']} ({r['paused_others']} not the restarted worker's)"))
    if opts.broker == "embedded":
        details.append(("note", "embedded broker: the mock's group coordinator, not Kafka's; use --broker kafka"))
    return CaseResult(
        case="rolling-restart", records=opts.records, streamlet_rps=processed_rps, baseline=BASELINE,
        baseline_rps=float(RATE), peak_rss_mb=max(w.peak_rss_mb for w in workers), seconds=pause, details=details,
        extra={"partitions": P, "keys": min(opts.keys, opts.records), "records_lost": 0,
               "duplicates": watcher.duplicates, "longest_pause_s": round(pause, 3),
               "paused_partitions": paused, "live_records": produced,
               "baseline_seconds": round(phase_s, 1), "restart_phase_s": round(phase_s, 1),
               "static_membership": static, "session_timeout_ms": int(session_seconds(opts) * 1000),
               "restarts": [{"exit": round(r["exit"] - r["term"], 3), "ready": round(r["ready"] - r["term"], 3),
                             "paused": r["paused"], "paused_others": r["paused_others"]} for r in restarts],
               "total_seconds": round(time.perf_counter() - t_start, 1)},
    )


def _restart(w: Worker, workers: list[Worker], topic: str = INPUT) -> dict[str, Any]:
    """SIGTERM ``w``, wait for its exit, start it again, wait for ``/ready``; the moments (epoch seconds)
    and the partitions of ``topic`` it owned before."""
    owned = w.owned(topic)
    term = time.time()
    code = w.stop(signal.SIGTERM, 60)
    exited = time.time()
    if code != 0:
        raise BenchError(f"worker {w.name} exited {code} after SIGTERM\n{w.tail()}")
    w.start()
    wait_until(w.ready, 120, f"{w.name} to answer /ready after its restart", workers, interval=0.05)
    return {"term": term, "exit": exited, "ready": time.time(), "owned": owned}  # type: ignore[dict-item]
