"""Case ``eos``: the throughput of exactly-once against at-least-once, in the same run (issue #15).

Real Kafka only (``--broker kafka``): the embedded broker refuses
``guarantee="exactly_once"``. Data: the ``stateless`` data set. The work is the
``stateful`` case's aggregation (count + earliest/latest by offset per key,
RocksDB with a changelog), in two topologies:

* ``group_by_key``: the aggregation on the input's partitions; under
  exactly-once every commit is a transaction holding the changelog records
  and the input offsets;
* ``group_by`` (the same key): every record also goes through
  ``<app>-stats-repartition``, produced and consumed back inside the
  transactions — the topology shape of issue #15's proof.

Sides (each a fresh process, fresh state, its own group), each guarantee with
its own default commit interval, as a user gets it:

* ``alo`` / ``alo_group_by``: ``at_least_once``, commit every 1000 ms;
* ``eos`` / ``eos_group_by``: ``exactly_once``, commit (a transaction) every 100 ms;
* ``eos_1s``: ``exactly_once`` with ``commit_interval_ms=1000``, to tell the cost of
  transactions from the cost of committing ten times as often.

The headline ratio is ``eos / alo`` (group_by_key); ``group_by_ratio`` is
``eos_group_by / alo_group_by``. Timing as in ``stateful``: from partition
assignment until every record is processed and a final commit made the state
durable. Each side's stored counts must add up to ``records``.
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks.cases import CaseResult, Options
from benchmarks.cases._common import best, measure, summary_rows
from benchmarks.cases.stateful import INPUT, load_input, run_stateful, side_params
from benchmarks.harness import BenchError, open_broker, side_entry

BASELINE = "at-least-once"
TARGET = 0.7
SIDES = {"alo": "at-least-once (1000 ms)", "eos": "exactly-once (100 ms)",
         "alo_group_by": "at-least-once, group_by (1000 ms)", "eos_group_by": "exactly-once, group_by (100 ms)",
         "eos_1s": "exactly-once, commit every 1000 ms"}


def run(opts: Options) -> CaseResult:
    if opts.broker != "kafka":
        raise BenchError("the eos case needs a real broker (--broker kafka): the embedded broker refuses "
                         "guarantee='exactly_once'")
    t_start = time.perf_counter()
    with open_broker({INPUT: opts.partitions}, opts.broker) as broker:
        load_s = load_input(broker, opts)

        def params(side: str, r: int) -> dict[str, Any]:
            return side_params(broker, opts, f"bench-eos-{side}-{r}")

        def check(side: str, r: int, res: Any) -> None:
            if res.extra.get("total_count") != opts.records:
                raise BenchError(f"{side}: the stored counts add up to {res.extra.get('total_count')}, "
                                 f"expected {opts.records}")

        runs = measure("eos", SIDES, opts.repeat, params, opts.profile_dir, check)
    b = best(runs)
    alo, eos, alo_gb, eos_gb, eos_1s = (b[s] for s in ("alo", "eos", "alo_group_by", "eos_group_by", "eos_1s"))
    rows, median_ratio = summary_rows(runs, SIDES, opts.records, "eos", "alo")
    details = [
        ("records / partitions / keys", f"{opts.records:,} / {opts.partitions} / {opts.keys:,}"),
        ("input load", f"{load_s:.1f} s"),
        ("group_by: exactly-once / at-least-once",
         f"{eos_gb.rps:,.0f} / {alo_gb.rps:,.0f} rec/s ({eos_gb.rps / alo_gb.rps:.2f}×)"),
        ("exactly-once at 1000 ms / at-least-once", f"{eos_1s.rps:,.0f} rec/s ({eos_1s.rps / alo.rps:.2f}×)"),
        ("transactions (commits): eos / eos_group_by / eos_1s",
         f"{eos.extra.get('commits', 0):,} / {eos_gb.extra.get('commits', 0):,} / {eos_1s.extra.get('commits', 0):,}"),
        *rows,
    ]
    return CaseResult(
        case="eos", records=opts.records, streamlet_rps=eos.rps, baseline=BASELINE, baseline_rps=alo.rps,
        peak_rss_mb=eos.peak_rss_mb, seconds=eos.seconds, details=details,
        extra={"partitions": opts.partitions, "baseline_seconds": round(alo.seconds, 3), "repeat": opts.repeat,
               "group_by_alo_rps": round(alo_gb.rps, 1), "group_by_eos_rps": round(eos_gb.rps, 1),
               "group_by_ratio": round(eos_gb.rps / alo_gb.rps, 3), "eos_1s_rps": round(eos_1s.rps, 1),
               "eos_1s_ratio": round(eos_1s.rps / alo.rps, 3), "median_ratio": round(median_ratio, 3),
               "target_ratio": TARGET, "total_seconds": round(time.perf_counter() - t_start, 1)},
    )


# -- the sides --------------------------------------------------------------------------
def _side(p: dict[str, Any], guarantee: str, repartition: bool, commit_ms: int | None = None) -> dict[str, Any]:
    # the runner counts every record it consumes: input + one repartition record per input record
    out, app = run_stateful(p, "bench-eos-", repartition, guarantee=guarantee, commit_interval_ms=commit_ms)
    out["records"] = p["records"]
    out["commits"] = app._runner.committer.committer.commits  # input offsets committed (transactions under EOS)
    return out


@side_entry
def side_alo(p: dict[str, Any]) -> dict[str, Any]:
    return _side(p, "at_least_once", False)


@side_entry
def side_eos(p: dict[str, Any]) -> dict[str, Any]:
    return _side(p, "exactly_once", False)


@side_entry
def side_alo_group_by(p: dict[str, Any]) -> dict[str, Any]:
    return _side(p, "at_least_once", True)


@side_entry
def side_eos_group_by(p: dict[str, Any]) -> dict[str, Any]:
    return _side(p, "exactly_once", True)


@side_entry
def side_eos_1s(p: dict[str, Any]) -> dict[str, Any]:
    return _side(p, "exactly_once", False, commit_ms=1000)
