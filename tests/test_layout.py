"""The package's import graph: no circle, and the command line is the top layer (no library
module imports ``arasfsr.cli``). Imports inside functions count too: a lazy import is still
a dependency."""

from __future__ import annotations

import ast
from pathlib import Path

import arasfsr

PACKAGE = Path(arasfsr.__file__).resolve().parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the arasfsr modules it imports (``from . import x`` names module ``x``)."""
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in files else base
                           for alias in node.names]
            else:
                continue
            graph[name] |= {t for t in targets if t in files and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_the_graph_sees_the_imports():
    graph = import_graph()
    assert "arasfsr.api" in graph["arasfsr.cli.common"]  # lazy, inside a function
    assert "arasfsr.cli.upscale" in graph["arasfsr.cli.main"]  # from . import upscale
    assert "arasfsr.models.core" in graph["arasfsr.models.arasfsr"]  # from .core import ...
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_import_graph_has_no_circle():
    assert find_cycle(import_graph()) is None


def test_only_the_command_line_imports_the_command_line():
    upward = sorted(f"{name} -> {target}" for name, targets in import_graph().items() for target in targets
                    if target.startswith("arasfsr.cli") and not name.startswith("arasfsr.cli"))
    # `python -m arasfsr` and `python -m arasfsr.ui` are the command
    upward = [u for u in upward if not u.startswith(("arasfsr.__main__ ", "arasfsr.ui.__main__ "))]
    assert upward == []
