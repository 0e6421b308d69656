"""``http``: what the worker's HTTP side costs the record loop (issue #16), under far more probing
than production sends.

The ``stateful`` workload (``group_by_key().aggregate(n=count, first=earliest_by_offset,
last=latest_by_offset, name="stats")``, RocksDB + changelog, no output topic; see
``benchmarks/cases/stateful.py``), run by streamlet twice in the same run, each in a fresh process:

* ``streamlet, no HTTP side`` (the baseline): ``stateful``'s streamlet side as it is;
* ``streamlet + HTTP side, no requests``: the same app with ``application_server`` set and nobody
  asking (a reference, in the details: the cost of the side being there);
* ``streamlet + HTTP side under probes``: the same app with
  ``application_server="127.0.0.1:PORT"`` (the HTTP side's thread, librdkafka statistics every
  5 s for the consumer lag, the members topic), and a **probe process** started beside the worker
  (its own interpreter: its CPU is not the worker's, but it shares the machine's cores as a
  sidecar or a kubelet would) that every 100 ms sends ``GET /health``, ``GET /ready``,
  ``GET /metrics`` and ``GET /stores/stats/KEY`` (the keys in turn), each on a new connection:
  40 requests/s, where Kubernetes probes every 10 s and Prometheus scrapes every 15 s. The worst
  case, not the common one.

``ratio`` is with / without (target ≥ 0.95: records/s not lower by more than 5%). Timing as in
``stateful``: from partition assignment until every record is processed and a final commit made
the state durable; each run's stores are read back and their counts must add up to the input.
The probe's answers are counted by endpoint and status (``probe`` in the JSON line); a 500 (a
route that crashed) fails the run.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from typing import Any

from benchmarks.cases import CaseResult, Options
from benchmarks.cases._common import Window, best, measure, summary_rows
from benchmarks.cases.stateful import INPUT, STORE, check_stored_counts, load_input, run_stateful, side_params
from benchmarks.cases.stateless import record_size
from benchmarks.harness import BenchError, check_fits, open_broker, side_entry

BASELINE = "streamlet, no HTTP side"
SIDES = {"plain": BASELINE, "idle": "streamlet + HTTP side, no requests",
         "http": "streamlet + HTTP side under probes"}
#: seconds between two rounds of the probe (/health, /ready, /metrics, /stores/stats/KEY)
PROBE_PERIOD_S = 0.1
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(opts: Options) -> CaseResult:
    t_start = time.perf_counter()
    check_fits(opts.records, opts.partitions, record_size(opts.keys), "input", opts.broker)
    with open_broker({INPUT: opts.partitions}, opts.broker) as broker:
        load_s = load_input(broker, opts)

        def params(side: str, r: int) -> dict[str, Any]:
            return {**side_params(broker, opts, f"bench-http-{side}-{r}"), "keys": opts.keys}

        def check(side: str, r: int, res: Any) -> None:
            check_stored_counts(side, res)
            probe = res.extra.get("probe", {})
            crashed = sum(n for by in probe.values() for s, n in by.items() if s == "500")
            if crashed:
                raise BenchError(f"{side}: the HTTP side answered 500 {crashed} times: {res.extra['probe']}")

        runs = measure("http", SIDES, opts.repeat, params, opts.profile_dir, check)
    b = best(runs)
    plain, idle, served = b["plain"], b["idle"], b["http"]
    rows, median_ratio = summary_rows(runs, SIDES, opts.records, "http", "plain")
    probe = served.extra.get("probe", {})
    answered = {path: ", ".join(f"{n} × {s}" for s, n in sorted(by.items())) for path, by in probe.items()}
    details = [
        ("records / partitions / keys", f"{opts.records:,} / {opts.partitions} / {opts.keys:,}"),
        ("input load", f"{load_s:.1f} s"),
        ("streamlet + HTTP side, no requests",
         f"{idle.rps:,.0f} rec/s ({idle.rps / plain.rps:.2f}× without it)"),
        ("probe rounds (every 100 ms) inside the best run's measured span",
         f"{served.extra.get('probe_rounds', 0):,}"),
        *[(f"  GET {path}", text) for path, text in sorted(answered.items())],
        *rows,
    ]
    return CaseResult(
        case="http", records=opts.records, streamlet_rps=served.rps, baseline=BASELINE,
        baseline_rps=plain.rps, peak_rss_mb=served.peak_rss_mb, seconds=served.seconds, details=details,
        extra={"partitions": opts.partitions, "baseline_seconds": round(plain.seconds, 3),
               "baseline_peak_rss_mb": round(plain.peak_rss_mb, 1), "repeat": opts.repeat,
               "median_ratio": round(median_ratio, 3), "target_ratio": 0.95,
               "idle_rps": round(idle.rps, 1), "idle_ratio": round(idle.rps / plain.rps, 3),
               "probe_period_s": PROBE_PERIOD_S,
               "probe_rounds": served.extra.get("probe_rounds", 0), "probe": probe,
               "total_seconds": round(time.perf_counter() - t_start, 1)},
    )


# -- the sides --------------------------------------------------------------------------
def _run_stateful(p: dict[str, Any], server: str | None) -> dict[str, Any]:
    window = Window()
    out, _ = run_stateful(p, "bench-http-", window=window, application_server=server)
    shift = time.monotonic() - time.perf_counter()  # the window's clock on the probe's (system-wide)
    out["window_monotonic"] = [window.t0 + shift, window.t1 + shift]
    return out


@side_entry
def side_plain(p: dict[str, Any]) -> dict[str, Any]:
    """``stateful``'s streamlet side: no ``application_server``, so no HTTP side."""
    return _run_stateful(p, None)


