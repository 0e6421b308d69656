"""deploy/k8s/topology.py, the script the StatefulSet runs, does what its docstring says."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

import streamlet as sl
from streamlet.cli.loader import load_app
from streamlet.cli.main import cli

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "topology.py"


def test_the_first_name_per_user_is_kept_and_written() -> None:
    app = load_app(str(SCRIPT))
    with sl.testing.TestDriver(app) as d:
        d.send("user-events", key="u1", value={"name": "Ada"})
        d.send("user-events", key="u2", value={"name": "Grace"})
        d.send("user-events", key="u1", value={"name": "Bob"})
        d.send("user-events", key="u2", value={"email": "g@example.org"})  # no name: the first stays
        assert d.store("first-names").get("u1") == {"first_name": "Ada"}
        assert d.store("first-names").get("u2") == {"first_name": "Grace"}
        assert d.read("first-names") == [("u1", {"first_name": "Ada"}), ("u2", {"first_name": "Grace"}),
                                         ("u1", {"first_name": "Ada"}), ("u2", {"first_name": "Grace"})]


def test_the_topics_to_create_are_listed() -> None:
    listed = CliRunner().invoke(cli, ["topics", str(SCRIPT)])
    assert listed.exit_code == 0, listed.output
    rows = {tuple(line.split()[:2]) for line in listed.output.splitlines() if line.strip()}
    assert ("input", "user-events") in rows and ("output", "first-names") in rows
