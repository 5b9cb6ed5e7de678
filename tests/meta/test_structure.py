"""Package structure: no import cycle (imports inside functions and package __init__ files count), modules of one
concept (under ~300 lines, the config schema excepted), a thin CLI, and a leaf distributions package."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "sptgnn"
MAX_LINES = 300
LONGER = {"config.py": "the pydantic schema: one class per config section, documented key by key",
          "mixture.py": "one distribution: the mixture's moments, its distribution functions and the shift that keeps "
                        "its mean under recalibration (issue 27), which needs those functions"}


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
            assert all(d.startswith("sptgnn.distributions") for d in deps), (m, deps)


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_size(path):
    n = len(path.read_text(encoding="utf-8").splitlines())
    limit = 200 if path.name == "cli.py" else MAX_LINES
    if path.name in LONGER:
        return
    assert n <= limit, f"{path.relative_to(PACKAGE)} has {n} lines (> {limit}): split it by concept"
