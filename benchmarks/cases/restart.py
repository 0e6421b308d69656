"""Case ``restart``: seconds from process start to the first new record, with a kept state directory.

Data: the ``stateless`` data set. First (not measured) the ``stateful``
topology runs over all of it — ``records`` records, the aggregation's 32
RocksDB stores and changelog filled, offsets committed — and stops. Then,
for each measured run, one new record is produced to the input and a fresh
process starts the same app on the same state directory; the clock runs
from just before the process is spawned until that record has been
processed (the aggregation updated). Target: under 2 s.

Sides:

* ``raw-consume`` (the baseline, the floor): a fresh process that imports
  confluent-kafka, subscribes with a group whose offsets are at the end,
  and receives the new record: interpreter, client, group join.
* ``streamlet``: ``App(...)`` + the aggregation + ``app.run()``, timed in
  phases: interpreter and imports, building the app, ``run()`` up to the
  partition assignment (topic checks, clients, group join), the stores'
  opening and restore (the checkpoint is at the changelog's end: one round
  trip per partition) on the state updater's thread, beside the first
  record: the record's task is active as soon as its own stores are ready.

The group join is the broker's, not the worker's, and is not counted in
``seconds`` (it is reported as ``join_s``, and the full figure as
``wall_seconds``): librdkafka's mock broker completes the rejoin of a group
whose previous member left only after that member's ``session.timeout.ms``
minus 1 s (44 s with streamlet's default of 45 s; this case sets 6 s, the
smallest a Kafka broker accepts by default, on both sides); a Kafka broker
waits ``group.initial.rebalance.delay.ms`` (3 s by default, often 0 in
development) before the first assignment of an empty group.

``*_rps`` in the JSON line are restarts per second (1 / seconds), so that
``ratio`` = baseline seconds / streamlet seconds (higher is better);
``seconds`` is the figure that counts.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from typing import Any

from benchmarks.cases import CaseResult, Options
from benchmarks.cases._common import first_assignment
from benchmarks.cases.join import commit_table_end
from benchmarks.cases.stateful import stateful_app
from benchmarks.cases.stateless import make_records, record_size
from benchmarks.harness import open_broker, SideResult, check_fits, err_console, load, run_side, side_entry

BASELINE = "raw-consume"
INPUT = "bench-input"
APP = "bench-restart"
TARGET_S = 2.0
SIDES = {"raw": "raw-consume", "streamlet": "streamlet"}
PHASES = (("imports_s", "interpreter + imports"), ("build_s", "App + topology"),
          ("start_s", "run() → subscribed (topic checks, clients)"),
          ("join_s", "group join: subscribed → assigned (the broker's; not counted)"),
          ("first_record_s", "assigned → first new record processed"),
          ("restore_s", "assigned → every store opened + restored (on the state updater, beside processing)"))
#: the embedded broker (librdkafka's mock) completes a rejoin of a group whose member left only after
#: ``session.timeout.ms`` - 1 s: 6 s (the smallest a Kafka broker accepts by default) keeps that at 5 s
SESSION_TIMEOUT_MS = 6000


def _produce_one(bootstrap: str, i: int) -> None:
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random"})
    p.produce(INPUT, b'{"order": -1, "user": "user-00001", "amount": 1, "currency": "EUR", "ts": 0, '
                     b'"region": "eu"}', f"user-{i % 10_000:05d}".encode())
    p.flush(10)


def run(opts: Options) -> CaseResult:
    t_start = time.perf_counter()
    check_fits(opts.records, opts.partitions, record_size(opts.keys), "input", opts.broker)
    state_dir = tempfile.mkdtemp(prefix="bench-restart-")
    runs: dict[str, list[SideResult]] = {side: [] for side in SIDES}
    try:
        with open_broker({INPUT: opts.partitions}, opts.broker) as broker:
            data, _ = make_records(opts.records, opts.keys)
            load_s = load(broker.bootstrap, INPUT, data, opts.records)
            broker.check_complete(INPUT, opts.records)
            config = {"session.timeout.ms": SESSION_TIMEOUT_MS, **opts.client_config}
            base = {"bootstrap": broker.bootstrap, "input": INPUT, "partitions": opts.partitions,
                    "state_dir": state_dir, "config": config}
            prep = run_side("restart", "prepare", {**base, "records": opts.records, "group": APP})
            err_console.print(f"loaded {opts.records:,} records in {load_s:.1f} s; the app processed them in "
                              f"{prep.seconds:.1f} s (not measured)")
            for r in range(opts.repeat):
                for side in (list(SIDES) if r % 2 == 0 else list(SIDES)[::-1]):
                    group = APP if side == "streamlet" else f"bench-raw-{r}"
                    if side == "raw":
                        commit_table_end(broker.bootstrap, group, INPUT, opts.partitions)
                    _produce_one(broker.bootstrap, r)
                    params = {**base, "records": 1, "group": group, "spawned": time.time()}
                    profile = f"{opts.profile_dir}/restart-{side}-{r}.speedscope.json" if opts.profile_dir else None
                    res = run_side("restart", side, params, profile=profile)
                    runs[side].append(res)
                    err_console.print(f"  run {r + 1}/{opts.repeat} {SIDES[side]:<12} {res.seconds:.3f} s to the "
                                      f"first new record without the group join ({res.extra['join_s']:.3f} s; "
                                      f"peak RSS {res.peak_rss_mb:.0f} MB)")
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)
    raw = min(runs["raw"], key=lambda s: s.seconds)
    sl = min(runs["streamlet"], key=lambda s: s.seconds)
    details = [
        ("records processed before the restart", f"{opts.records:,} ({opts.partitions} partitions, "
                                                  f"{opts.keys:,} keys)"),
        ("target", f"< {TARGET_S:.0f} s: streamlet {sl.seconds:.3f} s"),
    ]
    for key, label in PHASES:
        if key in sl.extra:
            details.append((f"streamlet: {label}", f"{sl.extra[key]:.3f} s"))
    details.append(("streamlet: wall time, group join included", f"{sl.extra.get('wall_seconds', 0):.3f} s"))
    for key in ("imports_s", "start_s", "join_s", "first_record_s"):
        details.append((f"raw-consume: {dict(PHASES)[key]}", f"{raw.extra.get(key, 0):.3f} s"))
    if opts.repeat > 1:
        for side, label in SIDES.items():
            details.append((f"all runs, {label}", ", ".join(f"{s.seconds:.3f} s" for s in runs[side])))
    return CaseResult(
        case="restart", records=opts.records, streamlet_rps=1 / sl.seconds, baseline=BASELINE,
        baseline_rps=1 / raw.seconds, peak_rss_mb=sl.peak_rss_mb, seconds=sl.seconds, details=details,
        extra={"partitions": opts.partitions, "baseline_seconds": round(raw.seconds, 3), "target_seconds": TARGET_S,
               "phases": {k: sl.extra[k] for k, _ in PHASES if k in sl.extra},
               "wall_seconds": sl.extra.get("wall_seconds"), "repeat": opts.repeat,
               "total_seconds": round(time.perf_counter() - t_start, 1)},
    )


# -- the sides --------------------------------------------------------------------------
@side_entry
def side_prepare(p: dict[str, Any]) -> dict[str, Any]:
    """Not measured: the stateful app over every record, its state kept in ``state_dir``."""
    from benchmarks.cases._common import Window, run_app_until

    app = stateful_app(p, p["state_dir"])
    return run_app_until(app, p["records"], Window(), finish_in_runner=True)


@side_entry
def side_raw(p: dict[str, Any]) -> dict[str, Any]:
    """The floor: a plain consumer in a fresh process receives the new record."""
    spawned = p["spawned"]
    from benchmarks.cases._common import raw_clients

    imported = time.time()
    marks: dict[str, float] = {}
    consumer, producer, _ = raw_clients(p, on_assign=lambda c, parts: marks.setdefault("assigned", time.time()))
    subscribed = time.time()
    while True:
        msgs = [m for m in consumer.consume(100, 0.05) if m.error() is None]
        if msgs:
            break
    first = time.time()
    consumer.close()
    join = marks["assigned"] - subscribed
    return {"records": 1, "seconds": first - spawned - join, "wall_seconds": round(first - spawned, 3),
            "imports_s": round(imported - spawned, 3), "start_s": round(subscribed - imported, 3),
            "join_s": round(join, 3), "first_record_s": round(first - marks["assigned"], 3)}


@side_entry
def side_streamlet(p: dict[str, Any]) -> dict[str, Any]:
    """The app on its kept state directory, until the new record is processed."""
    spawned = p["spawned"]
    import importlib
    import logging
    import threading

    importlib.import_module("streamlet")  # the package's import, timed apart from building the app

    imported = time.time()
    app = stateful_app(p, p["state_dir"])
    built = time.time()
    marks: dict[str, float] = {}

    class _Restored(logging.Handler):  # the summary line of each store partition restored
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith("store ") and " ready: " in record.getMessage():
                marks["restored"] = time.time()

    logging.getLogger("streamlet.state").addHandler(_Restored(logging.INFO))
    logging.getLogger("streamlet.state").setLevel(logging.INFO)

    def watch() -> None:
        while app._runner is None or app._runner.tasks is None:  # tasks: made just before subscribe()
            time.sleep(0.0005)
        marks["subscribed"] = time.time()
        runner = app._runner
        first_assignment(runner).wait()
        marks["assigned"] = time.time()
        track = runner.committer.track_positions

        def track_and_check(positions: Any) -> None:
            track(positions)
            if runner.processed >= 1 and "first" not in marks:
                marks["first"] = time.time()
                app.stop()

        runner.committer.track_positions = track_and_check

    threading.Thread(target=watch, daemon=True).start()
    app.run()
    first, subscribed, assigned = marks["first"], marks["subscribed"], marks["assigned"]
    restored = marks.get("restored", assigned)  # the last store ready (the app may stop before)
    join = assigned - subscribed
    return {"records": 1, "seconds": first - spawned - join, "wall_seconds": round(first - spawned, 3),
            "imports_s": round(imported - spawned, 3), "build_s": round(built - imported, 3),
            "start_s": round(subscribed - built, 3), "join_s": round(join, 3),
            "restore_s": round(restored - assigned, 3), "first_record_s": round(first - assigned, 3)}
