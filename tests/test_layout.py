"""The package's import graph: no circle, and no module imports one of a higher layer (the
command line on top, nothing imports it). Imports inside functions count too: a lazy import
is still a dependency."""

from __future__ import annotations

import ast
import re
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


# The layers, bottom up; a module may import its own layer's modules and lower ones. A module
# belongs to the first entry that is it or a package holding it.
LAYERS = (
    ("foundations", ("arasfsr.errors", "arasfsr.defaults", "arasfsr.openmp", "arasfsr.atomic", "arasfsr.paths",
                     "arasfsr.runtime", "arasfsr.architectures", "arasfsr.imageio", "arasfsr.videoio",
                     "arasfsr.entry")),
    ("models and data", ("arasfsr.models", "arasfsr.checkpoint", "arasfsr.registry", "arasfsr.onnx_engine",
                         "arasfsr.data", "arasfsr.protocols")),
    ("inference API", ("arasfsr.api", "arasfsr.uncertainty", "arasfsr.demo")),
    ("applications", ("arasfsr.faces", "arasfsr.folders", "arasfsr.evaluation", "arasfsr.distributed",
                      "arasfsr.training")),
    ("web app", ("arasfsr.ui",)),
    ("command line", ("arasfsr.cli", "arasfsr.__main__")),
)


def layer(module: str) -> int:
    if module == "arasfsr":  # the package's own namespace: the inference API it exports
        return 2
    for rank, (_, members) in enumerate(LAYERS):
        if any(module == m or module.startswith(m + ".") for m in members):
            return rank
    raise AssertionError(f"{module} is in no layer of tests/test_layout.py: add it where it belongs")


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{name} -> {target}" for name, targets in graph.items() for target in targets
                  if layer(target) > layer(name))


def test_the_layers_see_an_upward_import():
    assert layer("arasfsr.cli.ui") == 5 and layer("arasfsr.ui.__main__") == 4 and layer("arasfsr.models.core") == 1
    assert upward_imports({"arasfsr.ui.__main__": {"arasfsr.cli.main"}, "arasfsr.uncertainty": {"arasfsr.faces.align"},
                           "arasfsr.faces.restore": {"arasfsr.uncertainty"}}) == [
        "arasfsr.ui.__main__ -> arasfsr.cli.main", "arasfsr.uncertainty -> arasfsr.faces.align"]


def test_no_module_imports_a_higher_layer():
    assert upward_imports(import_graph()) == []


def test_the_package_says_why_not_when():
    # Comments, docstrings and strings in the package explain; they do not cite the
    # project's tickets, work stops or device leases, which no reader of the code can see.
    pattern = re.compile(r"\b(issue\s*#?\d+|stop\s+\d+|leas(e|es|ed|ing))\b", re.IGNORECASE)
    hits = [f"{path.relative_to(PACKAGE.parent)}:{n}: {line.strip()}"
            for path in sorted(PACKAGE.rglob("*")) if path.suffix in (".py", ".json", ".yaml", ".md", ".txt")
            for n, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert hits == []
