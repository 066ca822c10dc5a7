"""The arrows between the rooms point one way (shared/docs/layout.md), and nothing in training/ imports in a circle.

Read from the source with ``ast``, so a circle is found whichever module a user happens to import first: importing
``a.b.c`` runs ``a/__init__.py`` and ``a/b/__init__.py`` first, so an import counts as an edge to every package on
the way as well.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("vssavsr", "training")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((REPO / pkg).rglob("*.py"))}


def _imports(name: str, path: Path) -> list[tuple[str, ast.stmt, bool]]:
    """(imported module, statement, runs when the file is imported) for each import of our packages in ``path``;
    an import inside a function runs only when the function does."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []

    def visit(node: ast.AST, at_import: bool) -> None:
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in _modules()]
        found.extend((t, node, at_import) for t in targets if t.split(".")[0] in PACKAGES)
        inside = isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            visit(child, at_import and not inside)

    visit(tree, True)
    return found


def _graph() -> dict[str, set[str]]:
    known = _modules()
    graph: dict[str, set[str]] = {m: set() for m in known}
    for name, path in known.items():
        for target, _, at_import in _imports(name, path):
            if not at_import:
                continue
            parts = target.split(".")
            for k in range(1, len(parts) + 1):  # the packages on the way run first
                prefix = ".".join(parts[:k])
                # a module's own packages always run before it (``from . import x`` adds nothing)
                if prefix in known and prefix != name and not name.startswith(prefix + "."):
                    graph[name].add(prefix)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_circle_through_a_package():
    graph = {"training.degrade": {"training.data", "training.data.frames"}, "training.data": {"training.degrade"},
             "training.data.frames": set()}
    assert _cycles(graph) == [["training.data", "training.degrade"]]


def test_no_import_circles():
    graph = _graph()
    assert graph["training.degrade"] >= {"training.data", "training.data.frames"}  # package edges are counted
    assert _cycles(graph) == []


def test_imports_of_our_modules_are_at_the_top_of_files():
    inner = [f"{name}: line {node.lineno} imports {target}" for name, path in _modules().items()
             if name.startswith("training") for target, node, top in _imports(name, path) if not top]
    assert inner == []


@pytest.mark.parametrize("room,forbidden", [
    ("vssavsr.model", ("vssavsr.engine", "vssavsr.plugin", "training", "vapoursynth")),
    ("vssavsr.engine", ("vssavsr.plugin", "training", "vapoursynth")),
    ("vssavsr", ("training",)),
])
def test_arrows_point_one_way(room, forbidden):
    wrong = []
    for name, path in _modules().items():
        if name != room and not name.startswith(room + "."):
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            wrong += [f"{name} imports {m}" for m in mods if any(m == f or m.startswith(f + ".") for f in forbidden)]
    assert wrong == []
