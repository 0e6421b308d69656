"""``benchmarks/compare.py``'s figures on fake run.py results (no broker, nothing measured)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
from benchmarks.compare_table import case_rows, fmt, last_json, markdown, row_cells  # noqa: E402


def line(rps: float, ratio: float, **extra: float) -> dict:
    return {"case": "stateful", "records": 1000, "streamlet_rps": rps, "baseline": "raw-loop",
            "baseline_rps": rps / ratio, "ratio": ratio, "peak_rss_mb": 80.0, "seconds": 1.0, **extra}


def test_the_last_line_is_the_result() -> None:
    out = "table\n{\"not\": \"this\"}\n" + json.dumps(line(100.0, 0.5)) + "\n\n"
    assert last_json(out)["streamlet_rps"] == 100.0


@pytest.mark.parametrize("stdout", ["", "table only\n", '{"case": "x"}\n', "{broken\n"])
def test_a_run_without_a_result_line_is_refused(stdout: str) -> None:
    with pytest.raises(ValueError):
        last_json(stdout)


def test_best_median_and_change_per_metric() -> None:
    runs = {"before": [line(100, 0.5, group_by_rps=10, group_by_ratio=0.05),
                       line(300, 0.9, group_by_rps=30, group_by_ratio=0.1),
                       line(200, 0.7, group_by_rps=20, group_by_ratio=0.08)],
            "after": [line(240, 0.8, group_by_rps=80, group_by_ratio=0.4),
                      line(260, 1.0, group_by_rps=60, group_by_ratio=0.3)]}
    rows = {r.label: r for r in case_rows(runs)}
    rps = rows["streamlet rec/s"]
    assert (rps.before.best, rps.before.median) == (300, 200)
    assert (rps.after.best, rps.after.median) == (260, 250)
    assert rps.change("best") == pytest.approx(260 / 300) and rps.change("median") == pytest.approx(1.25)
    gb = rows["streamlet, group_by rec/s"]
    assert gb.change("best") == pytest.approx(80 / 30) and gb.change("median") == pytest.approx(70 / 20)
    assert row_cells(gb) == ["streamlet, group_by rec/s", "30", "20", "80", "70", "2.67×", "3.50×"]
    assert row_cells(rows["streamlet / baseline"])[1:5] == ["0.90×", "0.70×", "1.00×", "0.90×"]


def test_a_metric_only_one_version_reports_is_shown_without_a_change() -> None:
    runs = {"before": [line(100, 0.5)], "after": [line(120, 0.6, group_by_rps=50, group_by_ratio=0.25)]}
    rows = {r.label: r for r in case_rows(runs)}
    cells = row_cells(rows["streamlet, group_by rec/s"])
    assert cells == ["streamlet, group_by rec/s", "—", "—", "50", "50", "—", "—"]
    assert [r.label for r in case_rows({"before": [line(1, 1)], "after": []})] == \
        ["streamlet rec/s", "streamlet / baseline"]


def test_markdown_has_a_table_per_case_and_counts_failures() -> None:
    cases = {"stateful": {"before": [line(100, 0.5, group_by_rps=10)],
                          "after": [line(200, 1.0, group_by_rps=40)]},
             "join": {"before": [], "after": []}}
    text = markdown("t", ["header"], cases, {"stateful": {"after": 1}})
    assert "## `stateful`" in text and "| streamlet rec/s | 100 | 100 | 200 | 200 | 2.00× | 2.00× |" in text
    assert "before: 100 (group_by 10); after: 200 (group_by 40), 1 failed" in text
    assert "## `join`\n\n(no successful run)" in text


def test_unknown_cases_and_revisions_are_refused_before_anything_runs(tmp_path: str) -> None:
    compare = os.path.join(ROOT, "benchmarks", "compare.py")
    proc = subprocess.run([sys.executable, compare, "--before", "HEAD", "--cases", "nope"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--cases: nope" in proc.stderr
    proc = subprocess.run([sys.executable, compare, "--before", "no-such-rev-xyz", "--cases", "stateful",
                           "--out", os.path.join(str(tmp_path), "c.md")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "'no-such-rev-xyz' is not a git revision" in proc.stderr


def test_small_rates_keep_their_digits() -> None:
    assert fmt(2.345, "rate") == "2.35" and fmt(123_456.7, "rate") == "123,457" and fmt(None, "rate") == "—"
