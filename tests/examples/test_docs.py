"""The docs say only what works: their code runs, their commands run, their references resolve.

* docs/operators.md runs as a doctest, and its Mermaid diagram is what
  `streamlet describe --format mermaid` prints today;
* docs/getting-started.md: `app.py` and `test_app.py` pass, `streamlet topics`
  prints what the page shows, the error-policy example holds, and the shell
  blocks of "Run it" and "Run several workers" run as written (bash, in a
  temporary directory, with the page's helper scripts);
* README.md's example builds and runs in a TestDriver, with its two set-up commands;
* every test the docs cite exists, and every relative link resolves.
"""

from __future__ import annotations

import doctest
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
from streamlet.errors import RecordError

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
GETTING_STARTED = (DOCS / "getting-started.md").read_text()
README = (ROOT / "README.md").read_text()


def blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", text, re.M | re.S)


def named_python_files(text: str) -> dict[str, str]:
    """Python blocks whose first line is `# NAME.py ...`: file name → content."""
    out = {}
    for block in blocks(text, "python"):
        first = block.splitlines()[0]
        match = re.match(r"# (\w+\.py)\b", first)
        if match:
            out[match.group(1)] = block
    return out


def shell_block_after(text: str, heading: str) -> str:
    section = text[text.index(heading):]
    return blocks(section, "bash")[0]


# -- operators.md ------------------------------------------------------------------

