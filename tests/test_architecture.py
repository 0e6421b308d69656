"""The package layering of ``streamlet``, checked on its source with :mod:`ast`.

    cli → app, testing          app → dsl, runtime          testing → runtime
    dsl → topology ← runtime    topology → state, serde, agg    runtime → broker

``dsl → topology ← runtime``; ``state``, ``serde``, ``agg`` and ``broker`` are
leaves (``state`` may use ``serde``, nothing else of streamlet); ``errors``,
``record``, ``config``, ``partitioner`` and ``metrics`` are shared modules any package may
import. :data:`ALLOWED` is the whole rule; a new package must be placed in it.

Every import counts: at module level, inside functions, and under ``if
TYPE_CHECKING:`` too — an annotation naming a higher layer is a dependency of
the design even if the running code never imports it, so those are expressed
with a Protocol of the lower layer instead (``topology.builder.TopologyBuilder``,
``runtime.application.Application``). The package ``streamlet/__init__.py``
(the public facade, which imports the DSL, the app and the test driver) is
not a layer; importing it from inside the package is forbidden.

Written with ``ast`` rather than import-linter: no extra dependency in the
test environment, function-local and TYPE_CHECKING imports are counted
without configuration, and the rule is this one table.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Iterable

import streamlet

#: shared modules: importable from anywhere, importing only each other
SHARED = {"errors", "record", "config", "partitioner", "metrics"}

#: package (or top-level module) → the streamlet packages it may import
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "record": set(),
    "partitioner": set(),
    "metrics": set(),
    "config": {"errors"},
    "serde": SHARED,
    "agg": SHARED,
    "broker": SHARED,
    "state": SHARED | {"serde"},
    "topology": SHARED | {"serde", "state", "agg"},
    "dsl": SHARED | {"topology", "serde", "agg"},
    "runtime": SHARED | {"topology", "state", "serde", "agg", "broker"},
    "testing": SHARED | {"runtime", "topology", "state", "serde", "agg", "broker"},
    "app": SHARED | {"dsl", "runtime", "topology", "state", "serde", "agg", "broker"},
    "cli": SHARED | {"app", "testing", "dsl", "runtime", "topology", "state", "serde", "agg", "broker"},
    "__main__": {"cli"},
}

#: the packages that must not import each other in a cycle (issue #12)
PACKAGES = ["app", "dsl", "topology", "runtime", "state", "serde", "broker", "testing", "cli", "agg"]

FACADE = "<streamlet facade>"


# -- reading the source ---------------------------------------------------------------------------
def modules_of(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name → file, for every ``.py`` under ``root`` (the directory of ``package``)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imports_in(source: str, module: str, is_package: bool, known: Iterable[str]) -> list[tuple[str, int]]:
    """``(imported module, line)`` for every import statement of ``source`` (any depth), resolved to
    the longest known module: ``from a.b import c`` is ``a.b.c`` when that is a module, else ``a.b``."""
    known = set(known)
    out = []
    base = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                up = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                stem = ".".join(up + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            targets = [f"{stem}.{alias.name}" if f"{stem}.{alias.name}" in known else stem
                       for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known and "." in target:
                target = target.rsplit(".", 1)[0]
            if target in known:
                out.append((target, node.lineno))
    return out


def import_graph(root: Path, package: str) -> dict[str, list[tuple[str, int]]]:
    """Module → the modules of ``package`` it imports, with the line of each import."""
    files = modules_of(root, package)
    return {m: imports_in(p.read_text(), m, p.name == "__init__.py", files) for m, p in files.items()}


def component(module: str) -> str:
    """``streamlet.dsl.stream`` → ``dsl``; ``streamlet.app`` → ``app``; ``streamlet`` → the facade."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else FACADE


def package_edges(graph: dict[str, list[tuple[str, int]]]) -> dict[tuple[str, str], list[str]]:
    """(package, imported package) → ``module:line`` of each import that makes the edge."""
    edges: dict[tuple[str, str], list[str]] = {}
    for module, targets in graph.items():
        src = component(module)
        if src == FACADE:
            continue  # the public facade re-exports everything
        for target, line in targets:
            dst = component(target)
            if dst != src:
                edges.setdefault((src, dst), []).append(f"{module}:{line} imports {target}")
    return edges


