"""The neural-ODE notebook runs top to bottom in quick mode on the CPU."""

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK = Path(__file__).resolve().parent.parent / "colab" / "02_neural_ode.ipynb"


def test_neural_ode_notebook_runs_in_quick_mode(tmp_path, monkeypatch):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert not cell.outputs, "the notebook is committed with outputs"
    monkeypatch.setenv("TIMEAWARE_QUICK", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("JAX_PLATFORMS", os.environ.get("JAX_PLATFORMS", "cpu"))
    client = nbclient.NotebookClient(
        notebook,
        timeout=900,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    assert (tmp_path / "node_comparison.png").is_file()
    assert (tmp_path / "runs_node" / "positional" / "metrics.jsonl").is_file()
