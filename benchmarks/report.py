"""``benchmarks/results/latest.md``: the figures of a run, a plot, and the profile notes.

The plot is an SVG written by hand (a few bars do not justify matplotlib,
numpy and pillow as dependencies: ``benchmarks/run.py all`` must run on a
plain install). Hand-written notes on where the time goes live in
``benchmarks/results/profile-<case>.md`` and are included as they are.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import sys
from html import escape
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.cases import CaseResult  # noqa: E402
from benchmarks.harness import BENCH_DIR  # noqa: E402

RESULTS = os.path.join(BENCH_DIR, "results")


def environment() -> dict[str, str]:
    import confluent_kafka
    import orjson

    return {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()}",
        "cpus": str(os.cpu_count()),
        "confluent-kafka": str(getattr(confluent_kafka, "__version__", "?")),
        "librdkafka": confluent_kafka.libversion()[0],
        "orjson": orjson.__version__,
    }


def _nice(x: float) -> float:
    """The smallest 1, 2, 2.5 or 5 × 10^k at or above ``x``."""
    scale = 10 ** math.floor(math.log10(x))
    return next(m * scale for m in (1, 2, 2.5, 5, 10) if m * scale >= x)


def _bars(r: CaseResult) -> list[tuple[str, float, str]]:
    bars = [("streamlet", r.streamlet_rps, "#2f6db5"), (r.baseline, r.baseline_rps, "#9aa5b1")]
    if r.kafka_streams_rps:
        bars.append(("Kafka Streams", r.kafka_streams_rps, "#d9822b"))
    return bars


def svg_bars(results: list[CaseResult]) -> str:
    """Records/s of streamlet, its baseline and (``--broker kafka``) Kafka Streams per case, as bars.

    The ratio on the right is streamlet / baseline, and streamlet / Kafka Streams under it."""
    bar_h, left, width, right = 22, 120, 520, 240
    n_bars = max([len(_bars(r)) for r in results] + [2])
    row_h = 20 + n_bars * (bar_h + 2)
    height = 40 + row_h * len(results) + 30
    top = _nice(max([v for r in results for _, v, _ in _bars(r)] + [1.0]))
    scale = width / top
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + right}" height="{height}" '
           'font-family="sans-serif" font-size="13">',
           '<rect width="100%" height="100%" fill="white"/>',
           f'<text x="{left}" y="22" font-weight="bold">records/s (higher is better)</text>']
    for i, r in enumerate(results):
        y = 40 + i * row_h
        out.append(f'<text x="{left - 8}" y="{y + bar_h + 4}" text-anchor="end" '
                   f'font-weight="bold">{escape(r.case)}</text>')
        for j, (label, value, color) in enumerate(_bars(r)):
            by = y + j * (bar_h + 2)
            w = max(1.0, value * scale)
            out.append(f'<rect x="{left}" y="{by}" width="{w:.1f}" height="{bar_h}" fill="{color}"/>')
            out.append(f'<text x="{left + w + 6:.1f}" y="{by + bar_h - 6}">{escape(label)} '
                       f'{value:,.0f}</text>')
        out.append(f'<text x="{left + width + right - 10}" y="{y + bar_h + 4}" text-anchor="end" '
                   f'font-weight="bold">{r.ratio:.2f}× {escape(r.baseline)}</text>')
        if r.kafka_streams_ratio:
            out.append(f'<text x="{left + width + right - 10}" y="{y + 2 * bar_h + 6}" text-anchor="end" '
                       f'font-weight="bold">{r.kafka_streams_ratio:.2f}× Kafka Streams</text>')
    out.append(f'<line x1="{left}" y1="{height - 24}" x2="{left + width}" y2="{height - 24}" stroke="#444"/>')
    for frac in (0, 0.25, 0.5, 0.75, 1.0):
        x = left + width * frac
        out.append(f'<line x1="{x:.1f}" y1="{height - 24}" x2="{x:.1f}" y2="{height - 20}" stroke="#444"/>')
        out.append(f'<text x="{x:.1f}" y="{height - 6}" text-anchor="middle" font-size="11">'
                   f'{top * frac / 1000:,.0f}k</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def from_contract(line: dict[str, Any]) -> CaseResult:
    """A :class:`CaseResult` back from the JSON line ``benchmarks/run.py`` printed (for plots)."""
    return CaseResult(case=line["case"], records=line["records"], streamlet_rps=line["streamlet_rps"],
                      baseline=line["baseline"], baseline_rps=line["baseline_rps"],
                      peak_rss_mb=line["peak_rss_mb"], seconds=line["seconds"],
                      kafka_streams_rps=line.get("kafka_streams_rps"))


def main(argv: list[str]) -> int:
    """``python benchmarks/report.py svg OUT.svg RUN_OUTPUT...``: the plot of saved ``run.py`` outputs
    (the last JSON line of each file), e.g. for docs/benchmarks.md."""
    if len(argv) < 3 or argv[0] != "svg":
        print(main.__doc__, file=sys.stderr)
        return 2
    results = []
    for path in argv[2:]:
        with open(path) as f:
            results.append(from_contract(json.loads([ln for ln in f if ln.startswith("{")][-1])))
    with open(argv[1], "w") as f:
        f.write(svg_bars(results))
    return 0


def markdown(results: list[CaseResult], command: str, env: dict[str, str], seconds: float) -> str:
    ks = any(r.kafka_streams_rps for r in results)  # --broker kafka: Kafka Streams' columns
    lines = [
        "# Benchmark results (latest run)",
        "",
        f"Written by `{command}` in {seconds:.0f} s. Regenerate with `python benchmarks/run.py all`; "
        "see [../README.md](../README.md) for what each case measures.",
        "",
        "![records per second](latest.svg)",
        "",
        "| case | records | streamlet rec/s | baseline | baseline rec/s | ratio | peak RSS (MB) | seconds |"
        + (" Kafka Streams rec/s | streamlet / Kafka Streams |" if ks else ""),
        "|---|---:|---:|---|---:|---:|---:|---:|" + ("---:|---:|" if ks else ""),
    ]
    for r in results:
        row = (f"| {r.case} | {r.records:,} | {r.streamlet_rps:,.0f} | {r.baseline} | "
               f"{r.baseline_rps:,.0f} | **{r.ratio:.2f}×** | {r.peak_rss_mb:.0f} | {r.seconds:.2f} |")
        if ks:
            row += (f" {r.kafka_streams_rps:,.0f} | **{r.kafka_streams_ratio:.2f}×** |" if r.kafka_streams_rps
                    else " — | — |")
        lines.append(row)
    lines += ["", "Environment: " + ", ".join(f"{k} {v}" for k, v in env.items()) + ".", ""]
    for r in results:
        if r.details:
            lines += [f"## {r.case}: details", "", "| | |", "|---|---|"]
            lines += [f"| {label} | {value} |" for label, value in r.details]
            lines.append("")
        notes = os.path.join(RESULTS, f"profile-{r.case}.md")
        if os.path.exists(notes):
            with open(notes) as f:
                lines += [f.read().rstrip(), ""]
    lines += ["Machine-readable: [latest.json](latest.json) (the JSON line of each case).", ""]
    return "\n".join(lines)


def write_latest(results: list[CaseResult], args: Any, seconds: float) -> str:
    os.makedirs(RESULTS, exist_ok=True)
    command = "python benchmarks/run.py " + " ".join(sys.argv[1:])
    env = environment()
    with open(os.path.join(RESULTS, "latest.svg"), "w") as f:
        f.write(svg_bars(results))
    with open(os.path.join(RESULTS, "latest.json"), "w") as f:
        json.dump({"command": command, "environment": env, "results": [r.contract() for r in results]},
                  f, indent=2)
        f.write("\n")
    path = os.path.join(RESULTS, "latest.md")
    with open(path, "w") as f:
        f.write(markdown(results, command, env, seconds))
    return path


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
