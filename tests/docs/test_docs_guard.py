"""The out-of-order guard: a cell run too early names the cell to run first."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from workbench.errors import WorkbenchError
from workbench.notebook import CellOrderError, data_dir, requires


def test_requires_passes_when_names_exist() -> None:
    requires("wb", "fleet", cell="1. Set up", namespace={"wb": object(), "fleet": None})


def test_requires_looks_in_the_callers_globals() -> None:
    # This module's globals hold `requires` and `Path`, not `wb`.
    requires("Path", cell="imports")
    with pytest.raises(CellOrderError, match="“1. Set up”"):
        requires("wb", cell="1. Set up")


def test_the_message_names_each_missing_name_and_its_cell() -> None:
    with pytest.raises(CellOrderError) as info:
        requires("wb", "home", cell="1. Set up", jobs="3. Submit a job", namespace={"home": "/tmp/x"})
    message = str(info.value)
    assert "run the cell “1. Set up” first: it defines `wb`" in message
    assert "`home`" not in message
    assert "run the cell “3. Submit a job” first: it defines `jobs`" in message
    assert info.value.missing == {"wb": "1. Set up", "jobs": "3. Submit a job"}
    assert isinstance(info.value, WorkbenchError) and not isinstance(info.value, NameError)


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [((), {}), (("wb",), {}), ((), {"cell": "1. Set up"})],
    ids=["nothing", "names-without-cell", "cell-without-names"],
)
def test_requires_rejects_a_call_that_says_nothing(args: tuple[str, ...], kwargs: dict[str, str]) -> None:
    with pytest.raises(TypeError):
        requires(*args, namespace={}, **kwargs)


def test_ipython_shows_the_message_not_a_traceback() -> None:
    lines = CellOrderError({"wb": "1. Set up"})._render_traceback_()
    assert lines == ["CellOrderError: This cell ran out of order; run the cell “1. Set up” first: it defines `wb`."]


def test_data_dir_is_found_from_a_notebooks_folder(repo_root: Path) -> None:
    assert data_dir(repo_root / "notebooks") == repo_root / "data"


def test_data_dir_outside_a_clone_says_so(tmp_path: Path) -> None:
    with pytest.raises(WorkbenchError, match="no data/ folder"):
        data_dir(tmp_path)


def test_a_tour_cell_run_first_in_a_real_kernel_names_the_setup_cell(repo_root: Path) -> None:
    """Run the tour's "This machine" cell in a fresh kernel, as a reader who skipped "Set up" would."""
    tour = nbformat.read(repo_root / "notebooks" / "00_tour.ipynb", as_version=4)
    cell = next(c for c in tour.cells if c.cell_type == "code" and "here = wb.devices()" in c.source)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(cell.source)])
    client = NotebookClient(nb, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(repo_root / "notebooks")}})
    with pytest.raises(CellExecutionError) as info:
        client.execute()
    assert info.value.ename == "CellOrderError"
    assert "run the cell “1. Set up” first: it defines `wb`" in info.value.evalue
    error = nb.cells[0].outputs[-1]
    assert error.traceback == [f"CellOrderError: {info.value.evalue}"]  # one line, no NameError, no stack
