"""Two versions of streamlet measured in one interleaved run.

    python benchmarks/compare.py --before f81712d --after worktree --cases stateful,join \\
        --records 300000 --rounds 3 [--partitions P] [--out benchmarks/results/compare.md]

Each version is a streamlet package: ``--before``/``--after`` name a git revision (checked
out into a temporary ``git worktree``, removed at the end) or ``worktree`` (this
checkout as it is). The benchmark code is always this checkout's ``benchmarks/``:
it is copied over each temporary worktree's own, so both versions run the same
sides and the same checks (an old revision may not have a side, e.g. ``group_by``)
and only the ``streamlet`` package differs. Each round runs ``benchmarks/run.py CASE``
once per version, the order alternating between rounds; the JSON last line of each
run is kept. Printed and written as markdown: per case, streamlet's rec/s and its
ratio to the baseline (best and median over the rounds) for both versions, and the
``group_by`` side's where the case has it.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from benchmarks import cases  # noqa: E402
from benchmarks.compare_table import (  # noqa: E402
    HEADER, VERSIONS, case_rows, fmt, last_json, markdown, row_cells)

WORKTREE = "worktree"
console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)
err = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 120)


class CompareError(RuntimeError):
    """The comparison cannot go on (bad revision, a version importing the wrong streamlet)."""


@dataclass
class Version:
    """One side of the comparison: a tree whose ``streamlet`` package is measured."""

    label: str  # "before" or "after"
    spec: str  # the revision as given, or "worktree"
    root: str
    description: str  # short hash and subject
    temporary: bool

    @property
    def package(self) -> str:
        return os.path.realpath(os.path.join(self.root, "streamlet"))


def git(*args: str) -> str:
    proc = subprocess.run(["git", "-C", ROOT, *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise CompareError(f"git {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout.strip()


def describe(rev: str) -> str:
    """Short hash and the subject's first words."""
    text = git("log", "-1", "--format=%h %s", rev)
    return text if len(text) <= 80 else text[:79] + "…"


def checkout(label: str, spec: str, tmp: str) -> Version:
    """``spec`` as a version: this checkout, or the revision in a temporary worktree with our benchmarks/."""
    if spec == WORKTREE:
        dirty = " + uncommitted changes" if git("status", "--porcelain", "--", "streamlet") else ""
        return Version(label, spec, ROOT, f"{describe('HEAD')}{dirty} (this worktree)", False)
    try:
        sha = git("rev-parse", "--verify", "--quiet", f"{spec}^{{commit}}")
    except CompareError:
        raise CompareError(f"--{label} {spec!r} is not a git revision of {ROOT}") from None
    path = os.path.join(tmp, label)
    git("worktree", "add", "--detach", path, sha)
    version = Version(label, spec, path, describe(sha), True)
    bench = os.path.join(path, "benchmarks")
    shutil.rmtree(bench, ignore_errors=True)
    shutil.copytree(os.path.join(ROOT, "benchmarks"), bench, ignore=shutil.ignore_patterns("__pycache__"))
    return version


def remove(version: Version) -> None:
    if version.temporary:
        proc = subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force", version.root],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            err.print(f"[yellow]could not remove the worktree {version.root}:[/yellow] {proc.stderr.strip()}")