@side_entry
def side_idle(p: dict[str, Any]) -> dict[str, Any]:
    """The HTTP side on (its thread, the statistics, the members topic), asked nothing: what it costs
    by being there, apart from the requests."""
    return _run_stateful(p, f"127.0.0.1:{_free_port()}")


@side_entry
def side_http(p: dict[str, Any]) -> dict[str, Any]:
    """The same with the HTTP side on a free port and the probe process hitting it every 100 ms."""
    port = _free_port()
    probe = subprocess.Popen([sys.executable, "-c", f"import sys; sys.path.insert(0, {ROOT!r}); "
                              "from benchmarks.cases.http import probe_main; probe_main()",
                              str(port), str(p["keys"]), STORE],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        out = _run_stateful(p, f"127.0.0.1:{port}")
    finally:
        try:
            report, _ = probe.communicate("", timeout=30)  # stdin closed: the probe stops and reports
        except subprocess.TimeoutExpired:
            probe.kill()
            report, _ = probe.communicate()
    counts = json.loads(report.strip().splitlines()[-1]) if report.strip() else {}
    out["probe"] = counts.get("answers", {})
    t0, t1 = out.pop("window_monotonic")
    out["probe_rounds"] = sum(1 for t in counts.get("starts", []) if t0 <= t <= t1)
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the probe (its own process) ----------------------------------------------------------
def probe_main() -> None:
    """``probe PORT KEYS STORE``: every 100 ms one request to each endpoint, each on a new connection,
    until stdin closes; then one JSON line: the rounds, their start times and the answers by path
    and status (for the whole life of the worker, start-up and stop included)."""
    import http.client

    port, keys, store = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    answers: dict[str, dict[str, int]] = {}
    starts: list[float] = []  # time.monotonic() of each round
    rounds = 0

    def get(path: str, label: str) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            status = str(resp.status)
        except OSError:
            status = "no answer"  # not listening yet, or stopped
        finally:
            conn.close()
        by = answers.setdefault(label, {})
        by[status] = by.get(status, 0) + 1

    next_round = time.monotonic()
    while not stop.is_set():
        key = f"user-{rounds % keys:05d}"
        starts.append(round(time.monotonic(), 4))
        get("/health", "/health")
        get("/ready", "/ready")
        get("/metrics", "/metrics")
        get(f"/stores/{store}/{key}", f"/stores/{store}/KEY")
        rounds += 1
        next_round += PROBE_PERIOD_S
        stop.wait(max(0.0, next_round - time.monotonic()))
    sys.stdout.write(json.dumps({"rounds": rounds, "answers": answers, "starts": starts}) + "\n")
    sys.stdout.flush()
