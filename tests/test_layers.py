"""The import direction of docs/architecture.md holds: no module imports a layer above it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "src" / "clvcast"

# module -> clvcast modules it may import (errors and atomic are leaves anyone may use).
ALLOWED = {
    "errors": set(),
    "atomic": {"errors"},
    "data": {"errors"},
    "summary": {"errors", "data"},
    "rfm": {"errors", "atomic", "summary"},
    "output": {"errors", "atomic"},
    "pipeline": {"errors", "atomic", "data", "summary", "rfm", "output"},
    "cli": {"*"},
    "__init__": set(),
    "__main__": {"cli"},
}

HEAVY = {"mlflow", "matplotlib"}  # only in their own layers, so `clvcast rfm` starts fast


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.stem)
def test_module_imports_only_lower_layers(path):
    module = path.stem
    assert module in ALLOWED, f"new module {module}: add it to ALLOWED and docs/architecture.md"
    allowed = ALLOWED[module]
    used = {name.split(".")[1] for name in imports_of(path) if name.startswith("clvcast.")}
    if "*" not in allowed:
        assert used <= allowed, f"{module} imports {used - allowed}"
    heavy = {name.split(".")[0] for name in imports_of(path)} & HEAVY
    assert not heavy or module in {"tracking", "plots", "report"}, f"{module} imports {heavy}"
