"""The notebooks in notebooks/ run top to bottom, and are committed without outputs.

Each notebook is executed in a fresh ``python3`` kernel of this environment (jupyter_client
starts that kernel with ``sys.executable``), with its working directory and ``TMPDIR`` in a
temporary folder, so a notebook writes nothing into the repository. A failing cell fails
the test with the cell's source and traceback.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
EXPECTED = {
    "01_quickstart.ipynb",
    "02_model_evaluation.ipynb",
    "03_train_register_and_score.ipynb",
}
NOTEBOOK_METADATA = {"kernelspec", "language_info"}
CELL_TIMEOUT_SECONDS = 600
KERNEL_STARTUP_SECONDS = 120
ANSI_COLOURS = re.compile(r"\x1b\[[0-9;]*m")  # IPython colours its tracebacks


def _ids(path: Path) -> str:
    return path.name


def test_notebooks_folder_has_the_documented_notebooks():
    missing = EXPECTED - {path.name for path in NOTEBOOKS}
    assert not missing, f"missing from {NOTEBOOK_DIR}: {sorted(missing)}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_notebook_is_committed_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    assert set(notebook.metadata) <= NOTEBOOK_METADATA, (
        f"{path.name}: notebook metadata {sorted(notebook.metadata)}; keep only "
        f"{sorted(NOTEBOOK_METADATA)}"
    )
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    for index, cell in enumerate(notebook.cells):
        where = f"{path.name} cell {index}"
        if cell.cell_type == "code":
            assert not cell.outputs, f"{where} has outputs; clear all outputs before committing"
            assert cell.execution_count is None, f"{where} has an execution count; clear it"
        assert not cell.metadata, f"{where} has metadata {dict(cell.metadata)}; remove it"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_notebook_runs_top_to_bottom(path, tmp_path, monkeypatch):
    workdir = tmp_path / "cwd"
    scratch = tmp_path / "tmp"
    workdir.mkdir()
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))  # the kernel's tempfile.mkdtemp() lands here
    notebook = nbformat.read(path, as_version=4)
    # First, check that the kernel is this environment's Python (the clvcast under test).
    notebook.cells.insert(
        0, nbformat.v4.new_code_cell(f"import sys\nassert sys.prefix == {sys.prefix!r}, sys.prefix")
    )
    client = NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=CELL_TIMEOUT_SECONDS,
        startup_timeout=KERNEL_STARTUP_SECONDS,
        resources={"metadata": {"path": str(workdir)}},
    )
    failure = None
    try:
        client.execute()
    except CellExecutionError as error:
        failure = ANSI_COLOURS.sub("", str(error))
    if failure is not None:  # outside the except block: the cell's traceback, once
        pytest.fail(f"{path.name} failed:\n{failure}", pytrace=False)
    written = sorted(p.name for p in workdir.iterdir())
    assert not written, f"{path.name} wrote {written} into its working directory"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_notebooks_use_the_python_api_not_the_command_line(path):
    sources = "\n".join(cell.source for cell in nbformat.read(path, as_version=4).cells)
    assert "clvcast.cli" not in sources and "redirect_stdout" not in sources
