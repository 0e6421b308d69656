"""Every example runs: the quickstart as a user runs it, the topology scripts through TestDriver."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import streamlet as sl
from streamlet.cli.loader import load_app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.timeout(120)
def test_quickstart_runs_on_the_embedded_broker_and_exits_0() -> None:
    proc = subprocess.run([sys.executable, str(EXAMPLES / "quickstart.py")], capture_output=True,
                          text=True, timeout=110)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "orders per customer" in proc.stdout
    assert "5000 orders in, 3980 big orders out (expected 3980); 5000 orders counted" in proc.stdout.replace("\n", " ")


def test_filter_route_example() -> None:
    app = load_app(str(EXAMPLES / "filter_route.py"))
    with sl.testing.TestDriver(app) as d:
        d.send("payments", key="p1", value={"amount": 12.5})
        d.send("payments", key="p2", value={"amount": 1500})
        d.send("payments", key="p3", value={"amount": -3})
        d.send_raw("payments", b"p4", b"{not json")
        assert d.read("payments-ok") == [("p1", {"amount": 12.5, "amount_cents": 1250}),
                                         ("p2", {"amount": 1500, "amount_cents": 150000})]
        assert d.read("payments-review") == [("p2", {"amount": 1500})]
        assert d.policy.skipped == 1


def test_split_branch_example() -> None:
    app = load_app(str(EXAMPLES / "split_branch.py"))
    with sl.testing.TestDriver(app) as d:
        d.send("readings", key="s1", value={"kind": "temperature", "value": 100})
        d.send("readings", key="s2", value={"kind": "humidity", "value": 40})
        d.send("readings", key="s3", value={"kind": "wind", "value": 7})
        assert d.read("temperatures") == [("s1", {"kind": "temperature", "value": 100, "fahrenheit": 212.0})]
        assert d.read("humidities") == [("s2", {"kind": "humidity", "value": 40})]
        assert d.read("unknown-readings") == [("s3", {"kind": "wind", "value": 7})]
