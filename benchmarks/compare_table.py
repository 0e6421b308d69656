"""The figures of ``benchmarks/compare.py``: the JSON line of each run, best and median per version, tables.

Pure functions over the JSON lines that ``benchmarks/run.py`` prints (no broker,
no process), so that they are tested on fake results.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from typing import Any

#: the two versions, in the tables' column order
VERSIONS = ("before", "after")

#: (JSON key, label, kind) of the figures compared; a key missing from every run is left out
METRICS = (
    ("streamlet_rps", "streamlet rec/s", "rate"),
    ("ratio", "streamlet / baseline", "ratio"),
    ("group_by_rps", "streamlet, group_by rec/s", "rate"),
    ("group_by_ratio", "group_by / baseline", "ratio"),
)


def last_json(stdout: str) -> dict[str, Any]:
    """The object on the last non-empty line of ``stdout`` (DESIGN §6); ValueError if there is none."""
    lines = [ln.strip() for ln in stdout.splitlines() if ln.strip()]
    if not lines or not lines[-1].startswith("{"):
        tail = lines[-1][:200] if lines else "(no output)"
        raise ValueError(f"the last line is not a JSON object: {tail!r}")
    out = json.loads(lines[-1])
    if not isinstance(out, dict) or "streamlet_rps" not in out:
        raise ValueError(f"not a benchmark result line: {lines[-1][:200]!r}")
    return out


@dataclass
class Figure:
    """One metric of one version over its rounds."""

    best: float
    median: float
    runs: list[float]


def figure(results: list[dict[str, Any]], key: str) -> Figure | None:
    """Best (highest) and median of ``key`` over the runs that have it; None if none has it."""
    values = [float(r[key]) for r in results if isinstance(r.get(key), (int, float))]
    if not values:
        return None
    return Figure(max(values), statistics.median(values), values)


@dataclass
class Row:
    label: str
    kind: str
    before: Figure | None
    after: Figure | None

    def change(self, which: str) -> float | None:
        """after / before of ``best`` or ``median``; None when one side is missing or zero."""
        if self.before is None or self.after is None:
            return None
        b, a = getattr(self.before, which), getattr(self.after, which)
        return a / b if b else None


def case_rows(runs: dict[str, list[dict[str, Any]]]) -> list[Row]:
    """The rows of one case's table from ``{"before": [json, ...], "after": [...]}``."""
    rows = []
    for key, label, kind in METRICS:
        figs = {v: figure(runs.get(v, []), key) for v in VERSIONS}
        if any(figs.values()):
            rows.append(Row(label, kind, figs["before"], figs["after"]))
    return rows


def fmt(value: float | None, kind: str) -> str:
    if value is None:
        return "—"
    if kind == "ratio":
        return f"{value:.2f}×"
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"  # restart's *_rps are 1 / seconds


def row_cells(row: Row) -> list[str]:
    """label, before best / median, after best / median, after ÷ before (best, median)."""
    cells = [row.label]
    for fig in (row.before, row.after):
        cells += [fmt(fig.best if fig else None, row.kind), fmt(fig.median if fig else None, row.kind)]
    for which in ("best", "median"):
        change = row.change(which)
        cells.append(f"{change:.2f}×" if change is not None else "—")
    return cells


HEADER = ["", "before best", "before median", "after best", "after median", "after/before best",
          "after/before median"]


def markdown_table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|---|" + "---:|" * (len(HEADER) - 1)]
    lines += ["| " + " | ".join(row_cells(r)) + " |" for r in rows]
    return "\n".join(lines)


def runs_line(runs: dict[str, list[dict[str, Any]]], failures: dict[str, int]) -> str:
    """Every run's streamlet (and group_by) rec/s per version, and failed runs, for the record."""
    parts = []
    for v in VERSIONS:
        each = []
        for r in runs.get(v, []):
            text = fmt(r["streamlet_rps"], "rate")
            if "group_by_rps" in r:
                text += f" (group_by {fmt(r['group_by_rps'], 'rate')})"
            each.append(text)
        failed = f", {failures[v]} failed" if failures.get(v) else ""
        parts.append(f"{v}: {', '.join(each) or 'none'}{failed}")
    return "all runs, streamlet rec/s — " + "; ".join(parts)


def markdown(title: str, header_lines: list[str], cases: dict[str, dict[str, list[dict[str, Any]]]],
             failures: dict[str, dict[str, int]]) -> str:
    """The whole report: a title, what was compared, one table per case."""
    out = [f"# {title}", "", *header_lines, ""]
    for case, runs in cases.items():
        out += [f"## `{case}`", ""]
        rows = case_rows(runs)
        out.append(markdown_table(rows) if rows else "(no successful run)")
        out += ["", runs_line(runs, failures.get(case, {})), ""]
    return "\n".join(out)
