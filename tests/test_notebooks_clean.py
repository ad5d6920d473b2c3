"""Notebooks are committed without outputs and follow the course's cell conventions."""

from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOKS and NOTEBOOKS[0].name.startswith("00_")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_clean_and_well_formed(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(not cell.outputs and cell.execution_count is None for cell in code), "strip outputs"
    assert "parameters" in code[0].metadata.get("tags", []), "first code cell must be tagged parameters"
    assert notebook.cells[0].cell_type == "markdown" and notebook.cells[0].source.startswith("# ")
    for previous, cell in zip(notebook.cells, notebook.cells[1:]):
        if cell.cell_type == "code" and cell is not code[0]:
            assert previous.cell_type == "markdown", f"add a sentence before: {cell.source[:60]!r}"
    assert "record_metrics" in code[-1].source and "assert" in code[-1].source
