"""Case ``scaling``: what scaling a StatefulSet of workers up and down, losing a node and a rolling deploy
cost, measured at process level (docs/kubernetes.md, "Measured times").

No Kubernetes here: each "pod" is a ``streamlet run`` process (the ``failover`` case's cluster,
``benchmarks/cases/_cluster.py``) with the environment the StatefulSet of ``deploy/k8s`` gives it:
``POD_NAME=streamlet-<i>`` and ``STREAMLET_INSTANCE_ID=auto`` (static membership from the pod name),
``STREAMLET_SHUTDOWN_GRACE_MS=25000``, ``STREAMLET_APPLICATION_SERVER`` (the HTTP side: ``/ready``), its
own state directory (its volume), ``STREAMLET_NUM_STANDBY_REPLICAS``, and Kafka's and streamlet's
defaults otherwise (``session.timeout.ms`` 45 s, commit interval 1 s) unless ``--config`` says otherwise
(``--config session.timeout.ms=10000``: the lowered timeout docs/kubernetes.md advises before a
scale-down). The app counts: ``stream(in).group_by_key().count(name="counts").to_stream().to(out)``.

One run per standby setting (``BENCH_SCALING_STANDBYS``, default ``1,0``: the ConfigMap's 1, then
none), each with a fresh application id and topics: three workers count ``records`` records over
``min(keys, records)`` keys (default 1,000,000: that many keys of state); with standbys, until every
standby caught up. Then a steady load (2,000 records/s, ``live-<seq>`` to partition ``seq %
partitions``) and a consumer of the output noting when each live record is first counted, and in turn:

1. **scale-up 3 → 4**: ``streamlet-3`` starts on an empty state dir; seconds until it owns partitions
   and ``GET /ready`` answers 200 (its stores restored), the partitions it got, the changelog records it
   restored, the longest processing pause of any partition from its start to 3 s after ready;
2. **scale-down 4 → 3**: ``streamlet-3`` gets SIGTERM (a static member: it commits and exits without
   leaving the group); seconds until each of its partitions counts a record produced after the SIGTERM
   on one of the three others (the group waits ``session.timeout.ms`` for it), until their assignment,
   changelog records the others restored for them, the longest pause;
3. **rolling deploy**: ``streamlet-2``, ``-1``, ``-0`` in turn (the StatefulSet's order) get SIGTERM,
   exit, start again on their state dir, answer ``/ready`` 200, and the next one goes at once; per pod
   SIGTERM → exit and SIGTERM → ready, the whole roll (first SIGTERM → last ready), the longest pause
   and how many partitions paused ≥ 1 s (``rolling_restart._restart`` does each pod);
4. **node loss**: the worker owning the most partitions gets SIGKILL and is not restarted; seconds until
   each of its partitions counts a post-kill record elsewhere, until their assignment, records
   restored (how many partitions restored only a tail: a standby's copy, or the store still on the pod's
   disk from an earlier owning).

Each phase also reports the longest pause of the partitions that stayed where they were (``kept``: not
the 4th pod's, not the killed pod's) and how many of them paused ≥ 1 s.

At the end every live record must have been counted (records lost: 0, else the case fails);
duplicates (at-least-once redelivery after the SIGKILL) are reported. The JSON line: ``seconds`` is the
first run's scale-up time to ready; ``streamlet_rps`` the live records counted per second over the
phases, ``baseline`` the offered load.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from typing import Any

from benchmarks.cases import CaseResult, Options
from benchmarks.cases._cluster import (OutputWatcher, SteadyLoad, Worker, end_offsets, stop_all, takeover,
                                       wait_processing, wait_standbys_caught_up, wait_until)
from benchmarks.cases.failover import RATE, start_cluster
from benchmarks.cases.rolling_restart import _restart
from benchmarks.harness import BenchError, err_console, open_broker

BASELINE = "offered-load"
DEFAULT_KEYS = 1_000_000
SETTLE_S = 3.0
PAUSED_S = 1.0
#: pauses are looked for from this long before each phase's event (the last sighting before it counts)
LEAD_S = 1.0
POD = "streamlet-{}"


def standby_settings() -> list[int]:
    """``BENCH_SCALING_STANDBYS`` (default ``1,0``), in its order: one run per setting."""
    raw = os.environ.get("BENCH_SCALING_STANDBYS", "1,0")
    try:
        chosen = list(dict.fromkeys(int(x) for x in raw.split(",") if x.strip()))
    except ValueError:
        raise BenchError(f"BENCH_SCALING_STANDBYS={raw!r} is not a comma-separated list of integers") from None
    if not chosen or min(chosen) < 0:
        raise BenchError(f"BENCH_SCALING_STANDBYS={raw!r}: give one or more standby counts >= 0")
    return chosen


def session_ms(opts: Options) -> int:
    """session.timeout.ms the workers run with: ``--config``'s, else streamlet's default for the broker."""
    from streamlet.runtime.clients import CONSUMER_DEFAULTS, MOCK_BROKER_DEFAULTS

    default = {**CONSUMER_DEFAULTS, **(MOCK_BROKER_DEFAULTS if opts.broker == "embedded" else {})}
    return int(opts.client_config.get("session.timeout.ms", default["session.timeout.ms"]))


def pod_env(opts: Options, standbys: int) -> dict[str, str]:
    """The environment deploy/k8s/statefulset.yaml gives every pod (POD_NAME is per pod)."""
    env = {"STREAMLET_NUM_STANDBY_REPLICAS": str(standbys), "STREAMLET_SHUTDOWN_GRACE_MS": "25000",
           "STREAMLET_INSTANCE_ID": "auto"}
    if opts.client_config:
        env["STREAMLET_CONFIG"] = ",".join(f"{k}={v}" for k, v in opts.client_config.items())
    return env


class Run:
    """One cluster of pods under a steady load, and its phases."""

    def __init__(self, opts: Options, broker: Any, directory: str, standbys: int) -> None:
        self.opts, self.broker, self.directory, self.standbys = opts, broker, directory, standbys
        self.P = opts.partitions
        self.app = f"bench-scaling-{standbys}"
        self.input, self.output = f"bench-scaling-in-{standbys}", f"bench-scaling-out-{standbys}"
        self.changelog = f"{self.app}-counts-changelog"
        self.env = pod_env(opts, standbys)
        self.deadline_s = 120 + session_ms(opts) / 1000 + opts.records / 2000

    def pause(self, start: float, end: float, moved: list[int]) -> dict[str, Any]:
        """Around [start, end] (from 1 s before ``start``: a partition that stops at ``start`` has its last
        sighting before it): the longest gap of one partition, how many partitions paused ≥ 1 s, and the
        same for the partitions that did not move (not in ``moved``)."""
        gaps = self.watcher.gaps(self.P, start - LEAD_S, end)
        seconds, partition, _ = max(gaps.values(), default=(0.0, -1, 0.0))
        kept = [g for p, g in gaps.items() if p not in moved]
        paused = {p for p, _, _ in self.watcher.pauses(self.P, start - LEAD_S, end, PAUSED_S)}
        return {"pause_s": seconds, "pause_partition": partition, "paused": len(paused),
                "pause_kept_s": max((g[0] for g in kept), default=0.0), "paused_kept": len(paused - set(moved))}

    def measure(self) -> dict[str, Any]:
        err_console.print(f"scaling, {self.standbys} standby: {self.env}")
        self.pods = start_cluster(self.opts, self.broker, self.directory, self.app, self.input, self.output,
                                  self.env, http=True, env_of=lambda i: {"POD_NAME": POD.format(i)})
        everyone = self.everyone = list(self.pods)
        try:
            if self.standbys:
                wait_standbys_caught_up(self.broker.bootstrap, self.changelog, self.P, self.pods,
                                        300 + self.opts.records / 2000)
            self.watcher = OutputWatcher(self.broker.bootstrap, self.output, self.P)
            self.watcher.start()
            self.steady = SteadyLoad(self.broker.bootstrap, self.input, self.P, RATE)
            self.steady.start()
            time.sleep(SETTLE_S)
            began = time.time()
            up = self.scale_up()
            down = self.scale_down()
            roll = self.rolling_deploy()
            loss = self.node_loss()
            ended = time.time()
            produced = self.steady.stop()
            lost = self.watcher.wait_all(produced, 120 + session_ms(self.opts) / 1000)
            self.watcher.stop()
            for w in everyone:
                w.note_rss()
        finally:
            stop_all(everyone)
        if lost:
            raise BenchError(f"{lost} of {produced} live records never reached the output (records lost)")
        processed = sum(1 for t in self.watcher.seen.values() if began <= t <= ended)
        return {"standbys": self.standbys, "up": up, "down": down, "roll": roll, "loss": loss,
                "live_records": produced, "records_lost": 0, "duplicates": self.watcher.duplicates,
                "processed_rps": processed / (ended - began), "peak_rss_mb": max(w.peak_rss_mb for w in everyone)}

    def scale_up(self) -> dict[str, Any]:
        """Start streamlet-3 on an empty state dir; until it owns partitions and answers /ready 200."""
        start = time.time()
        w = self.fourth = Worker(self.directory, self.pods[0].script, self.broker.bootstrap, f"{self.app}-w3",
                                 {**self.env, "POD_NAME": POD.format(3)}, http=True)
        self.everyone.append(w)
        wait_until(lambda: w.owned(self.input) and w.ready(), self.deadline_s,
                   f"{w.name} to own partitions and answer /ready", self.pods + [w], interval=0.05)
        ready = time.time()
        owned = sorted(w.owned(self.input))
        assigned = w.assigned_at(self.input, start)
        time.sleep(SETTLE_S)
        return {"ready_s": ready - start, "assigned_s": max(assigned.values(), default=ready) - start,
                "partitions": len(owned), "restored": sum(w.restored(start).values()),
                **self.pause(start, time.time(), owned)}

    def scale_down(self) -> dict[str, Any]:
        """SIGTERM streamlet-3; until its partitions count new records on the others."""
        w, others = self.fourth, self.pods
        moved = sorted(w.owned(self.input))
        term = time.time()
        code = w.stop(signal.SIGTERM, 60)
        exited, seq = time.time(), self.steady.seq  # records from seq on: only the others can count them
        if code != 0:
            raise BenchError(f"{w.name} exited {code} after SIGTERM\n{w.tail()}")
        first = wait_processing(self.watcher, moved, seq, self.P, self.deadline_s,
                                f"partitions {moved} of the removed pod to process on the others", others)
        time.sleep(SETTLE_S)
        assigned, restored = takeover(others, self.input, term)
        return {"exit_s": exited - term, "assigned_s": max((assigned.get(p, exited) for p in moved),
                                                            default=exited) - term,
                "processing_s": max(first.values()) - term, "partitions": len(moved),
                "restored": sum(restored.get(p, 0) for p in moved), **self.pause(term, time.time(), moved)}

    def rolling_deploy(self) -> dict[str, Any]:
        """streamlet-2, -1, -0 in turn: SIGTERM, exit, start, /ready 200; the next at once."""
        restarts = [_restart(w, self.pods, self.input) for w in reversed(self.pods)]
        first, last = restarts[0]["term"], restarts[-1]["ready"]
        time.sleep(SETTLE_S)
        return {"pods": [{"exit_s": r["exit"] - r["term"], "ready_s": r["ready"] - r["term"]} for r in restarts],
                "total_s": last - first, **self.pause(first, last + SETTLE_S, list(range(self.P)))}

    def node_loss(self) -> dict[str, Any]:
        """SIGKILL the pod owning the most partitions, not restarted; until they count records elsewhere."""
        victim = max(self.pods, key=lambda w: len(w.owned(self.input)))
        survivors = [w for w in self.pods if w is not victim]
        moved = sorted(victim.owned(self.input))
        victim.stop(signal.SIGKILL)
        killed, seq = time.time(), self.steady.seq  # records from seq on: only the survivors can count them
        ends = end_offsets(self.broker.bootstrap, self.changelog, self.P)
        first = wait_processing(self.watcher, moved, seq, self.P, self.deadline_s,
                                f"partitions {moved} of the killed pod to process elsewhere", survivors)
        time.sleep(SETTLE_S)
        assigned, restored = takeover(survivors, self.input, killed)
        return {"pod": POD.format(self.pods.index(victim)), "partitions": len(moved),
                "assigned_s": max((assigned.get(p, killed) for p in moved), default=killed) - killed,
                "processing_s": max(first.values()) - killed,
                "restored": sum(restored.get(p, 0) for p in moved),
                "changelog_records": sum(ends[p] for p in moved),
                # a partition whose new owner restored less than half its changelog: it took over a standby's
                # copy, or a store of the partition still on its disk from an earlier owning (a checkpoint)
                "from_standby": sum(1 for p in moved if restored.get(p, 0) < ends[p] // 2),
                **self.pause(killed, time.time(), moved)}


def rows(res: dict[str, Any], P: int) -> list[tuple[str, str]]:
    """The readable table's rows of one run."""
    s = f"{res['standbys']} standby"
    up, down, roll, loss = res["up"], res["down"], res["roll"], res["loss"]
    pods = ", ".join(f"{p['exit_s']:.2f}/{p['ready_s']:.2f}" for p in roll["pods"])
    return [
        (f"{s}: scale-up 3→4: start → /ready", f"{up['ready_s']:.2f} s (assigned at {up['assigned_s']:.2f} s)"),
        (f"{s}: scale-up: partitions / restored", f"{up['partitions']} of {P} / {up['restored']:,} records"),
        (f"{s}: scale-up: longest pause, all / kept", f"{up['pause_s']:.2f} s / {up['pause_kept_s']:.2f} s "
                                                      f"({up['paused']} / {up['paused_kept']} partitions ≥ 1 s)"),
        (f"{s}: scale-down 4→3: SIGTERM → exit", f"{down['exit_s']:.2f} s"),
        (f"{s}: scale-down: SIGTERM → processing elsewhere", f"{down['processing_s']:.2f} s (assigned at "
                                                             f"{down['assigned_s']:.2f} s, {down['partitions']} "
                                                             f"partitions, {down['restored']:,} restored)"),
        (f"{s}: scale-down: longest pause, all / kept",
         f"{down['pause_s']:.2f} s / {down['pause_kept_s']:.2f} s ({down['paused']} / {down['paused_kept']} "
         "partitions ≥ 1 s)"),
        (f"{s}: rolling deploy, per pod SIGTERM → exit/ready", pods + " s"),
        (f"{s}: rolling deploy: whole roll / longest pause", f"{roll['total_s']:.2f} s / {roll['pause_s']:.2f} s "
                                                             f"({roll['paused']} partitions ≥ 1 s)"),
        (f"{s}: node loss: SIGKILL → processing elsewhere", f"{loss['processing_s']:.2f} s (assigned at "
                                                            f"{loss['assigned_s']:.2f} s, {loss['partitions']} "
                                                            f"partitions)"),
        (f"{s}: node loss: restored", f"{loss['restored']:,} of {loss['changelog_records']:,} ({loss['from_standby']} "
                                      "partitions only a tail: a standby or an old local copy)"),
        (f"{s}: node loss: longest pause, all / kept",
         f"{loss['pause_s']:.2f} s / {loss['pause_kept_s']:.2f} s ({loss['paused']} / {loss['paused_kept']} "
         "partitions ≥ 1 s)"),
        (f"{s}: live records / lost / duplicates", f"{res['live_records']:,} / 0 / {res['duplicates']:,}"),
    ]


def rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v) for v in value]
    return value


def run(opts: Options) -> CaseResult:
    t_start = time.perf_counter()
    standbys = standby_settings()
    topics: dict[str, int] = {}
    for s in standbys:
        topics[f"bench-scaling-in-{s}"] = topics[f"bench-scaling-out-{s}"] = opts.partitions
    directory = tempfile.mkdtemp(prefix="bench-scaling-")
    try:
        with open_broker(topics, opts.broker) as broker:
            results = [Run(opts, broker, directory, s).measure() for s in standbys]
    finally:
        if not os.environ.get("BENCH_KEEP_LOGS"):
            shutil.rmtree(directory, ignore_errors=True)
        else:
            err_console.print(f"logs kept in {directory}")
    keys = min(opts.keys, opts.records)
    details = [("state", f"{opts.records:,} records, {keys:,} keys, {opts.partitions} partitions, 3 pods (+1)"),
               ("session.timeout.ms / static membership", f"{session_ms(opts)} / yes (streamlet-<i>)"),
               ("steady load", f"{RATE:,} records/s"), ("records lost", "0")]
    for res in results:
        details += rows(res, opts.partitions)
    if opts.broker == "embedded":
        details.append(("note", "embedded broker: the mock's group coordinator, not Kafka's; use --broker kafka"))
    first = results[0]
    return CaseResult(
        case="scaling", records=opts.records, streamlet_rps=first["processed_rps"], baseline=BASELINE,
        baseline_rps=float(RATE), peak_rss_mb=max(r["peak_rss_mb"] for r in results),
        seconds=first["up"]["ready_s"], details=details,
        extra={"partitions": opts.partitions, "keys": keys, "session_timeout_ms": session_ms(opts),
               "records_lost": 0, "runs": [rounded({k: v for k, v in r.items() if k != "peak_rss_mb"})
                                           for r in results],
               "total_seconds": round(time.perf_counter() - t_start, 1)},
    )
