"""Runs one side of one benchmark case in this (fresh) process: ``side.py CASE SIDE PARAMS_JSON``.

Prints the side's result as one JSON line (records, seconds, peak_rss_mb, ...), with
``streamlet_path``: the folder of the streamlet package this side imported (``compare.py``
checks that each version ran its own).
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import cases  # noqa: E402
from benchmarks.harness import peak_rss_mb  # noqa: E402


def main() -> None:
    case, side, params = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    module = cases.load(case)
    fn = getattr(module, "side_" + side.replace("-", "_"), None)
    if fn is None or not getattr(fn, "is_side", False):
        raise SystemExit(f"case {case!r} has no side {side!r}")
    out = fn(params)
    out.setdefault("peak_rss_mb", peak_rss_mb())
    streamlet = sys.modules.get("streamlet")
    if streamlet is not None and streamlet.__file__:
        out.setdefault("streamlet_path", os.path.dirname(os.path.abspath(streamlet.__file__)))
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
