"""Every Colab notebook runs top to bottom in quick mode on the CPU."""

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

COLAB = Path(__file__).resolve().parent.parent / "colab"


def execute(path: Path, tmp_path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert not cell.outputs, f"{path.name} is committed with outputs"
    os.environ["TIMEAWARE_QUICK"] = "1"
    os.environ["MPLBACKEND"] = "Agg"
    client = nbclient.NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()


def test_vanishing_embedding_notebook(tmp_path):
    execute(COLAB / "01_vanishing_embedding.ipynb", tmp_path)
    assert (tmp_path / "diagnose_plot.png").is_file()