def child_env(version: Version) -> dict[str, str]:
    """The environment of a run: ``PYTHONPATH`` is the version's tree only, no ``STREAMLET_*`` settings.

    ``run.py`` and ``side.py`` put their own tree first on ``sys.path`` and ``harness``
    puts it first on the sides' ``PYTHONPATH``: run from the version's tree, every
    process imports that tree's ``streamlet`` (ahead of the venv's editable install).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMLET_")}
    env["PYTHONPATH"] = version.root
    return env


def check_import(version: Version) -> None:
    """Fail before measuring if a process started as the runs are would import another streamlet."""
    code = "import os, streamlet; print(os.path.dirname(os.path.abspath(streamlet.__file__)))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=version.root,
                          env=child_env(version))
    got = os.path.realpath(proc.stdout.strip()) if proc.returncode == 0 else proc.stderr.strip()[-300:]
    if got != version.package:
        raise CompareError(f"{version.label}: a process in {version.root} imports streamlet from {got!r}, "
                           f"not {version.package}")
    err.print(f"{version.label:<6} {version.description}\n       streamlet: {version.package}")


def run_once(version: Version, case: str, args: argparse.Namespace) -> dict[str, Any]:
    """``benchmarks/run.py CASE`` in ``version``'s tree; its JSON last line, the sides' streamlet checked."""
    cmd = [sys.executable, os.path.join(version.root, "benchmarks", "run.py"), case,
           "--records", str(args.records)]
    if args.partitions:
        cmd += ["--partitions", str(args.partitions)]
    if args.keys:
        cmd += ["--keys", str(args.keys)]
    proc = subprocess.run(cmd, cwd=version.root, env=child_env(version), stdout=subprocess.PIPE,
                          stderr=None if args.verbose else subprocess.PIPE, text=True, timeout=args.timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"exit {proc.returncode}: {(proc.stderr or '')[-2000:]}")
    result = last_json(proc.stdout)
    paths = {os.path.realpath(p) for p in result.get("streamlet_paths", [])}
    if paths != {version.package}:
        raise CompareError(f"{version.label}: the sides of {case} imported streamlet from {sorted(paths)}, "
                           f"expected {version.package}")
    return result


def summary(result: dict[str, Any]) -> str:
    baseline = result.get("baseline", "baseline")
    text = f"{fmt(result['streamlet_rps'], 'rate'):>10} rec/s, {result['ratio']:.2f}× {baseline}"
    if "group_by_rps" in result:
        gb_ratio = result.get("group_by_ratio", 0)
        text += f"; group_by {fmt(result['group_by_rps'], 'rate')} rec/s ({gb_ratio:.2f}×)"
    return text


def compare(versions: dict[str, Version], names: list[str], args: argparse.Namespace
            ) -> tuple[dict[str, dict[str, list[dict[str, Any]]]], dict[str, dict[str, int]]]:
    """Every case, ``rounds`` times per version, alternating which version goes first."""
    results: dict[str, dict[str, list[dict[str, Any]]]] = {c: {v: [] for v in VERSIONS} for c in names}
    failures: dict[str, dict[str, int]] = {c: {v: 0 for v in VERSIONS} for c in names}
    total, done = len(names) * args.rounds * 2, 0
    for case in names:
        for r in range(args.rounds):
            order = VERSIONS if r % 2 == 0 else VERSIONS[::-1]
            for label in order:
                done += 1
                v = versions[label]
                err.print(f"[bold][{done}/{total}][/bold] {case} · round {r + 1}/{args.rounds} · "
                          f"{label} ({v.spec}) …")
                t0 = time.perf_counter()
                try:
                    result = run_once(v, case, args)
                except CompareError:
                    raise
                except (RuntimeError, ValueError, subprocess.TimeoutExpired) as exc:
                    failures[case][label] += 1
                    err.print(f"[red]  failed:[/red] {exc}")
                    continue
                results[case][label].append(result)
                err.print(f"  {summary(result)}  ({time.perf_counter() - t0:.0f} s)")
    return results, failures


def console_table(case: str, runs: dict[str, list[dict[str, Any]]]) -> Table:
    t = Table(title=f"{case}: before vs after", header_style="bold")
    for i, h in enumerate(HEADER):
        t.add_column(h, justify="left" if i == 0 else "right", no_wrap=i == 0)
    for row in case_rows(runs):
        t.add_row(*row_cells(row))
    return t


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="benchmarks/compare.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", required=True, help="a git revision, or 'worktree'")
    ap.add_argument("--after", default=WORKTREE,
                    help="a git revision, or 'worktree' (this checkout; the default)")
    ap.add_argument("--cases", default="stateless,stateful,join,restore", help="comma-separated cases")
    ap.add_argument("--records", type=int, default=300_000, help="records per run (default 300,000)")
    ap.add_argument("--rounds", type=int, default=3, help="runs per version and case (default 3)")
    ap.add_argument("--partitions", type=int, help="passed to run.py (its default otherwise)")
    ap.add_argument("--keys", type=int, help="passed to run.py (its default otherwise)")
    ap.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results", "compare.md"),
                    help="markdown file written at the end (default benchmarks/results/compare.md)")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per run.py (default 1800)")
    ap.add_argument("--verbose", action="store_true", help="show run.py's own progress and tables")
    args = ap.parse_args(argv)
    args.case_list = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in args.case_list if c not in cases.built()]
    if not args.case_list or unknown:
        ap.error(f"--cases: {', '.join(unknown) or 'none given'}; built cases: {', '.join(cases.built())}")
    if args.records <= 0 or args.rounds <= 0:
        ap.error("--records and --rounds must be positive")
    return args


def header_lines(versions: dict[str, Version], args: argparse.Namespace, argv: list[str]) -> list[str]:
    return [
        f"`python benchmarks/compare.py {shlex.join(argv)}` — "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        *(f"* **{v.label}**: `{v.spec}` — {v.description}" for v in versions.values()),
        f"* {args.records:,} records per run, partitions: {args.partitions or 'run.py default'}, "
        f"{args.rounds} round(s) per version, the order alternating between rounds; benchmark code: "
        "this checkout's `benchmarks/` for both versions",
        f"* {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{platform.system()} {platform.machine()}; "
        "timings on a shared machine are noisy: read the ratios and the medians",
    ]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="streamlet-compare-")
    versions: dict[str, Version] = {}
    try:
        for label in VERSIONS:
            versions[label] = checkout(label, getattr(args, label), tmp)
            check_import(versions[label])
        results, failures = compare(versions, args.case_list, args)
    except CompareError as exc:
        err.print(f"[red]error:[/red] {exc}")
        return 2
    finally:
        for v in versions.values():
            remove(v)
        shutil.rmtree(tmp, ignore_errors=True)
    for case in args.case_list:
        console.print(console_table(case, results[case]))
    text = markdown("streamlet: before vs after", header_lines(versions, args, argv), results, failures)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    err.print(f"wrote {os.path.relpath(args.out)}")
    return 1 if any(n for f in failures.values() for n in f.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
