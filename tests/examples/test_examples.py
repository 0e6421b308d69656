"""Every example runs: the quickstart as a user runs it, the topology scripts through TestDriver."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import streamlet as sl
from streamlet.cli.loader import load_app
from streamlet.cli.main import cli

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
TOPOLOGY_SCRIPTS = ["filter_route.py", "split_branch.py"]


def run_quickstart(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "120", **env}
    return subprocess.run([sys.executable, str(EXAMPLES / "quickstart.py")], capture_output=True,
                          text=True, timeout=110, env=env, cwd=ROOT)


@pytest.mark.timeout(120)
def test_quickstart_runs_on_the_embedded_broker_prints_tables_and_exits_0() -> None:
    proc = run_quickstart({})
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-3000:]
    assert "loading orders" in out                            # the progress bar
    assert "Topology of 'quickstart'" in out
    for title in ("big orders (amount ≥ 100) by route", "orders per customer", "totals"):
        assert title in out
    assert re.search(r"│ big-orders-fr +│ +1005 │ +1005 │", out), out
    assert re.search(r"│ big-orders-world +│ +2975 │ +2975 │", out), out
    assert re.search(r"5000 orders in, 3980 big orders out \(expected 3980\); 5000 orders counted across "
                     r"8 customers; processed in \d+\.\d s", out), out
    assert "Traceback" not in proc.stderr


@pytest.mark.timeout(120)
def test_quickstart_ignores_settings_meant_for_other_runs() -> None:
    # a user who exported STREAMLET_BROKERS for real Kafka still gets the embedded demo
    proc = run_quickstart({"STREAMLET_BROKERS": "127.0.0.1:1", "STREAMLET_ON_ERROR": "nonsense"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "ignoring STREAMLET_BROKERS, STREAMLET_ON_ERROR" in proc.stdout
    assert "5000 orders in, 3980 big orders out" in proc.stdout


def test_filter_route_example() -> None:
    app = load_app(str(EXAMPLES / "filter_route.py"))
    with sl.testing.TestDriver(app) as d:
        d.send("payments", key="p1", value={"amount": 12.5, "currency": "EUR"})
        d.send("payments", key="p2", value={"amount": 1500})
        d.send("payments", key="p3", value={"amount": -3})
        d.send("payments", key="p4", value={"amount": "12"})
        d.send("payments", key="p5", value=["not", "an", "object"])
        d.send("payments", key="p6", value={"amount": True})
        d.send_raw("payments", b"p7", b"{not json")
        assert d.read("payments-ok") == [("p1", {"amount": 12.5, "currency": "EUR", "amount_cents": 1250}),
                                         ("p2", {"amount": 1500, "amount_cents": 150000})]
        assert d.read("payments-review") == [("p2", {"amount": 1500})]
        assert d.read("payments-rejected") == [
            ("p3", {"payment": {"amount": -3}, "reason": "amount is not positive"}),
            ("p4", {"payment": {"amount": "12"}, "reason": "amount is missing or not a number"}),
            ("p5", {"payment": ["not", "an", "object"], "reason": "not a JSON object"}),
            ("p6", {"payment": {"amount": True}, "reason": "amount is missing or not a number"}),
        ]
        [dead] = d.read_records("payments-dead-letter")
        headers = dict(dead.headers)
        assert (dead.key, dead.value) == (b"p7", b"{not json")
        assert headers["streamlet.stage"] == b"deserialize"
        assert headers["streamlet.topic"] == b"payments" and headers["streamlet.offset"] == b"6"
        assert headers["streamlet.error.type"] == b"JSONDecodeError"
        assert d.policy.dead_lettered == 1


def test_split_branch_example() -> None:
    app = load_app(str(EXAMPLES / "split_branch.py"))
    with sl.testing.TestDriver(app) as d:
        d.send("readings", key="s1", value={"kind": "temperature", "value": 100})
        d.send("readings", key="s2", value={"kind": "humidity", "value": 40})
        d.send("readings", key="s3", value={"kind": "wind", "value": 7})
        d.send("readings", key="s4", value={"kind": "temperature", "value": 20})
        d.send("readings", key="s5", value={"kind": "humidity", "value": 95})
        assert d.read("temperatures") == [("s1", {"kind": "temperature", "value": 100, "fahrenheit": 212.0}),
                                          ("s4", {"kind": "temperature", "value": 20, "fahrenheit": 68.0})]
        assert d.read("humidities") == [("s2", {"kind": "humidity", "value": 40}),
                                        ("s5", {"kind": "humidity", "value": 95})]
        assert d.read("unknown-readings") == [("s3", {"kind": "wind", "value": 7})]
        assert d.read("alerts") == [
            ("s1", {"kind": "temperature", "value": 100, "fahrenheit": 212.0, "alert": True}),
            ("s5", {"kind": "humidity", "value": 95, "alert": True}),
        ]


@pytest.mark.parametrize("script", TOPOLOGY_SCRIPTS)
def test_topology_scripts_are_streamlet_run_scripts(script: str) -> None:
    """An `app` at module level, `app.run()` only under __main__ (loading does not start it)."""
    text = (EXAMPLES / script).read_text()
    assert re.search(r'^if __name__ == "__main__":\n    app\.run\(\)\n\Z', text, re.M)
    assert isinstance(load_app(str(EXAMPLES / script)), sl.App)


@pytest.mark.parametrize("script", TOPOLOGY_SCRIPTS)
def test_describe_and_topics_of_each_example(script: str) -> None:
    path = str(EXAMPLES / script)
    runner = CliRunner()
    text = runner.invoke(cli, ["describe", path])
    assert text.exit_code == 0 and "Sub-topology 0" in text.output
    mermaid = runner.invoke(cli, ["describe", path, "--format", "mermaid"])
    assert mermaid.exit_code == 0 and mermaid.output.startswith("flowchart LR")
    lines = mermaid.output.splitlines()
    assert sum(line.strip().startswith("subgraph ") for line in lines) == sum(line.strip() == "end" for line in lines)
    topics = runner.invoke(cli, ["topics", path])
    assert topics.exit_code == 0 and "input" in topics.output


def test_filter_route_topics_include_its_dead_letter_topic() -> None:
    out = CliRunner().invoke(cli, ["topics", str(EXAMPLES / "filter_route.py")]).output
    assert out.split() == ["input", "payments", "output", "payments-ok", "output", "payments-review",
                           "output", "payments-rejected", "dead-letter", "payments-dead-letter"]


def test_orders_per_customer_example_enriches_and_counts_each_closed_minute_once() -> None:
    app = load_app(str(EXAMPLES / "orders_per_customer.py"))
    minute = 60_000
    with sl.testing.TestDriver(app) as d:
        d.send("customers", key="c1", value={"name": "Ada", "tier": "gold"})
        for i, (customer, ts) in enumerate([("c1", 1_000), ("c2", 5_000), ("c1", 59_000), ("c1", 61_000)]):
            d.send("orders", key=f"o{i}", value={"customer": customer, "amount": 10, "ts": ts})
        enriched = d.read("orders-enriched")
        assert enriched[0] == ("c1", {"customer": "c1", "amount": 10, "ts": 1_000, "name": "Ada", "tier": "gold"})
        assert enriched[1][1]["name"] is None                  # no such customer: a left join
        assert d.read("orders-per-customer-minute") == []     # minute 0 closes at 60 s + 10 s
        d.send("orders", key="o9", value={"customer": "c2", "amount": 1, "ts": 70_000})
        assert d.read("orders-per-customer-minute") == [
            ("c1", {"customer": "c1", "name": "Ada", "minute": 0, "orders": 2}),
            ("c2", {"customer": "c2", "name": None, "minute": 0, "orders": 1}),
        ]
        d.send("orders", key="o10", value={"customer": "c1", "amount": 1, "ts": 2 * minute + 10_000})
        assert d.read("orders-per-customer-minute") == [
            ("c1", {"customer": "c1", "name": "Ada", "minute": minute, "orders": 1}),
            ("c2", {"customer": "c2", "name": None, "minute": minute, "orders": 1}),
        ]
