"""docs/avro-and-schema-registry.md says only what works: its Python blocks run, its shell block's
`streamlet broker --schema-registry` prints the two lines it shows, and it builds nothing that
does not exist (the On-Error Resolve policy's settings table is the policy's)."""

from __future__ import annotations

import datetime as dt
import importlib.util
import re
import subprocess
import sys
import types
from decimal import Decimal
from pathlib import Path
from typing import Any

from streamlet.serde.registry import forget_mock
from tests.integration.procs import terminate

ROOT = Path(__file__).resolve().parents[2]
PAGE = (ROOT / "docs" / "avro-and-schema-registry.md").read_text()


def blocks(lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", PAGE, re.M | re.S)


def test_the_python_blocks_run() -> None:
    module = types.ModuleType("avro_doc")  # dataclasses look their module up in sys.modules
    sys.modules["avro_doc"] = module
    try:
        for block in blocks("python"):
            exec(block, module.__dict__)  # noqa: S102 - our own docs
    finally:
        forget_mock("mock://docs")
        del sys.modules["avro_doc"]


def test_the_broker_prints_the_registry_line_after_the_bootstrap_line() -> None:
    shown = blocks("bash")[0]
    assert "streamlet broker --script examples/avro_sensors.py --schema-registry" in shown
    proc = subprocess.Popen([sys.executable, "-m", "streamlet", "broker", "--schema-registry"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        first, second = proc.stdout.readline(), proc.stdout.readline()  # type: ignore[union-attr]
    finally:
        terminate(proc)
    assert re.fullmatch(r"bootstrap: 127\.0\.0\.1:\d+\n", first)
    assert re.fullmatch(r"schema-registry: http://127\.0\.0\.1:\d+\n", second)
    assert proc.returncode == 0


def test_the_resolve_policy_settings_table_is_the_policys() -> None:
    """Every setting the On-Error Resolve section lists is a SchemaPolicy field, and every field is listed,
    with its default."""
    import dataclasses

    import streamlet as sl

    section = PAGE.split("## The On-Error Resolve producer policy", 1)[1].split("### When a send fails", 1)[0]
    rows = dict(re.findall(r"^\| `(\w+)` \| ([^|]+) \|", section, re.M))
    fields = {f.name: f for f in dataclasses.fields(sl.serde.SchemaPolicy)}
    assert set(rows) == set(fields)
    default = sl.serde.SchemaPolicy()
    for name in ("resolve_schema_on_error_only", "resolve_schema_at_produce", "schema_check", "follow",
                 "max_resends"):
        assert rows[name].strip() == f"`{getattr(default, name)!r}`".replace("'", '"'), name


def test_the_avro_sensors_example_in_a_test_driver(monkeypatch: Any) -> None:
    import streamlet as sl

    monkeypatch.setenv("STREAMLET_SCHEMA_REGISTRY_URL", "mock://avro-sensors-example")
    spec = importlib.util.spec_from_file_location("avro_sensors_example", ROOT / "examples" / "avro_sensors.py")
    example = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    try:
        spec.loader.exec_module(example)  # type: ignore[union-attr]
        sl.serde.avro(example.READING, registry="mock://avro-sensors-example").register("readings")
        at = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
        with sl.testing.TestDriver(example.app) as d:
            for celsius in (Decimal("29.9"), Decimal("30.0"), Decimal("-5.5")):
                d.send("readings", key="s1", value={"sensor": "s1", "celsius": celsius, "at": at})
            assert d.read("alerts") == [("s1", {"sensor": "s1", "celsius": Decimal("30.0"), "fahrenheit": 86.0})]
    finally:
        forget_mock("mock://avro-sensors-example")


def test_describe_and_topics_of_the_avro_example_need_no_registry(monkeypatch: Any) -> None:
    from click.testing import CliRunner

    from streamlet.cli.main import cli

    monkeypatch.delenv("STREAMLET_SCHEMA_REGISTRY_URL", raising=False)
    path = str(ROOT / "examples" / "avro_sensors.py")
    described = CliRunner().invoke(cli, ["describe", path])
    assert described.exit_code == 0 and "readings" in described.output and "alerts" in described.output
    topics = CliRunner().invoke(cli, ["topics", path])
    assert topics.exit_code == 0 and "input     readings" in topics.output
