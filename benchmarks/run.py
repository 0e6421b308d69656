"""streamlet benchmarks (DESIGN §6).

    python benchmarks/run.py CASE [--records N] [--partitions P] [--keys K] [--repeat R]
    python benchmarks/run.py all          # every built case; writes benchmarks/results/latest.md
    python benchmarks/run.py CASE --broker kafka   # a real Kafka broker; + Kafka Streams (3 cases)

Each case starts an embedded broker in its own process (``streamlet broker``),
loads its data, measures streamlet and its baseline in the same run, and
tears the broker down. Output: a readable table, then — as the last line —
one JSON object:

    {"case": "stateless", "records": 1000000, "streamlet_rps": ..., "baseline": "raw-loop",
     "baseline_rps": ..., "ratio": ..., "peak_rss_mb": ..., "seconds": ...}
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from benchmarks import cases  # noqa: E402
from benchmarks.harness import STREAMLET_PATHS, BenchError, err_console  # noqa: E402

console = Console(highlight=False, width=None if sys.stdout.isatty() else 110)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="benchmarks/run.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("case", help=f"one of: {', '.join(cases.CASES)}, or 'all'")
    ap.add_argument("--records", type=int, default=1_000_000, help="input records (default 1,000,000)")
    ap.add_argument("--partitions", type=int, default=32, help="partitions of the input topic (default 32)")
    ap.add_argument("--keys", type=int, default=None,
                    help="distinct keys (default 10,000; failover, rolling-restart and scaling: 1,000,000)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="measure each side R times (alternating order) and keep the best (default 1)")
    ap.add_argument("--profile", metavar="DIR",
                    help="run each side under py-spy and write speedscope profiles to DIR")
    ap.add_argument("--config", action="append", default=[], metavar="KEY=VALUE",
                    help="a librdkafka setting applied on both sides on top of streamlet's defaults "
                         "(repeatable), for experiments")
    ap.add_argument("--broker", choices=("embedded", "kafka"), default="embedded",
                    help="embedded: `streamlet broker` (librdkafka's mock, default); kafka: a real "
                         "Apache Kafka broker (Java 17+, Maven the first time), where stateless, stateful "
                         "and join also run the same work as a Kafka Streams application")
    ap.add_argument("--write", action="store_true",
                    help="also write benchmarks/results/latest.md for a single case (always for 'all')")
    args = ap.parse_args(argv)
    args.client_config = {}
    for item in args.config:
        key, sep, value = item.partition("=")
        if not sep or not key:
            ap.error(f"--config {item!r} is not KEY=VALUE")
        args.client_config[key.strip()] = value.strip()
    keys_ok = args.keys is None or args.keys > 0
    if args.records <= 0 or args.partitions <= 0 or not keys_ok or args.repeat <= 0:
        ap.error("--records, --partitions, --keys and --repeat must be positive")
    return args


def table_of(result: cases.CaseResult) -> Table:
    t = Table(title=f"benchmark: {result.case}", show_header=True, header_style="bold")
    t.add_column("")
    t.add_column("records/s", justify="right")
    t.add_column("seconds", justify="right")
    t.add_row("streamlet", f"{result.streamlet_rps:,.0f}", f"{result.seconds:.2f}")
    base_s = result.extra.get("baseline_seconds")
    if base_s is None and result.baseline_rps:
        base_s = result.records / result.baseline_rps
    t.add_row(result.baseline, f"{result.baseline_rps:,.0f}", f"{base_s:.2f}" if base_s is not None else "-")
    t.add_row("[bold]ratio[/bold]", f"[bold]{result.ratio:.2f}×[/bold]", "")
    if result.kafka_streams_rps:
        ks_s = result.extra.get("kafka_streams_seconds")
        t.add_row("Kafka Streams", f"{result.kafka_streams_rps:,.0f}", f"{ks_s:.2f}" if ks_s else "-")
        t.add_row("[bold]streamlet / Kafka Streams[/bold]",
                  f"[bold]{result.kafka_streams_ratio:.2f}×[/bold]", "")
        t.add_row("raw-loop / Kafka Streams", f"{result.baseline_rps / result.kafka_streams_rps:.2f}×", "")
        half = result.extra.get("kafka_streams_second_half_rps")
        if half:
            t.add_row("Kafka Streams, 2nd half of the run (JIT warm)", f"{half:,.0f}", "")
    t.add_row("peak RSS (streamlet)", f"{result.peak_rss_mb:.0f} MB", "")
    for label, value in result.details:
        t.add_row(label, value, "")
    return t


def run_case(name: str, args: argparse.Namespace) -> cases.CaseResult:
    module = cases.load(name)
    keys = args.keys if args.keys is not None else getattr(module, "DEFAULT_KEYS", 10_000)
    opts = cases.Options(records=args.records, partitions=args.partitions, keys=keys,
                         repeat=args.repeat, profile_dir=args.profile, client_config=args.client_config,
                         broker=args.broker)
    if args.profile:
        os.makedirs(args.profile, exist_ok=True)
    STREAMLET_PATHS.clear()
    result = module.run(opts)
    # which streamlet the sides ran: benchmarks/compare.py runs this code against other versions
    result.extra.setdefault("streamlet_paths", sorted(STREAMLET_PATHS))
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        names = cases.built(args.broker) if args.case == "all" else [args.case]
        if args.case != "all":
            cases.load(args.case)  # unknown / not built: fail before starting anything
        results = []
        t0 = time.perf_counter()
        for name in names:
            result = run_case(name, args)
            results.append(result)
            console.print(table_of(result))
            if args.case == "all":
                print(json.dumps(result.contract()), flush=True)
        if args.case == "all" or args.write:
            from benchmarks.report import write_latest

            path = write_latest(results, args, time.perf_counter() - t0)
            err_console.print(f"wrote {os.path.relpath(path)}")
    except (cases.UnknownCase, cases.CaseNotBuilt, BenchError) as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        return 2
    if args.case == "all":
        print(json.dumps({"case": "all", "results": [r.contract() for r in results]}))
    else:
        print(json.dumps(results[0].contract()))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
