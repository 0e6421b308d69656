"""docs/observability.md and deploy/grafana/streamlet-dashboard.json follow the code: every series
the worker can put on ``/metrics`` is in the doc's table (with its type and labels), the table lists
nothing the code cannot emit, every structured log field of the schema policy is documented, and
every metric the dashboard queries exists.

The truth is read from the code, not copied: :data:`streamlet.runtime.prometheus.SERIES`, the
``streamlet_*`` names :mod:`streamlet.runtime.observability` samples, and an AST scan of
``streamlet/`` for the counters of :class:`streamlet.metrics.Metrics` (``.inc("name", ...)``,
the metered store's ``_inc``, the schema policy's ``_event`` / ``_blocked``), named as
:func:`streamlet.runtime.prometheus.metric_name` names them.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from streamlet.runtime import observability
from streamlet.runtime.prometheus import SERIES, metric_name

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "streamlet"
DOC = ROOT / "docs" / "observability.md"
DASHBOARD = ROOT / "deploy" / "grafana" / "streamlet-dashboard.json"
SCHEMA_RESOLVE = PACKAGE / "serde" / "schema_resolve.py"

#: calls whose first argument is a counter's name: Metrics.inc, MeteredStore._inc, SchemaResolver._event
COUNTING_CALLS = {"inc", "_inc", "_event"}
#: the schema policy's helper that counts ``produce.blocked`` with the keywords it is given
BLOCKED_CALL = "_blocked"


def counter_series(name: str) -> str:
    """The ``/metrics`` series of a counter name (as :func:`prometheus.counter_samples` names it)."""
    series = metric_name(name)
    return series if series.endswith("_total") else series + "_total"


def _call_name(node: ast.Call) -> str | None:
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None


def counters_in_code() -> tuple[dict[str, set[str]], list[str]]:
    """``(series -> label names, patterns)``: every counter named by a string literal in a counting call
    in ``streamlet/`` with the keywords it is labelled with; an f-string name becomes a regex pattern."""
    found: dict[str, set[str]] = {}
    patterns: list[str] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            call = _call_name(node)
            labels = {k.arg for k in node.keywords if k.arg is not None}
            if call == BLOCKED_CALL and path == SCHEMA_RESOLVE:
                found.setdefault(counter_series("produce.blocked"), set()).update(labels | {"error_class"})
                continue
            if call not in COUNTING_CALLS:
                continue
            first = node.args[0]
            if call == "_inc" and path.name == "metered.py":
                labels |= {"store", "partition"}  # MeteredStore._inc labels every count with both
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                found.setdefault(counter_series(first.value), set()).update(labels)
            elif isinstance(first, ast.JoinedStr):
                parts = [re.escape(v.value) if isinstance(v, ast.Constant) else "[a-z]+"
                         for v in first.values]
                patterns.append("^" + re.escape(metric_name("")) + _series_regex(parts) + "$")
    return found, patterns


def _series_regex(parts: list[str]) -> str:
    """The regex of a counter series from the regex pieces of its name (``.`` becomes ``_``)."""
    body = "".join(p.replace("\\.", "_") for p in parts)
    return body if body.endswith("_total") else body + "_total"


def schema_policy_counters() -> set[str]:
    """The counter names the schema policy's module docstring lists (``sr.lookup.ok`` ...): it names
    both ``schema.conflict.key`` and ``.value``, which the code builds with an f-string."""
    doc = ast.get_docstring(ast.parse(SCHEMA_RESOLVE.read_text())) or ""
    names = re.findall(r"``([a-z]+(?:\.[a-z_]+)+)``", doc)
    return {counter_series(n) for n in names if not n.startswith("streamlet.")}  # not the logger's name


def sampled_series() -> set[str]:
    """The ``streamlet_*`` series names observability.py samples by hand."""
    tree = ast.parse(Path(observability.__file__).read_text())
    return {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
            and re.fullmatch(r"streamlet_[a-z_]+", n.value)}


def log_fields_in_code() -> set[str]:
    """The ``extra`` fields of the schema policy's log lines: ``event`` and every keyword of its
    ``_event`` / ``_blocked`` calls and of the label dicts it passes to them."""
    fields = {"event"}
    for node in ast.walk(ast.parse(SCHEMA_RESOLVE.read_text())):
        if isinstance(node, ast.Call) and _call_name(node) in {"_event", BLOCKED_CALL, "dict"}:
            fields |= {k.arg for k in node.keywords if k.arg is not None}
    return fields


# -- the doc -----------------------------------------------------------------------------------------
def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    rest = text[start + len(heading):]
    end = re.search(r"^## ", rest, re.M)
    return rest[: end.start()] if end else rest


def doc_series() -> dict[str, tuple[str, set[str]]]:
    """``series -> (type, label names)`` of the table under "## Metrics"."""
    out = {}
    for line in _section(DOC.read_text(), "## Metrics").splitlines():
        m = re.match(r"\|\s*`(streamlet_[a-z_]+)`\s*\|\s*(\w+)\s*\|([^|]*)\|", line)
        if m:
            out[m.group(1)] = (m.group(2), set(re.findall(r"`(\w+)`", m.group(3))))
    return out


def doc_log_fields() -> set[str]:
    section = _section(DOC.read_text(), "## Structured log fields")
    return {m.group(1) for m in re.finditer(r"^\|\s*`(\w+)`\s*\|", section, re.M)}


def test_every_series_of_the_code_is_in_the_doc_with_its_type_and_labels() -> None:
    documented = doc_series()
    counters, patterns = counters_in_code()
    assert counters and documented, "the scan found nothing: the test itself is broken"
    missing = sorted(set(SERIES) - set(documented))
    assert not missing, f"SERIES not in docs/observability.md's table: {missing}"
    wrong_type = {n: (documented[n][0], kind) for n, (kind, _) in SERIES.items() if documented[n][0] != kind}
    assert not wrong_type, f"doc type vs code type: {wrong_type}"
    sampled = sampled_series()
    assert sampled and not sampled - set(documented), f"sampled in observability.py, not documented: " \
                                                      f"{sorted(sampled - set(documented))}"
    for series, labels in sorted(counters.items()):
        assert series in documented, f"counter {series} (a .inc call in streamlet/) is not in the doc's table"
        kind, doc_labels = documented[series]
        assert kind == SERIES.get(series, ("counter",))[0], f"{series}: documented as {kind}"
        assert labels <= doc_labels, f"{series}: labels {sorted(labels - doc_labels)} are not documented"
    for series in schema_policy_counters():
        assert series in documented, f"schema policy counter {series} is not in the doc's table"
    for pattern in patterns:
        assert any(re.match(pattern, n) for n in documented), f"no documented series matches {pattern}"


def test_the_doc_lists_only_series_the_code_can_emit() -> None:
    counters, patterns = counters_in_code()
    known = set(SERIES) | sampled_series() | set(counters) | schema_policy_counters()
    stale = [n for n in doc_series() if n not in known and not any(re.match(p, n) for p in patterns)]
    assert not stale, f"docs/observability.md lists series nothing in streamlet/ emits: {stale}"


def test_every_structured_log_field_of_the_schema_policy_is_documented() -> None:
    fields = log_fields_in_code()
    assert {"event", "topic", "subject"} <= fields
    assert not fields - doc_log_fields(), f"undocumented log fields: {sorted(fields - doc_log_fields())}"


# -- the dashboard -------------------------------------------------------------------------------------
def _panels(dashboard: dict) -> list[dict]:
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out += panel.get("panels", [])  # a collapsed row holds its panels
    return [p for p in out if p.get("type") != "row"]


def test_the_dashboard_loads_and_queries_only_documented_series() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = _panels(dashboard)
    assert panels and all(p.get("targets") for p in panels), "every panel needs a query"
    exprs = [t["expr"] for p in panels for t in p["targets"]]
    used = {n for e in exprs for n in re.findall(r"\bstreamlet_[a-z_]+", e)}
    undocumented = used - set(doc_series())
    assert not undocumented, f"the dashboard queries series the doc does not list: {sorted(undocumented)}"
    for needed in ("streamlet_records_processed_total", "streamlet_consumer_lag", "streamlet_tasks",
                   "streamlet_commit_latency_seconds_sum", "streamlet_commits_total",
                   "streamlet_restore_records", "streamlet_restore_records_expected",
                   "streamlet_store_estimated_keys", "streamlet_records_skipped_total",
                   "streamlet_records_dead_lettered_total", "streamlet_rebalances_total",
                   "streamlet_produce_blocked_total", "streamlet_sr_lookup_fail_total"):
        assert needed in used, f"the dashboard has no panel on {needed}"


@pytest.mark.parametrize("series", ["streamlet_store_flushes_total", "streamlet_rebalances_total",
                                    "streamlet_schema_conflict_key_total", "streamlet_produce_held_total"])
def test_the_scan_sees_counters_from_each_kind_of_call(series: str) -> None:
    """The scan itself: a counter of each call kind (metered store, Metrics.inc, the policy's f-string
    and its literal events) is found, so an empty scan cannot pass the tests above."""
    counters, patterns = counters_in_code()
    assert (series in counters or series in schema_policy_counters()
            or any(re.match(p, series) for p in patterns))


def test_the_example_app_of_the_doc_gives_the_values_the_doc_shows() -> None:
    """The page's answers come from ``orders_app.py`` on 1,000 orders over 20 keys (amount =
    order x 37 mod 500): the same values through a TestDriver."""
    import streamlet as sl

    text = DOC.read_text()
    script = re.search(r"```python\n(# orders_app\.py\n.*?)```", text, re.S)
    assert script is not None, "docs/observability.md lost its example app"
    namespace: dict = {}
    exec(compile(script.group(1), "orders_app.py", "exec"), namespace)
    with sl.testing.TestDriver(namespace["app"]) as d:
        for i in range(1000):
            d.send("orders", f"user-{i % 20:02d}", {"order": i, "amount": (i * 37) % 500})
        stats = d.store("stats")
        shown = re.findall(r'"key":\s*"(user-\d\d)",\s*"value":\s*(\{[^}]*\})', text)
        assert len(shown) >= 3
        for key, value in shown:
            assert stats[key] == json.loads(value), key
        assert len(list(stats)) == 20  # "20 keys replayed"
