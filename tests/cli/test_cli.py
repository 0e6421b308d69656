"""The `streamlet` command: describe, topics, script loading errors."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from streamlet.cli.main import cli

SCRIPT = """
import streamlet as sl
app = sl.App("cli-app", on_error="dead_letter")
orders = app.stream("orders")
orders.filter(lambda k, v: True).to("out")
orders.group_by(lambda k, v: v["u"]).count(name="per-user")
if __name__ == "__main__":
    raise SystemExit("must not run when loaded by the CLI")
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "script.py"
    path.write_text(text)
    return str(path)


def test_describe_text_and_mermaid(tmp_path: Path) -> None:
    script = write(tmp_path, SCRIPT)
    result = CliRunner().invoke(cli, ["describe", script])
    assert result.exit_code == 0 and "Sub-topology 0" in result.output
    result = CliRunner().invoke(cli, ["describe", script, "--format", "mermaid"])
    assert result.exit_code == 0 and result.output.startswith("flowchart LR")


def test_topics_lists_inputs_outputs_and_internal_topics(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["topics", write(tmp_path, SCRIPT), "--partitions", "6"])
    assert result.exit_code == 0, result.output
    assert "input     orders  partitions=6" in result.output
    assert "output    out" in result.output
    assert "repartition cli-app-per-user-repartition  partitions=6" in result.output
    assert "changelog cli-app-per-user-changelog  partitions=6" in result.output
    assert "dead-letter cli-app-dead-letter" in result.output


def test_scripts_without_one_app_are_clear_errors(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["describe", write(tmp_path, "x = 1\n")])
    assert result.exit_code != 0 and "defines no streamlet App" in result.output
    two = "import streamlet as sl\na = sl.App('a')\nb = sl.App('b')\n"
    result = CliRunner().invoke(cli, ["describe", write(tmp_path, two)])
    assert result.exit_code != 0 and "defines 2 Apps" in result.output
    result = CliRunner().invoke(cli, ["describe", str(tmp_path / "missing.py")])
    assert result.exit_code != 0
