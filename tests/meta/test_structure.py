"""Package structure: no import cycle between modules or between packages (imports inside functions and package
__init__ files count), leaf distributions and scores packages, orchestration at the top, no private name imported
from another module. Module length is a review guideline (one concept per module), not a test."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "sptgnn"


def _modules() -> dict[str, Path]:
    mods = {}
    for f in PACKAGE.rglob("*.py"):
        parts = list(f.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = f
    return mods


def import_graph() -> dict[str, set[str]]:
    """Module -> the sptgnn modules it imports anywhere in its file. Importing ``a.b.c`` also runs the package
    ``a.b``'s ``__init__``, so an edge to every enclosing package the importer does not itself live in is added."""
    mods = _modules()

    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, f in mods.items():
        pkg = m if f.name == "__init__.py" else m.rpartition(".")[0]
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                src = node.module or ""
                if node.level:
                    up = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                    src = ".".join(up + ([src] if src else []))
                targets = [f"{src}.{a.name}" if f"{src}.{a.name}" in mods else src for a in node.names]
            else:
                continue
            for t in targets:
                r = resolve(t)
                if r is None or r.split(".")[0] != "sptgnn" or r == m:
                    continue
                graph[m].add(r)
                parts = r.split(".")
                for i in range(2, len(parts)):  # enclosing packages sptgnn.x, sptgnn.x.y, ... run their __init__
                    parent = ".".join(parts[:i])
                    if parent in mods and not m.startswith(parent + ".") and parent != m:
                        graph[m].add(parent)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), a package re-exporting its own submodules
    excepted."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            inits = [c for c in comp if (PACKAGE.parent / c.replace(".", "/") / "__init__.py").exists()]
            reexport = len(inits) == 1 and all(c.startswith(inits[0] + ".") or c == inits[0] for c in comp)
            if len(comp) > 1 and not reexport:
                found.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle_through_a_function_level_import():
    assert cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle():
    assert cycles(import_graph()) == []


def test_distributions_is_a_leaf():
    graph = import_graph()
    for m, deps in graph.items():
        if m.startswith("sptgnn.distributions"):
            assert all(d.startswith(("sptgnn.distributions", "sptgnn.errors")) for d in deps), (m, deps)


def package_of(module: str) -> str:
    """``sptgnn.evaluate.crossval`` -> ``sptgnn.evaluate``; a top-level module is its own node (``sptgnn.config``)."""
    return ".".join(module.split(".")[:2])


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The module graph collapsed onto packages (the root ``sptgnn/__init__.py``, the public API, left out: it
    re-exports from every package)."""
    packages: dict[str, set[str]] = {}
    for m, deps in graph.items():
        if m == "sptgnn":
            continue
        p = package_of(m)
        packages.setdefault(p, set()).update(package_of(d) for d in deps if d != "sptgnn" and package_of(d) != p)
    return packages


def test_the_package_graph_collapses_modules_onto_packages():
    graph = {"sptgnn.a.x": {"sptgnn.b.y"}, "sptgnn.b.y": {"sptgnn.a.z"}, "sptgnn.a.z": set(), "sptgnn": {"sptgnn.a.x"}}
    assert package_graph(graph) == {"sptgnn.a": {"sptgnn.b"}, "sptgnn.b": {"sptgnn.a"}}
    assert cycles(package_graph(graph)) == [["sptgnn.a", "sptgnn.b"]]


def test_no_package_cycle():
    assert cycles(package_graph(import_graph())) == []


def test_scores_is_a_leaf_above_distributions():
    for m, deps in import_graph().items():
        if m.startswith("sptgnn.scores"):
            assert all(d.startswith(("sptgnn.scores", "sptgnn.distributions", "sptgnn.errors")) for d in deps), (m, deps)


def test_evaluate_is_imported_only_from_the_top():
    """Orchestration and reports sit at the top: only the command line and the public API import them."""
    for m, deps in import_graph().items():
        if any(d.startswith("sptgnn.evaluate") for d in deps):
            assert m == "sptgnn" or m.startswith(("sptgnn.evaluate", "sptgnn.cli")), m


def test_no_private_name_is_imported_across_modules():
    crossing = []
    for f in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and ((node.module or "").startswith("sptgnn") or node.level):
                crossing += [f"{f.relative_to(PACKAGE)}: {a.name}" for a in node.names
                             if a.name.startswith("_") and not a.name.startswith("__")]
    assert crossing == []


def test_errors_is_a_leaf():
    assert import_graph()["sptgnn.errors"] == set()