def cycles(nodes: Iterable[str], edges: Iterable[tuple[str, str]]) -> list[list[str]]:
    """The strongly connected components with more than one node, or a node importing itself (Tarjan)."""
    succ: dict[str, set[str]] = {n: set() for n in nodes}
    for a, b in edges:
        if a in succ and b in succ:
            succ[a].add(b)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(succ[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = []
            while True:
                w = stack.pop()
                on.discard(w)
                scc.append(w)
                if w == v:
                    break
            if len(scc) > 1 or v in succ[v]:
                out.append(sorted(scc))

    for n in sorted(succ):
        if n not in index:
            visit(n)
    return out


ROOT = Path(streamlet.__file__).parent
GRAPH = import_graph(ROOT, "streamlet")
EDGES = package_edges(GRAPH)


# -- the rules ------------------------------------------------------------------------------------
def test_every_module_belongs_to_a_known_layer() -> None:
    unknown = {component(m) for m in GRAPH} - set(ALLOWED) - {FACADE}
    assert not unknown, f"new packages {sorted(unknown)}: place them in ALLOWED ({__file__})"
    assert len(GRAPH) > 50  # the source was found and read


def test_the_allowed_layers_have_no_cycle() -> None:
    assert cycles(ALLOWED, ((a, b) for a, deps in ALLOWED.items() for b in deps)) == []


def test_packages_import_only_lower_layers() -> None:
    wrong = [f"{src} → {dst}: {where}" for (src, dst), places in sorted(EDGES.items())
             if dst not in ALLOWED.get(src, set()) for where in places]
    assert not wrong, "imports against the layering (ALLOWED in tests/test_architecture.py):\n" + "\n".join(
        wrong)


def test_no_cycle_between_packages() -> None:
    found = cycles(PACKAGES + sorted(SHARED), EDGES)
    detail = [f"{a} → {b}: {EDGES[(a, b)][0]}"
              for scc in found for a in scc for b in scc if (a, b) in EDGES]
    assert not found, f"import cycles between packages {found}:\n" + "\n".join(detail)


def test_no_cycle_between_the_modules_of_topology() -> None:
    topo = {m: [t for t, _ in ts if t.startswith("streamlet.topology.")]
            for m, ts in GRAPH.items() if m.startswith("streamlet.topology.")}
    found = cycles(topo, ((m, t) for m, ts in topo.items() for t in ts))
    assert not found, f"import cycles between the modules of streamlet.topology: {found}"


def test_the_app_satisfies_the_protocols_the_lower_layers_type_it_with() -> None:
    from streamlet.runtime.application import Application
    from streamlet.topology.builder import TopologyBuilder

    app = streamlet.App("protocols")
    assert isinstance(app, TopologyBuilder) and isinstance(app, Application)


# -- the checker itself ---------------------------------------------------------------------------
def test_the_checker_sees_every_kind_of_import(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    for rel, text in {
        "__init__.py": "",
        "low/__init__.py": "",
        "low/leaf.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.high import top\n",
        "low/rel.py": "from . import leaf\nfrom ..high.top import X\n",
        "low/local.py": "def f():\n    import pkg.high.top as t\n    return t\n",
        "high/__init__.py": "from pkg.low import leaf, rel\n",
        "high/top.py": "import os\nfrom pkg import low\nX = 1\n",
    }.items():
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text(text)
    graph = import_graph(pkg, "pkg")
    assert graph["pkg.low.leaf"] == [("pkg.high.top", 3)]  # under TYPE_CHECKING
    assert sorted(graph["pkg.low.rel"]) == [("pkg.high.top", 2), ("pkg.low.leaf", 1)]  # relative
    assert graph["pkg.low.local"] == [("pkg.high.top", 2)]  # inside a function
    assert sorted(graph["pkg.high"]) == [("pkg.low.leaf", 1), ("pkg.low.rel", 1)]
    assert graph["pkg.high.top"] == [("pkg.low", 2)]  # os is not ours
    edges = package_edges(graph)
    assert set(edges) == {("low", "high"), ("high", "low")}
    assert cycles(["low", "high"], edges) == [["high", "low"]]
    assert cycles(["a", "b", "c"], [("a", "b"), ("b", "c")]) == []
    assert cycles(["a"], [("a", "a")]) == [["a"]]
