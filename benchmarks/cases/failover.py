"""Case ``failover``: seconds from SIGKILL of a worker until its partitions process again elsewhere.

Three ``streamlet run`` workers of a counting app
(``stream(input).group_by_key().count(name="counts").to_stream().to(output)``,
RocksDB + changelog, commit interval 100 ms, ``session.timeout.ms=6000`` and
``heartbeat.interval.ms=500`` unless ``--config`` says otherwise) count
``records`` records over ``min(keys, records)`` keys (default for this case:
1,000,000 records, one per key: 1,000,000 keys of state). Run twice on the
same broker, with a fresh application id, input and output topic each time:
``num_standby_replicas=0`` (the baseline) and ``=1``.

Each run: the workers own partitions; the state is loaded; wait until the
group's committed offsets are the input's end (and, with a standby, until
every changelog partition's standby logged "caught up" at the changelog's
end); a steady load starts (2,000 records/s, record ``seq`` to partition
``seq % partitions``, key ``live-<seq>``) with a consumer of the output topic
noting when each ``live-<seq>`` is first seen; 3 s later the worker owning
the most partitions is SIGKILLed. Measured, for the partitions it owned:

* ``seconds`` (kill → processing): from the SIGKILL until, for every one of
  them, the first record produced after the kill is seen in the output (the
  worst partition);
* kill → assigned: until a survivor's log says ``assigned`` for the last of
  them — the group noticing (``session.timeout.ms``) and rebalancing;
* assigned → processing: the worst partition's time from its assignment to
  its first post-kill output — the restore (0 standbys: the whole changelog
  partition; 1 standby: the tail) plus up to one commit interval (the count
  store's cache forwards on commit);
* changelog records restored by the survivors for those partitions, and how
  many of them restored only a tail (``from_standby``: the group's assignor —
  cooperative-sticky — gave the partition to the survivor holding its
  standby; it does not know where standbys are, docs/architecture.md
  "Standby replicas", so with 3 workers and 1 standby about half land there).

``BENCH_FAILOVER_STANDBYS=0,1,2`` adds runs with more standbys (with 2, every
survivor holds a standby of every victim partition).

Afterwards every live record must appear in the output (none lost). The
JSON line: ``*_rps`` are 1 / seconds (so ``ratio`` = 0-standby seconds /
1-standby seconds), ``seconds`` is the 1-standby figure. On the embedded
broker (librdkafka's mock) the group coordinator is not Kafka's: the
figures are its, not meaningful; use ``--broker kafka``.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from typing import Any, Callable

from benchmarks.cases import CaseResult, Options
from benchmarks.cases._cluster import (OutputWatcher, SteadyLoad, Worker, end_offsets, stop_all, takeover,
                                       wait_caught_up, wait_processing, wait_standbys_caught_up, wait_until,
                                       write_script)
from benchmarks.harness import BenchError, err_console, load, open_broker

BASELINE = "0-standbys"
#: default --keys of this case: 1,000,000 keys of state (the run uses min(keys, records))
DEFAULT_KEYS = 1_000_000
RATE = 2_000
WORKERS = 3
TARGET_S = 2.0
CLIENT_CONFIG = {"session.timeout.ms": "6000", "heartbeat.interval.ms": "500"}


def state_records(records: int, keys: int):
    value = b'{"n": 1}'
    for i in range(records):
        yield f"k{i % keys:07d}".encode(), value


def worker_env(opts: Options, standbys: int) -> dict[str, str]:
    config = {**CLIENT_CONFIG, **{k: str(v) for k, v in opts.client_config.items()}}
    env = {"STREAMLET_NUM_STANDBY_REPLICAS": str(standbys), "STREAMLET_COMMIT_INTERVAL_MS": "100",
           "STREAMLET_CONFIG": ",".join(f"{k}={v}" for k, v in config.items())}
    assignor = os.environ.get("BENCH_TASK_ASSIGNOR")  # "streamlet": streamlet's own assignor (KIP-441)
    if assignor:
        env["STREAMLET_TASK_ASSIGNOR"] = assignor
    return env


def start_cluster(opts: Options, broker: Any, directory: str, app: str, input_topic: str, output: str,
                  env: dict[str, str], http: bool = False, instance_ids: bool = False,
                  env_of: Callable[[int], dict[str, str]] | None = None) -> list[Worker]:
    """Three workers, each owning input partitions, the state loaded and committed. ``http``: each with its
    HTTP side; ``instance_ids``: each with ``STREAMLET_INSTANCE_ID`` = its name (static membership);
    ``env_of(i)``: more environment for worker ``i``."""
    script = write_script(directory, app, input_topic, output)
    workers = [Worker(directory, script, broker.bootstrap, f"{app}-w{i}",
                      {**env, **({"STREAMLET_INSTANCE_ID": f"{app}-w{i}"} if instance_ids else {}),
                       **(env_of(i) if env_of else {})}, http)
               for i in range(WORKERS)]
    P = opts.partitions
    try:
        wait_until(lambda: all(w.owned(input_topic) for w in workers)
                   and len(set().union(*(w.owned(input_topic) for w in workers))) == P,
                   120, "every worker to own input partitions", workers)
        keys = min(opts.keys, opts.records)
        load_s = load(broker.bootstrap, input_topic, state_records(opts.records, keys), opts.records,
                      label=f"{keys:,} keys of state:")
        t0 = time.perf_counter()
        wait_caught_up(broker.bootstrap, app, input_topic, P, 300 + opts.records / 1000, workers)
        err_console.print(f"  loaded in {load_s:.1f} s, processed {time.perf_counter() - t0:.1f} s later")
    except BaseException:
        stop_all(workers)
        raise
    return workers


def one_run(opts: Options, broker: Any, directory: str, standbys: int, run: int) -> dict[str, Any]:
    app, input_topic, output = f"bench-failover-{run}", f"bench-failover-in-{run}", f"bench-failover-out-{run}"
    P = opts.partitions
    env = worker_env(opts, standbys)
    err_console.print(f"failover, {standbys} standby: {env['STREAMLET_CONFIG']}")
    workers = start_cluster(opts, broker, directory, app, input_topic, output, env)
    try:
        changelog = f"{app}-counts-changelog"
        if standbys:
            wait_standbys_caught_up(broker.bootstrap, changelog, P, workers, 300 + opts.records / 2000)
        watcher = OutputWatcher(broker.bootstrap, output, P)
        watcher.start()
        steady = SteadyLoad(broker.bootstrap, input_topic, P, RATE)
        steady.start()
        time.sleep(3.0)
        victim = max(workers, key=lambda w: len(w.owned(input_topic)))
        victims = sorted(victim.owned(input_topic))
        survivors = [w for w in workers if w is not victim]
        for w in survivors:
            w.note_rss()
        victim.stop(signal.SIGKILL)
        killed = time.time()
        kill_seq = steady.seq
        ends = end_offsets(broker.bootstrap, changelog, P)  # the state the victims' tasks had at the kill
        deadline_s = 60 + int(session_seconds(opts)) + opts.records / 2000

        first = wait_processing(watcher, victims, kill_seq, P, deadline_s,
                                f"partitions {victims} to process after the SIGKILL", survivors)
        time.sleep(1.0)
        produced = steady.stop()
        lost = watcher.wait_all(produced, 120)
        watcher.stop()
        if lost:
            raise BenchError(f"{lost} of {produced} live records never reached the output")
        assigned, restored = takeover(survivors, input_topic, killed)
        missing = [p for p in victims if p not in assigned]
        if missing:
            raise BenchError(f"no survivor logged the assignment of partitions {missing}")
        for w in survivors:
            w.note_rss()
    finally:
        stop_all(workers)
    return {"standbys": standbys, "seconds": max(first.values()) - killed,
            "kill_to_assigned_s": max(assigned[p] for p in victims) - killed,
            "assigned_to_processing_s": max(first[p] - assigned[p] for p in victims),
            "victim_partitions": len(victims), "restored": sum(restored.get(p, 0) for p in victims),
            # partitions whose new active task restored only a tail: it took over a (caught-up) standby
            "from_standby": sum(1 for p in victims if restored.get(p, 0) < ends[p] // 2),
            "changelog_records": sum(ends[p] for p in victims), "live_records": produced,
            "duplicates": watcher.duplicates, "peak_rss_mb": max(w.peak_rss_mb for w in survivors)}


def standby_settings() -> list[int]:
    """The num_standby_replicas runs: 0 and 1, and more from ``BENCH_FAILOVER_STANDBYS`` (e.g. ``0,1,2``)."""
    raw = os.environ.get("BENCH_FAILOVER_STANDBYS", "0,1")
    try:
        chosen = sorted({0, 1, *(int(x) for x in raw.split(",") if x.strip())})
    except ValueError:
        raise BenchError(f"BENCH_FAILOVER_STANDBYS={raw!r} is not a comma-separated list of integers") from None
    return chosen


def session_seconds(opts: Options) -> float:
    """session.timeout.ms in force, in seconds."""
    return float({**CLIENT_CONFIG, **opts.client_config}["session.timeout.ms"]) / 1000


def run(opts: Options) -> CaseResult:
    t_start = time.perf_counter()
    standbys = standby_settings()
    topics: dict[str, int] = {}
    for r in standbys:
        topics[f"bench-failover-in-{r}"] = opts.partitions
        topics[f"bench-failover-out-{r}"] = opts.partitions
    directory = tempfile.mkdtemp(prefix="bench-failover-")
    try:
        with open_broker(topics, opts.broker) as broker:
            results = {s: one_run(opts, broker, directory, s, s) for s in standbys}
    finally:
        if not os.environ.get("BENCH_KEEP_LOGS"):
            shutil.rmtree(directory, ignore_errors=True)
        else:
            err_console.print(f"logs kept in {directory}")
    zero, one = results[0], results[1]
    session = session_seconds(opts)
    details = [("state", f"{opts.records:,} records, {min(opts.keys, opts.records):,} keys, "
                         f"{opts.partitions} partitions, {WORKERS} workers"),
               ("session.timeout.ms", f"{session * 1000:.0f}"),
               ("steady load", f"{RATE:,} records/s")]
    for res in results.values():
        label = f"{res['standbys']} standby"
        details += [(f"{label}: kill → processing", f"{res['seconds']:.2f} s"),
                    (f"{label}: kill → assigned (group noticed)", f"{res['kill_to_assigned_s']:.2f} s"),
                    (f"{label}: assigned → processing", f"{res['assigned_to_processing_s']:.2f} s"),
                    (f"{label}: changelog records restored", f"{res['restored']:,} of {res['changelog_records']:,} "
                                                             f"({res['victim_partitions']} partitions, "
                                                             f"{res['from_standby']} from a standby)")]
    details.append(("target (1 standby, assigned → processing)",
                    f"< {TARGET_S:.0f} s: {one['assigned_to_processing_s']:.2f} s"))
    if opts.broker == "embedded":
        details.append(("note", "embedded broker: the mock's group coordinator, not Kafka's; use --broker kafka"))
    keys = ("seconds", "kill_to_assigned_s", "assigned_to_processing_s", "restored", "changelog_records",
            "victim_partitions", "from_standby", "live_records", "duplicates")
    return CaseResult(
        case="failover", records=opts.records, streamlet_rps=1 / one["seconds"], baseline=BASELINE,
        baseline_rps=1 / zero["seconds"], peak_rss_mb=max(r["peak_rss_mb"] for r in results.values()),
        seconds=one["seconds"], details=details,
        extra={"partitions": opts.partitions, "keys": min(opts.keys, opts.records),
               "session_timeout_ms": int(session * 1000), "baseline_seconds": round(zero["seconds"], 3),
               **{f"standby_{s}": {k: round(res[k], 3) for k in keys} for s, res in results.items()},
               "target_seconds": TARGET_S, "total_seconds": round(time.perf_counter() - t_start, 1)},
    )
