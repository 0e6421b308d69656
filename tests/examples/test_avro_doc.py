"""docs/avro-and-schema-registry.md says only what works: its Python blocks run, its shell block's
`streamlet broker --schema-registry` prints the two lines it shows, and it builds nothing that
does not exist (the On-Error Resolve policy is marked as coming)."""

from __future__ import annotations

import re
import subprocess
import sys
import types
from pathlib import Path

from streamlet.serde.registry import forget_mock
from tests.integration.procs import terminate

PAGE = (Path(__file__).resolve().parents[2] / "docs" / "avro-and-schema-registry.md").read_text()


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
    assert "streamlet broker --script app.py --schema-registry" in shown
    proc = subprocess.Popen([sys.executable, "-m", "streamlet", "broker", "--schema-registry"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        first, second = proc.stdout.readline(), proc.stdout.readline()  # type: ignore[union-attr]
    finally:
        terminate(proc)
    assert re.fullmatch(r"bootstrap: 127\.0\.0\.1:\d+\n", first)
    assert re.fullmatch(r"schema-registry: http://127\.0\.0\.1:\d+\n", second)
    assert proc.returncode == 0


def test_the_resolve_policy_is_not_pretended() -> None:
    import streamlet as sl

    assert "## The On-Error Resolve producer policy — coming" in PAGE and "*Not built yet.*" in PAGE
    for setting in ("resolve_schema_on_error_only", "schema_check", "subject_resolver"):
        assert setting not in sl.serde.avro.__code__.co_varnames