def test_operators_page_runs_as_a_doctest() -> None:
    result = doctest.testfile(str(DOCS / "operators.md"), module_relative=False, report=True,
                              optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted >= 50


def test_operators_page_shows_every_stateless_stream_operator() -> None:
    page = (DOCS / "operators.md").read_text()
    headings = {name for line in re.findall(r"^### .*$", page, re.M) for name in re.findall(r"`([a-z_]+)\(", line)}
    public = {name for name in vars(sl.KStream) if not name.startswith("_")}
    stateful = {"group_by", "group_by_key", "join", "left_join", "outer_join"}  # in their own sections
    assert public - stateful <= set(headings), public - stateful - set(headings)
    for name in stateful:
        assert f"`stream.{name}(" in page


def test_operators_diagram_is_what_describe_prints() -> None:
    [diagram] = blocks((DOCS / "operators.md").read_text(), "mermaid")
    assert diagram.strip() == load_app(str(ROOT / "examples/split_branch.py")).describe("mermaid").strip()


# -- getting-started.md ---------------------------------------------------------------

@pytest.fixture
def walkthrough_dir(tmp_path: Path) -> Path:
    for name, content in named_python_files(GETTING_STARTED).items():
        (tmp_path / name).write_text(content)
    return tmp_path


def test_getting_started_has_its_files() -> None:
    assert set(named_python_files(GETTING_STARTED)) == {"app.py", "test_app.py", "send_orders.py",
                                                        "read_topic.py"}


@pytest.mark.timeout(120)
def test_getting_started_app_passes_its_test(walkthrough_dir: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_app.py"],
                          cwd=walkthrough_dir, capture_output=True, text=True, timeout=100)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout


def test_getting_started_topics_output(walkthrough_dir: Path) -> None:
    shown = GETTING_STARTED.split("`streamlet topics` prints:", 1)[1]
    expected = blocks(shown, "")[0]
    result = CliRunner().invoke(cli, ["topics", str(walkthrough_dir / "app.py")])
    assert result.exit_code == 0
    assert result.output == expected


def test_getting_started_describe_commands(walkthrough_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    commands = blocks(GETTING_STARTED.split("Look at it before running it:", 1)[1], "bash")[0]
    monkeypatch.chdir(walkthrough_dir)
    for line in commands.splitlines():
        args = line.split("#")[0].split()
        assert args[0] == "streamlet"
        result = CliRunner().invoke(cli, args[1:])
        assert result.exit_code == 0, (line, result.output)


def test_getting_started_error_policy_example(monkeypatch: pytest.MonkeyPatch) -> None:
    [example] = [b for b in blocks(GETTING_STARTED, "python") if "on_error" in b or "dead-letter" in b]
    monkeypatch.chdir(ROOT)
    exec(compile(example, "getting-started.md", "exec"), {})
    # "Under "fail" the same send_raw raises streamlet.errors.RecordError"
    app = load_app(str(ROOT / "examples/filter_route.py"))
    app.config.on_error = "fail"
    with sl.testing.TestDriver(app) as d, pytest.raises(RecordError, match="topic 'payments' partition 0 offset 0"):
        d.send_raw("payments", b"p4", b"not json")


def test_getting_started_aggregator_field_example() -> None:
    [example] = [b for b in blocks(GETTING_STARTED, "python") if "FieldError" in b]
    exec(compile(example, "getting-started.md", "exec"), {})


def run_bash(block: str, cwd: Path, env: dict[str, str], cleanup: str = "") -> subprocess.CompletedProcess[str]:
    """Run a documented shell block as written (bash -e), killing whatever it left running."""
    script = "set -e\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n" + block + cleanup
    return subprocess.run(["bash", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=150)


def shell_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMLET_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # streamlet, python
    return env


EXPECTED_BIG = sum(1 for i in range(1000) if i * 37 % 300 > 100)  # what send_orders.py sends past filter


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_getting_started_run_it_as_written(walkthrough_dir: Path) -> None:
    block = shell_block_after(GETTING_STARTED, "## Run it")
    proc = run_bash(block, walkthrough_dir, shell_env())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert f"{EXPECTED_BIG} records in big-orders" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "bootstrap: 127.0.0.1:" in proc.stdout


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_getting_started_several_workers_as_written(walkthrough_dir: Path) -> None:
    block = shell_block_after(GETTING_STARTED, "## Run several workers")
    # both workers exit 0 on SIGTERM (jobs: the broker, then the two workers)
    cleanup = "\nset -- $(jobs -p)\nkill $2 $3\nwait $2\nwait $3\nkill $1\n"
    proc = run_bash(block, walkthrough_dir, shell_env(), cleanup)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    found = re.search(r"(\d+) records in big-orders", proc.stdout)
    assert found and int(found.group(1)) >= EXPECTED_BIG, proc.stdout[-3000:]
    logs = {w: (walkthrough_dir / f"{w}.log").read_text() for w in ("w1", "w2")}
    owned = {w: re.findall(r"assigned (.*)", log) for w, log in logs.items()}
    assert all(any(a != "nothing" for a in owned[w]) for w in owned), owned  # both got partitions
    # the aggregation's stores live in the state dir of the worker that owns them
    assert list((walkthrough_dir / "state").glob("w*/orders-app/*/orders-per-user"))


# -- README.md ---------------------------------------------------------------------------

def test_readme_example_builds_and_runs() -> None:
    [example] = blocks(README, "python")
    namespace: dict[str, object] = {"__name__": "readme"}
    exec(compile(example, "README.md", "exec"), namespace)
    app = namespace["app"]
    assert isinstance(app, sl.App)
    assert "Sub-topology" in app.describe()
    with sl.testing.TestDriver(app) as d:
        d.send("users", key="u1", value={"name": "Ann"})
        d.send("orders", key="o1", value={"user": "u1", "amount": 150, "item": "lamp"})
        d.send("orders", key="o2", value={"user": "u1", "amount": 20, "item": "pen"})
        d.send("orders", key="o3", value={"user": "u2", "amount": 30, "item": "mug"})  # no such user
        assert d.read("big-orders") == [("o1", {"user": "u1", "amount": 150, "item": "lamp", "big": True})]
        assert [(k, v["user"], v["item"]) for k, v in d.read("enriched")] == [
            ("u1", {"name": "Ann"}, "lamp"), ("u1", {"name": "Ann"}, "pen")]
        assert d.store("orders-per-user")["u1"] == {"orders": 2, "first_item": "lamp", "last_item": "pen"}


def test_readme_has_exactly_the_two_setup_commands() -> None:
    commands = [line.strip() for line in README.splitlines() if line.strip().startswith("python3 -m venv")]
    assert commands == [
        "python3 -m venv .venv && . .venv/bin/activate && pip install -e . && python examples/quickstart.py",
        'python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[test]" && '
        "python -m pytest -q --broker=all --registry=all",
    ]


# -- references -------------------------------------------------------------------------

def _test_names_in_repo() -> set[str]:
    names = set()
    for path in (ROOT / "tests").rglob("test_*.py"):
        names |= set(re.findall(r"^\s*def (test_\w+)", path.read_text(), re.M))
    return names


def test_windows_page_example_counts_each_closed_minute_once() -> None:
    namespace: dict = {}
    exec(blocks((DOCS / "windows.md").read_text(), "python")[0], namespace)  # noqa: S102 - our own docs
    with sl.testing.TestDriver(namespace["app"]) as d:
        for user, ts in [("u1", 1_000), ("u1", 30_000), ("u2", 59_000), ("u1", 65_000), ("u1", 50_000)]:
            d.send("clicks", key=user, value={"page": "/"}, timestamp=ts)
        assert d.read("clicks-per-minute") == []          # minute 0 closes at 60 s + 10 s of grace
        d.send("clicks", key="u3", value={"page": "/"}, timestamp=70_000)
        assert d.read("clicks-per-minute") == [("u1", {"start": 0, "end": 60_000, "clicks": 3}),
                                                ("u2", {"start": 0, "end": 60_000, "clicks": 1})]


def test_every_test_the_docs_cite_exists() -> None:
    existing = _test_names_in_repo()
    for page in [*DOCS.glob("*.md"), ROOT / "README.md"]:
        text = page.read_text()
        defined_on_page = set(re.findall(r"def (test_\w+)", text))
        for path in re.findall(r"`(tests/[\w/]+\.py)", text):
            assert (ROOT / path).is_file(), f"{page.name} cites {path}, which does not exist"
        cited = set(re.findall(r"\b(test_\w+)\b(?!\.py)", text)) - defined_on_page
        missing = sorted(name for name in cited if name not in existing)
        assert not missing, f"{page.name} cites tests that do not exist: {missing}"


def test_relative_links_resolve() -> None:
    for page in [*DOCS.glob("*.md"), ROOT / "README.md"]:
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" in target:
                continue
            assert (page.parent / target).exists(), f"{page.name} links to {target}, which does not exist"
