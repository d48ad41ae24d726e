"""The import direction of docs/architecture.md holds: no module imports a layer above it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "src" / "clvcast"

# The churn layer and the table builder stand on the same layers.
_CHURN_AND_BELOW = {"errors", "estimator", "data", "summary", "rfm", "models", "churn", "text_ids"}

# module -> clvcast modules it may import (errors and atomic are leaves anyone may use).
ALLOWED = {
    "errors": set(),
    "text_ids": set(),  # membership of text ids in Arrow
    "cores": set(),  # usable cores and work spread over them in threads
    "process_exit": set(),  # the command's exit without the interpreter's teardown
    "whole_numbers": set(),  # whole-number columns coded without hashing
    "limits": {"errors"},
    "estimator": {"errors"},
    "atomic": {"errors"},
    "data": {"errors", "data", "limits"},
    "summary": {"errors", "data"},
    "rfm": {"errors", "atomic", "summary", "estimator", "changes", "whole_numbers", "text_ids"},
    "csv_text": {"cores"},  # CSV cells and lines made in Arrow
    "marketing": {"errors", "csv_text"},  # the marketing CSV format
    "audiences": {"errors", "text_ids"},  # the audience condition language
    "changes": {"errors", "text_ids"},  # changed rows for syncs
    "output": {"errors", "atomic", "marketing", "csv_text"},
    "model_file": {"errors", "atomic"},  # rebuilds clvcast's classes by an allow-list
    "models": {
        "errors",
        "estimator",
        "data",
        "summary",
        "models",
        "text_ids",
        "cores",
        "whole_numbers",
    },
    "churn": _CHURN_AND_BELOW | {"cores"},
    # the table builder; churn only when a churn model is given (imported in the function)
    "contact_table": {*_CHURN_AND_BELOW, "cores"},
    "plots": {"errors", "summary", "rfm", "models", "churn", "plots"},
    "pipeline": {
        "errors",
        "estimator",
        "contact_table",
        "limits",
        "atomic",
        "data",
        "summary",
        "rfm",
        "models",
        "churn",
        "output",
        "model_file",
        "cores",
    },
    "tracking": {"errors", "data", "pipeline"},
    "pyfunc_model": {"tracking"},  # MLflow's models-from-code file of the pyfunc model
    "figures": {"errors", "plots", "models", "churn"},
    "html_report": {
        "errors",
        "estimator",
        "atomic",
        "rfm",
        "models",
        "churn",
        "plots",
        "figures",
        "pipeline",
    },
    "spark": {"errors", "data", "summary", "churn", "pipeline", "spark"},
    "engines": {"errors", "limits", "data", "summary", "spark"},
    "jobs": {
        "errors",
        "limits",
        "atomic",
        "data",
        "summary",
        "rfm",
        "models",
        "churn",
        "pipeline",
        "contact_table",
        "output",
        "marketing",
        "audiences",
        "changes",
        "text_ids",
        "tracking",
        "figures",
        "html_report",
        "engines",
        "jobs",
    },
    "console": {"models"},
    "cli_parser": {"limits"},
    # The command line only parses, calls a job and prints: no pipeline, models, outputs.
    "cli": {"cli_parser", "console", "jobs", "data", "errors", "limits", "process_exit"},
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
    assert not heavy or module in {"tracking", "pyfunc_model", "plots", "html_report"}, (
        f"{module} imports {heavy}"
    )
    assert "pyspark" not in {n.split(".")[0] for n in imports_of(path)} or module == "spark"


def _calls(path: Path) -> set[str]:
    """Names of the functions a module calls (``print``, ``set_tracking_uri``...)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            function = node.func
            names.add(
                function.attr
                if isinstance(function, ast.Attribute)
                else getattr(function, "id", "")
            )
    return names


@pytest.mark.parametrize(
    "path",
    sorted(p for p in PACKAGE.rglob("*.py") if layer_of(p) not in {"cli", "__main__"}),
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_library_code_prints_nothing_and_sets_no_global_state(path):
    calls = _calls(path)
    assert "print" not in calls, f"{path.name} prints: return text or warn instead"
    global_state = {
        "set_tracking_uri", "set_registry_uri", "redirect_stdout", "redirect_stderr",
        "set_memory_pool",  # Arrow's allocator: the command line's choice (cli.py)
    }  # fmt: skip
    assert not calls & global_state, f"{path.name} sets process-wide state: {calls & global_state}"


def test_the_cli_is_thin():
    cli = PACKAGE / "cli.py"
    assert len(cli.read_text().splitlines()) < 600
    calls = _calls(cli)
    for job_logic in ("fit", "score", "evaluate", "write_scored", "write_table", "save"):
        assert job_logic not in calls, f"cli.py calls {job_logic}: that belongs in clvcast.jobs"


# What each command may import: the whole command runs in a fresh process, then its
# modules are listed. rfm and forecast need neither scikit-learn (the churn classifier),
# MLflow, matplotlib nor Spark; --help needs none of the data libraries either.
HEAVY_FOR_COMMANDS = ("sklearn", "mlflow", "matplotlib", "pyspark")
IMPORT_CHECK = """
import json, sys
from clvcast.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
print(json.dumps({"code": code, "modules": sorted({m.split('.')[0] for m in sys.modules})}))
"""


@pytest.mark.parametrize(
    "command, forbidden",
    [
        (["--help"], (*HEAVY_FOR_COMMANDS, "pandas", "duckdb", "numpy", "scipy")),
        (["rfm"], (*HEAVY_FOR_COMMANDS, "scipy", "lifetimes")),
        (["forecast", "--holdout-days", "90"], (*HEAVY_FOR_COMMANDS, "lifetimes")),
        # scoring with a model file needs the classifier, not MLflow (1.5 s of imports)
        (["predict", "--model", "model.model"], ("mlflow", "matplotlib", "pyspark")),
    ],
    ids=["help", "rfm", "forecast", "predict-file"],
)
def test_a_command_imports_only_what_it_uses(command, forbidden, tmp_path):
    import json
    import subprocess
    import sys

    from clvcast.data import load_cdnow_master

    args = list(command)
    if command != ["--help"]:
        raw = load_cdnow_master()
        raw[raw["contact_id"] <= "02000"].to_csv(tmp_path / "orders.csv", index=False)
    if command[0] == "predict":
        import pandas as pd

        from clvcast.churn.model import ChurnModel
        from clvcast.pipeline import CLVPipeline

        purchases = raw[raw["contact_id"] <= "02000"].assign(
            date=lambda frame: pd.to_datetime(frame["date"].astype(str), format="%Y%m%d")
        )
        pipeline = CLVPipeline(churn_model=ChurnModel(n_cutoffs=3, spacing_days=30))
        pipeline.fit(purchases, "1998-06-30").save(tmp_path / "model.model")
    if command != ["--help"]:
        args += ["--transactions", "orders.csv", "--date-format", "%Y%m%d", "--as-of"]
        args += ["1998-06-30", "--output", "out.parquet", "-q"]
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_CHECK, *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["code"] == 0, done.stderr
    imported = set(result["modules"]) & set(forbidden)
    assert not imported, f"clvcast {command[0]} imports {sorted(imported)}"
