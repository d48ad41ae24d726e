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
    "data": {"errors", "data"},
    "summary": {"errors", "data"},
    "rfm": {"errors", "atomic", "summary"},
    "output": {"errors", "atomic"},
    "model_file": {"errors", "atomic"},  # rebuilds clvcast's classes by an allow-list
    "models": {"errors", "data", "summary", "models"},
    "churn": {"errors", "data", "summary", "rfm", "models", "churn"},
    "plots": {"errors", "summary", "rfm", "models", "churn", "plots"},
    "pipeline": {
        "errors",
        "atomic",
        "data",
        "summary",
        "rfm",
        "models",
        "churn",
        "output",
        "model_file",
    },
    "tracking": {"errors", "data", "pipeline"},
    "report": {"errors", "atomic", "rfm", "models", "churn", "plots", "pipeline"},
    "spark": {"errors", "data", "summary", "churn", "pipeline", "spark"},
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


def layer_of(path: Path) -> str:
    """A top-level module is its own layer; a module of a subpackage belongs to the package."""
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] if len(relative.parts) > 1 else path.stem


@pytest.mark.parametrize(
    "path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_module_imports_only_lower_layers(path):
    module = layer_of(path)
    assert module in ALLOWED, f"new module {module}: add it to ALLOWED and docs/architecture.md"
    allowed = ALLOWED[module]
    used = {name.split(".")[1] for name in imports_of(path) if name.startswith("clvcast.")}
    if "*" not in allowed:
        assert used <= allowed, f"{module} imports {used - allowed}"
    heavy = {name.split(".")[0] for name in imports_of(path)} & HEAVY
    assert not heavy or module in {"tracking", "plots", "report"}, f"{module} imports {heavy}"
    assert "pyspark" not in {n.split(".")[0] for n in imports_of(path)} or module == "spark"
